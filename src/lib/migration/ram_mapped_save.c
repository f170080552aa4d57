/*
 * Mapped-ram, save side (docs/multifd.md): pages go to the multifd
 * channels at fixed file offsets, the file bitmaps are written at END,
 * the channels checksum the final extents and the main stream's writes are
 * logged for the trailer's stream CRC.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migration/ram_format.h"
#include "migration/save_job.h"
#include "multifd/zero.h"
#include "util/bitmap.h"

static int mapped_alloc(struct save_job *j)
{
    for (size_t b = 0; b < j->mig->nblocks; b++) {
        j->mblocks[b].file_bitmap = mr_bitmap_new(save_blk_pages(j, b));
        if (!j->mblocks[b].file_bitmap)
            return mr_error_set(&j->err, -ENOMEM, "out of memory for bitmaps");
    }
    return 0;
}

/* The main stream is small (no pages), so its writes are logged for the
 * trailer's stream CRC (format/cksum.h). */
static int sink_logged(void *opaque, const void *buf, size_t len, uint64_t off,
                       struct mr_error *err)
{
    struct save_job *j = opaque;
    int rc = mr_cksum_log_add(&j->log, buf, len, off);

    if (rc)
        return mr_error_set(err, rc, "stream checksum: cannot log %zu bytes "
                            "at 0x%llx: %s", len, (unsigned long long)off,
                            strerror(-rc));
    return j->ch.ops->write_main(&j->ch, buf, len, off, err);
}

static struct mr_stream_sink mapped_sink(struct save_job *j)
{
    return (struct mr_stream_sink){ sink_logged, j };
}

static int mapped_start(struct save_job *j)
{
    struct mr_multifd_config cfg = { 0 };

    for (size_t b = 0; b < j->mig->nblocks; b++) {
        j->mblocks[b].name = save_blk(j, b)->name;
        j->mblocks[b].host = save_blk(j, b)->host;
        j->mblocks[b].used_length = save_blk(j, b)->used_length;
        j->mblocks[b].page_size = save_blk(j, b)->page_size;
        j->mblocks[b].pages_offset = j->swb[b].pages_offset;
    }
    cfg.nchannels = j->ch.nchan;
    cfg.fds = j->ch.fds;
    cfg.sync_fd = j->ch.main_fd;
    cfg.direct_io = j->ch.dio;
    cfg.engine = mr_io_engine_param_name(j->params.io_engine);
    cfg.zero_detection = j->params.zero_page_detection == MR_ZPD_MULTIFD ?
                         MR_ZERO_PAGE_CHANNEL : MR_ZERO_PAGE_NONE;
    cfg.blocks = j->mblocks;
    cfg.nblocks = j->mig->nblocks;
    j->mf = mr_multifd_new(&cfg, &j->err);
    if (!j->mf)
        return j->err.code;
    return mr_multifd_sync(j->mf, &j->err);
}

/* Each page goes to the channels, or is found zero here when
 * zero-page-detection is legacy (docs/multifd.md, "Zero-page detection").  Multifd
 * without channels tests in the pool's inline job, which runs on this same
 * thread: it sees the whole batch, so it can bridge short zero gaps into
 * large writes instead of one write per run of data pages. */
static int mapped_send(struct save_job *j, size_t b, uint64_t first,
                       uint64_t n)
{
    struct mr_ram_block *rb = save_blk(j, b);
    bool test_here = j->params.zero_page_detection == MR_ZPD_LEGACY;

    for (uint64_t page = first; page < first + n; page++) {
        if (test_here &&
            mr_page_is_zero(rb->host + page * rb->page_size, rb->page_size)) {
            mr_bitmap_clear_atomic(j->mblocks[b].file_bitmap, page);
            j->thread_zero++;
            continue;
        }
        if (mr_multifd_queue_page(j->mf, b, page, &j->err))
            return j->err.code;
    }
    return 0;
}

static int mapped_pass_done(struct save_job *j)
{
    if (mr_multifd_flush(j->mf, &j->err) || mr_multifd_sync(j->mf, &j->err))
        return j->err.code;
    return 0;
}

static int write_bitmaps(struct save_job *j)
{
    for (size_t b = 0; b < j->mig->nblocks; b++) {
        uint64_t pages = save_blk_pages(j, b);
        uint64_t bytes = mr_bitmap_disk_bytes(pages);
        uint8_t *buf = malloc(bytes ? bytes : 1);

        if (!buf)
            return mr_error_set(&j->err, -ENOMEM, "out of memory");
        mr_bitmap_to_le64(j->mblocks[b].file_bitmap, pages, buf);
        mr_sw_pwrite(&j->w, buf, bytes, j->swb[b].bitmap_offset);
        free(buf);
    }
    return mr_error_propagate(&j->err, &j->w.err);
}

/* Extent checksums of the final data, computed by the channels once the
 * VM is stopped and the last pass is on disk (docs/file-format.md). */
static int compute_checksums(struct save_job *j)
{
    size_t n = j->mig->nblocks;
    uint32_t **crc = calloc(n ? n : 1, sizeof(*crc));
    int rc = 0;

    if (!crc)
        return mr_error_set(&j->err, -ENOMEM, "out of memory");
    for (size_t b = 0; !rc && b < n; b++) {
        struct mr_ram_block *rb = save_blk(j, b);

        rc = mr_cksum_add_block(&j->ck, rb->name, rb->page_size,
                                rb->used_length, j->swb[b].pages_offset,
                                &j->err);
        if (!rc)
            crc[b] = j->ck.blocks[b].crc;
    }
    if (!rc)
        rc = mr_multifd_checksum(j->mf, crc, &j->err);
    free(crc);
    return rc;
}

static int mapped_finish(struct save_job *j)
{
    int rc = compute_checksums(j);

    return rc ? rc : write_bitmaps(j);
}

static int mapped_stream_crc(struct save_job *j, uint64_t end)
{
    j->ck.flags |= MR_CKSUM_F_STREAM_CRC;
    return mr_cksum_log_crc(&j->log, &j->ck, end, &j->ck.stream_crc, &j->err);
}

static void mapped_release(struct save_job *j)
{
    if (!j->mf)
        return;
    if (j->err.code)
        mr_multifd_cancel(j->mf);
    mr_multifd_free(j->mf);
    j->mf = NULL;
}

static void mapped_free(struct save_job *j)
{
    for (size_t b = 0; j->mblocks && b < j->mig->nblocks; b++)
        free(j->mblocks[b].file_bitmap);
    mr_cksum_log_free(&j->log);
}

const struct mig_ram_save_ops mig_ram_save_mapped = {
    .name = "mapped-ram",
    .wire_mapped = true,
    .nchannels = mig_ram_multifd_channels,
    .alloc = mapped_alloc,
    .sink = mapped_sink,
    .start = mapped_start,
    .send = mapped_send,
    .pass_done = mapped_pass_done,
    .finish = mapped_finish,
    .stream_crc = mapped_stream_crc,
    .release = mapped_release,
    .free = mapped_free,
};
