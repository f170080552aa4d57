/*
 * The save: `migrate` opens the main file on the monitor thread, then one
 * migration thread per save writes the stream (spec/stream-format.md §5):
 * header, configuration, START ram with the block list (mapped-ram: a
 * header per block, pages at fixed offsets through the multifd channels),
 * passes over dirty pages as PART sections until the rest fits the
 * downtime limit, then the switchover: stop, SWITCHOVER_START, END with
 * the final pass and the bitmaps, device FULL sections, EOF and VMDESC.
 *
 * The main stream is buffered with a sticky error (format/stream_write.h)
 * and never opened O_DIRECT; only the channels touch page data when
 * mapped-ram is on.  On failure or cancel a VM this save stopped is
 * restarted, channels are stopped and every descriptor is closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "format/cksum.h"
#include "format/stream_defs.h"
#include "format/stream_write.h"
#include "io/sys.h"
#include "migration/migration_int.h"
#include "multifd/multifd.h"
#include "multifd/zero.h"
#include "util/bitmap.h"

#define SAVE_MAX_PASSES 16          /* iterations before forcing switchover */
#define SAVE_CHECK_EVERY_PAGES 256  /* cancel / rate-limit granularity */
#define SAVE_RATE_WINDOW_MS 100

struct save_job {
    struct mr_migration *mig;
    struct mr_caps caps;
    struct mr_params params;
    struct mr_mig_addr addr;
    bool mapped, dio;
    unsigned nchan;
    int main_fd;
    int chan_fds[256];
    struct mr_stream_writer w;
    bool w_ready;
    struct mr_multifd *mf;
    struct mr_multifd_block *mblocks;
    struct mr_sw_ram_block *swb;
    unsigned long **dirty;
    bool dirty_log_on, stopped_vm;
    enum mr_runstate prev_run;
    const char *last_block;       /* legacy CONTINUE */
    uint64_t legacy_normal, thread_zero, dirty_syncs;
    uint64_t remaining_pages, downtime_start_bytes;
    int64_t window_ms, downtime_start_ms, setup_done_ms;
    uint64_t window_bytes, pass_bytes;
    struct mr_cksum ck;             /* mapped-ram: extent checksums */
    struct mr_cksum_log log;        /* mapped-ram: main-stream writes */
    struct mr_error err;
};

static int sink_pwrite(void *opaque, const void *buf, size_t len, uint64_t off,
                       struct mr_error *err)
{
    int fd = *(int *)opaque;
    int rc = mr_sys_pwrite_all(mr_sys_default(), fd, buf, len, (off_t)off);

    if (rc)
        return mr_error_set(err, rc, "Unable to write to file: %s",
                            strerror(-rc));
    return 0;
}

/* Mapped-ram: the main stream is small (no pages), so its writes are
 * logged for the trailer's stream CRC (format/cksum.h). */
static int sink_logged(void *opaque, const void *buf, size_t len, uint64_t off,
                       struct mr_error *err)
{
    struct save_job *j = opaque;
    int rc = mr_cksum_log_add(&j->log, buf, len, off);

    if (rc)
        return mr_error_set(err, rc, "stream checksum: cannot log %zu bytes "
                            "at 0x%llx: %s", len, (unsigned long long)off,
                            strerror(-rc));
    return sink_pwrite(&j->main_fd, buf, len, off, err);
}

static struct mr_ram_block *blk(struct save_job *j, size_t i)
{
    return &j->mig->blocks[i];
}

static uint64_t blk_pages(struct save_job *j, size_t i)
{
    return blk(j, i)->used_length / blk(j, i)->page_size;
}

static bool cancelled(struct save_job *j)
{
    if (!atomic_load(&j->mig->cancel_req))
        return false;
    mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
    return true;
}

static void publish_stats(struct save_job *j)
{
    struct mr_multifd_stats st = { 0 };
    struct mig_ram_stats *s = &j->mig->out_stats;
    int64_t now = mig_now_ms();
    int64_t elapsed = now - j->mig->out_start_ms;
    uint64_t ps = j->mig->nblocks ? blk(j, 0)->page_size : MR_TARGET_PAGE_SIZE;

    if (j->mf)
        mr_multifd_get_stats(j->mf, &st);
    pthread_mutex_lock(&j->mig->lock);
    s->page_size = ps;
    s->total = 0;
    for (size_t b = 0; b < j->mig->nblocks; b++)
        s->total += blk(j, b)->used_length;
    s->normal = j->legacy_normal + st.normal_pages;
    s->duplicate = j->thread_zero + st.zero_pages;
    s->multifd_bytes = j->nchan ? st.bytes_written : 0;
    s->transferred = j->w.bytes_out + st.bytes_written;
    s->remaining = j->remaining_pages * ps;
    s->dirty_sync_count = j->dirty_syncs;
    if (elapsed > 0) {
        s->mbps = (double)s->transferred * 8.0 / 1000.0 / (double)elapsed;
        s->pages_per_second = (s->normal + s->duplicate) * 1000 /
                              (uint64_t)elapsed;
    }
    if (j->downtime_start_ms)
        s->downtime_bytes = s->transferred - j->downtime_start_bytes;
    pthread_mutex_unlock(&j->mig->lock);
}

/* max-bandwidth: bytes per second, 0 = unlimited; checked in windows. */
static void rate_limit(struct save_job *j, uint64_t bytes)
{
    uint64_t bw = j->params.max_bandwidth;
    uint64_t budget = bw * SAVE_RATE_WINDOW_MS / 1000;
    int64_t now;

    if (!bw || j->stopped_vm)
        return;
    j->window_bytes += bytes;
    now = mig_now_ms();
    if (now - j->window_ms >= SAVE_RATE_WINDOW_MS) {
        j->window_ms = now;
        j->window_bytes = 0;
        return;
    }
    if (j->window_bytes < budget)
        return;
    while (now - j->window_ms < SAVE_RATE_WINDOW_MS && !cancelled(j)) {
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep(&ts, NULL);
        now = mig_now_ms();
    }
    j->window_ms = now;
    j->window_bytes = 0;
}

/* Mapped-ram: the page goes to the channels, or is found zero here when
 * zero-page-detection is legacy (spec/multifd-file.md §6).  Multifd
 * without channels tests in the pool's inline job, which runs on this same
 * thread: it sees the whole batch, so it can bridge short zero gaps into
 * large writes instead of one write per run of data pages. */
static int send_page_mapped(struct save_job *j, size_t b, uint64_t page)
{
    struct mr_ram_block *rb = blk(j, b);
    bool test_here = j->params.zero_page_detection == MR_ZPD_LEGACY;

    if (test_here &&
        mr_page_is_zero(rb->host + page * rb->page_size, rb->page_size)) {
        mr_bitmap_clear_atomic(j->mblocks[b].file_bitmap, page);
        j->thread_zero++;
        return 0;
    }
    return mr_multifd_queue_page(j->mf, b, page, &j->err);
}

static void send_page_legacy(struct save_job *j, size_t b, uint64_t page)
{
    struct mr_ram_block *rb = blk(j, b);
    const uint8_t *p = rb->host + page * rb->page_size;
    const char *name = j->last_block == rb->name ? NULL : rb->name;

    j->last_block = rb->name;
    if (j->params.zero_page_detection != MR_ZPD_NONE &&
        mr_page_is_zero(p, rb->page_size)) {
        mr_sw_ram_zero(&j->w, name, page * rb->page_size);
        j->thread_zero++;
        return;
    }
    mr_sw_ram_page(&j->w, name, page * rb->page_size, p, rb->page_size);
    j->legacy_normal++;
}

/* Send every page whose dirty bit is set, clearing the bits. */
static int send_pass(struct save_job *j)
{
    uint64_t n = 0;

    j->last_block = NULL;
    for (size_t b = 0; b < j->mig->nblocks; b++) {
        uint64_t npages = blk_pages(j, b), first, len;

        for (uint64_t at = 0;
             mr_bitmap_next_run(j->dirty[b], npages, at, &first, &len);
             at = first + len) {
            for (uint64_t p = first; p < first + len; p++) {
                j->dirty[b][p / MR_BITS_PER_LONG] &= ~(1UL << (p % MR_BITS_PER_LONG));
                if (j->mapped) {
                    if (send_page_mapped(j, b, p))
                        return j->err.code;
                } else {
                    send_page_legacy(j, b, p);
                }
                j->pass_bytes += blk(j, b)->page_size;
                if (++n % SAVE_CHECK_EVERY_PAGES == 0) {
                    if (cancelled(j) || mr_sw_error(&j->w))
                        return mr_error_propagate(&j->err, &j->w.err);
                    rate_limit(j, SAVE_CHECK_EVERY_PAGES * blk(j, b)->page_size);
                    publish_stats(j);
                }
            }
        }
    }
    if (j->mapped && (mr_multifd_flush(j->mf, &j->err) ||
                      mr_multifd_sync(j->mf, &j->err)))
        return j->err.code;
    return mr_error_propagate(&j->err, &j->w.err);
}

static uint64_t count_dirty(struct save_job *j)
{
    uint64_t n = 0;

    for (size_t b = 0; b < j->mig->nblocks; b++)
        n += mr_bitmap_count(j->dirty[b], blk_pages(j, b));
    return n;
}

/* One dirty-log sync: a MIGRATION_PASS event each (spec/qmp.md §5). */
static int sync_dirty(struct save_job *j)
{
    int rc = j->mig->ops->dirty_log_sync(j->mig->vm, j->dirty, &j->err);

    if (rc)
        return rc;
    j->dirty_syncs++;
    j->remaining_pages = count_dirty(j);
    publish_stats(j);
    mig_emit(j->mig, "MIGRATION_PASS",
             json_pack("{s:I}", "pass", (json_int_t)j->dirty_syncs));
    return 0;
}

static int open_channels(struct save_job *j)
{
    int flags = O_WRONLY | (j->dio ? O_DIRECT : 0);

    for (unsigned i = 0; i < j->nchan; i++) {
        j->chan_fds[i] = mig_open(j->mig, j->addr.path, flags, &j->err);
        if (j->chan_fds[i] < 0)
            return j->err.code;
    }
    return 0;
}

static void put_configuration(struct save_job *j)
{
    const char *caps[2];
    size_t n = 0;

    /* Only the validated capabilities, in enum order (§3). */
    if (j->caps.on[MR_CAP_X_IGNORE_SHARED])
        caps[n++] = "x-ignore-shared";
    if (j->caps.on[MR_CAP_MAPPED_RAM])
        caps[n++] = "mapped-ram";
    mr_sw_header(&j->w);
    mr_sw_configuration(&j->w, j->mig->ops->machine_type, caps, n);
}

static int alloc_bitmaps(struct save_job *j)
{
    size_t n = j->mig->nblocks;

    j->dirty = calloc(n ? n : 1, sizeof(*j->dirty));
    j->swb = calloc(n ? n : 1, sizeof(*j->swb));
    j->mblocks = calloc(n ? n : 1, sizeof(*j->mblocks));
    if (!j->dirty || !j->swb || !j->mblocks)
        return mr_error_set(&j->err, -ENOMEM, "out of memory");
    for (size_t b = 0; b < n; b++) {
        uint64_t pages = blk_pages(j, b);

        j->dirty[b] = mr_bitmap_new(pages);
        j->mblocks[b].file_bitmap = j->mapped ? mr_bitmap_new(pages) : NULL;
        if (!j->dirty[b] || (j->mapped && !j->mblocks[b].file_bitmap))
            return mr_error_set(&j->err, -ENOMEM, "out of memory for bitmaps");
        mr_bitmap_set_range_atomic(j->dirty[b], 0, pages);
        j->swb[b].name = blk(j, b)->name;
        j->swb[b].used_length = blk(j, b)->used_length;
        j->swb[b].page_size = blk(j, b)->page_size;
    }
    return 0;
}

static int start_channels(struct save_job *j)
{
    struct mr_multifd_config cfg = { 0 };

    for (size_t b = 0; b < j->mig->nblocks; b++) {
        j->mblocks[b].name = blk(j, b)->name;
        j->mblocks[b].host = blk(j, b)->host;
        j->mblocks[b].used_length = blk(j, b)->used_length;
        j->mblocks[b].page_size = blk(j, b)->page_size;
        j->mblocks[b].pages_offset = j->swb[b].pages_offset;
    }
    cfg.nchannels = j->nchan;
    cfg.fds = j->chan_fds;
    cfg.sync_fd = j->main_fd;
    cfg.direct_io = j->dio;
    cfg.engine = mr_io_engine_param_name(j->params.io_engine);
    cfg.zero_detection = j->params.zero_page_detection == MR_ZPD_MULTIFD ?
                         MR_ZERO_PAGE_CHANNEL : MR_ZERO_PAGE_NONE;
    cfg.blocks = j->mblocks;
    cfg.nblocks = j->mig->nblocks;
    j->mf = mr_multifd_new(&cfg, &j->err);
    return j->mf ? 0 : j->err.code;
}

/* Header, configuration and the START section (§5 steps 1-2). */
static int save_setup(struct save_job *j)
{
    struct mr_stream_sink sink = { sink_pwrite, &j->main_fd };

    if (j->mapped) {
        sink.pwrite_all = sink_logged;
        sink.opaque = j;
    }
    int rc;

    if ((rc = open_channels(j)) || (rc = alloc_bitmaps(j)))
        return rc;
    if ((rc = mr_sw_init(&j->w, &sink, j->addr.offset, &j->err)))
        return rc;
    j->w_ready = true;
    put_configuration(j);
    mr_sw_section_header(&j->w, QEMU_VM_SECTION_START, MIG_RAM_SECTION_ID,
                         RAM_SECTION_IDSTR, 0, RAM_SECTION_VERSION);
    mr_sw_ram_setup(&j->w, j->swb, j->mig->nblocks, j->mapped,
                    j->caps.on[MR_CAP_X_IGNORE_SHARED]);
    if (mr_sw_flush(&j->w))
        return mr_error_propagate(&j->err, &j->w.err);
    if (j->mapped && ((rc = start_channels(j)) ||
                      (rc = mr_multifd_sync(j->mf, &j->err))))
        return rc;
    mr_sw_ram_eos(&j->w);
    mr_sw_section_footer(&j->w, MIG_RAM_SECTION_ID);
    if (mr_sw_flush(&j->w))
        return mr_error_propagate(&j->err, &j->w.err);
    if ((rc = j->mig->ops->dirty_log_start(j->mig->vm, &j->err)))
        return rc;
    j->dirty_log_on = true;
    return sync_dirty(j);
}

/* PART sections until the dirty rest fits the downtime limit. */
static int save_iterate(struct save_job *j)
{
    for (int pass = 0; pass < SAVE_MAX_PASSES; pass++) {
        int64_t t0 = mig_now_ms();
        int rc;

        j->pass_bytes = 0;
        mr_sw_section_short(&j->w, QEMU_VM_SECTION_PART, MIG_RAM_SECTION_ID);
        if ((rc = send_pass(j)))
            return rc;
        mr_sw_ram_eos(&j->w);
        mr_sw_section_footer(&j->w, MIG_RAM_SECTION_ID);
        if (mr_sw_flush(&j->w))
            return mr_error_propagate(&j->err, &j->w.err);
        if ((rc = sync_dirty(j)))
            return rc;

        /* bytes per millisecond measured over this pass */
        int64_t dt = mig_now_ms() - t0;
        double bw = (double)j->pass_bytes / (double)(dt > 0 ? dt : 1);
        uint64_t rest = j->remaining_pages * blk(j, 0)->page_size;
        double expected_ms = bw > 0 ? (double)rest / bw : 0;

        pthread_mutex_lock(&j->mig->lock);
        j->mig->out_stats.expected_downtime_ms = (int64_t)expected_ms;
        pthread_mutex_unlock(&j->mig->lock);
        if (expected_ms <= (double)j->params.downtime_limit ||
            j->mig->ops->runstate(j->mig->vm) != MR_RUN_RUNNING)
            break;
        if (cancelled(j))
            return j->err.code;
    }
    return 0;
}

/* pause-before-switchover: wait for migrate-continue (or a cancel). */
static int enter_device_state(struct save_job *j)
{
    struct mr_migration *mig = j->mig;

    if (!j->caps.on[MR_CAP_PAUSE_BEFORE_SWITCHOVER])
        return mr_mig_state_cas(&mig->out, MR_MIG_ACTIVE, MR_MIG_DEVICE) ? 0 :
               mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
    if (!mr_mig_state_cas(&mig->out, MR_MIG_ACTIVE, MR_MIG_PRE_SWITCHOVER))
        return mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
    pthread_mutex_lock(&mig->lock);
    while (!mig->continue_req && !atomic_load(&mig->cancel_req))
        pthread_cond_wait(&mig->cond, &mig->lock);
    mig->continue_req = false;
    pthread_mutex_unlock(&mig->lock);
    if (!mr_mig_state_cas(&mig->out, MR_MIG_PRE_SWITCHOVER, MR_MIG_DEVICE))
        return mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
    return 0;
}

static int write_bitmaps(struct save_job *j)
{
    for (size_t b = 0; b < j->mig->nblocks; b++) {
        uint64_t pages = blk_pages(j, b);
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
        rc = mr_cksum_add_block(&j->ck, blk(j, b)->name, blk(j, b)->page_size,
                                blk(j, b)->used_length, j->swb[b].pages_offset,
                                &j->err);
        if (!rc)
            crc[b] = j->ck.blocks[b].crc;
    }
    if (!rc)
        rc = mr_multifd_checksum(j->mf, crc, &j->err);
    free(crc);
    return rc;
}

static int sync_main(struct save_job *j)
{
    if (mr_sys_default()->fdatasync(j->main_fd) < 0)
        return mr_error_set(&j->err, -errno, "Unable to sync file: %s",
                            strerror(errno));
    return 0;
}

/*
 * Durable completion: everything the stream refers to is made durable
 * first, then the checksum trailer and its footer are appended and synced.
 * The footer is the last write, so a file cut short at any earlier point
 * has none, and the loader refuses it (the VMDESC announces the trailer).
 */
static int write_trailer(struct save_job *j)
{
    uint8_t footer[MR_CKSUM_FOOTER_BYTES];
    uint64_t off = mr_sw_pos(&j->w);
    size_t len;
    uint8_t *t;
    int rc;

    if ((rc = sync_main(j)))
        return rc;
    j->ck.stream_offset = j->addr.offset;
    if (j->mapped) {
        j->ck.flags |= MR_CKSUM_F_STREAM_CRC;
        if ((rc = mr_cksum_log_crc(&j->log, &j->ck, off, &j->ck.stream_crc,
                                   &j->err)))
            return rc;
    }
    t = mr_cksum_encode(&j->ck, &len);
    if (!t)
        return mr_error_set(&j->err, -ENOMEM, "out of memory");
    mr_cksum_footer_encode(footer, off, len);
    rc = sink_pwrite(&j->main_fd, t, len, off, &j->err);
    free(t);
    if (!rc)
        rc = sink_pwrite(&j->main_fd, footer, sizeof(footer), off + len,
                         &j->err);
    return rc ? rc : sync_main(j);
}

static void put_device(struct save_job *j, json_t *devs, uint32_t sid,
                       const char *idstr, uint32_t inst, uint32_t ver,
                       const void *data, uint32_t size)
{
    mr_sw_section_header(&j->w, QEMU_VM_SECTION_FULL, sid, idstr, inst, ver);
    mr_sw_put_be32(&j->w, size);
    mr_sw_put_bytes(&j->w, data, size);
    mr_sw_section_footer(&j->w, sid);
    json_array_append_new(devs, json_pack(
        "{s:s,s:i,s:s,s:i,s:[{s:s,s:s,s:i},{s:s,s:s,s:i}]}",
        "name", idstr, "instance_id", (int)inst, "vmsd_name", idstr,
        "version", (int)ver, "fields",
        "name", "size", "type", "uint32", "size", 4,
        "name", "data", "type", "buffer", "size", (int)size));
}

/* FULL sections: the embedder's devices, then globalstate (§5 step 4). */
static int save_devices(struct save_job *j, json_t *devs)
{
    struct mr_device_state *st = NULL;
    size_t n = 0;
    char gs[MIG_GLOBALSTATE_BYTES] = { 0 };
    uint32_t sid = MIG_RAM_SECTION_ID + 1;

    if (j->mig->ops->save_devices &&
        j->mig->ops->save_devices(j->mig->vm, &st, &n, &j->err))
        return j->err.code;
    for (size_t i = 0; i < n; i++) {
        if (st[i].size > MIG_DEVICE_MAX_BYTES) {
            mr_device_state_free_array(st, n);
            return mr_error_set(&j->err, -EFBIG, "device %s state is too "
                                "large (%zu bytes)", st[i].idstr, st[i].size);
        }
        put_device(j, devs, sid++, st[i].idstr, st[i].instance_id,
                   st[i].version_id, st[i].data, (uint32_t)st[i].size);
    }
    mr_device_state_free_array(st, n);
    snprintf(gs, sizeof(gs), "%s", mr_runstate_name(j->prev_run));
    put_device(j, devs, sid, MIG_GLOBALSTATE_IDSTR, 0, 1, gs, sizeof(gs));
    return 0;
}

/* Stop, SWITCHOVER_START, END with the final pass and the bitmaps,
 * devices, EOF, VMDESC (§5 steps 4-5). */
static int save_complete(struct save_job *j)
{
    json_t *devs = json_array();
    int rc;

    j->prev_run = j->mig->ops->runstate(j->mig->vm);
    j->downtime_start_ms = mig_now_ms();
    publish_stats(j);
    j->downtime_start_bytes = j->mig->out_stats.transferred;
    if ((rc = j->mig->ops->stop(j->mig->vm, MR_RUN_FINISH_MIGRATE, &j->err)))
        goto out;
    j->stopped_vm = true;
    if ((rc = enter_device_state(j)))
        goto out;
    mr_sw_command(&j->w, MIG_CMD_SWITCHOVER_START, NULL, 0);
    mr_sw_section_short(&j->w, QEMU_VM_SECTION_END, MIG_RAM_SECTION_ID);
    if ((rc = sync_dirty(j)) || (rc = send_pass(j)))
        goto out;
    if (j->mapped && (rc = compute_checksums(j)))
        goto out;
    if (j->mapped && (rc = write_bitmaps(j)))
        goto out;
    mr_sw_ram_eos(&j->w);
    mr_sw_section_footer(&j->w, MIG_RAM_SECTION_ID);
    j->mig->ops->dirty_log_stop(j->mig->vm);
    j->dirty_log_on = false;
    if ((rc = save_devices(j, devs)))
        goto out;
    mr_sw_eof(&j->w);
    json_t *desc = json_pack("{s:i,s:O,s:{s:s,s:I}}", "page_size",
                             (int)(j->mig->nblocks ? blk(j, 0)->page_size :
                                   MR_TARGET_PAGE_SIZE), "devices", devs,
                             MR_CKSUM_VMDESC_KEY, "algorithm", "crc32c",
                             "extent-size",
                             (json_int_t)MR_CKSUM_EXTENT_BYTES);
    mr_sw_vmdesc(&j->w, desc);
    json_decref(desc);
    mr_sw_flush(&j->w);
    rc = mr_error_propagate(&j->err, &j->w.err);
    if (!rc)
        rc = write_trailer(j);
out:
    json_decref(devs);
    return rc;
}

static void release(struct save_job *j)
{
    if (j->mf) {
        if (j->err.code)
            mr_multifd_cancel(j->mf);
        mr_multifd_free(j->mf);
        j->mf = NULL;
    }
    if (j->dirty_log_on)
        j->mig->ops->dirty_log_stop(j->mig->vm);
    j->dirty_log_on = false;
    for (unsigned i = 0; i < j->nchan; i++)
        mig_close_fd(j->mig, j->chan_fds[i]);
    mig_close_fd(j->mig, j->main_fd);
    j->nchan = 0;
    j->main_fd = -1;
}

static void free_job(struct save_job *j)
{
    for (size_t b = 0; b < j->mig->nblocks; b++) {
        if (j->dirty)
            free(j->dirty[b]);
        if (j->mblocks)
            free(j->mblocks[b].file_bitmap);
    }
    free(j->dirty);
    free(j->mblocks);
    free(j->swb);
    mr_cksum_free(&j->ck);
    mr_cksum_log_free(&j->log);
    if (j->w_ready)
        mr_sw_destroy(&j->w);
    mr_params_release(&j->params);
    free(j);
}

/* Failure or cancel: restart what we stopped, record, end the state. */
static void save_failed(struct save_job *j)
{
    struct mr_migration *mig = j->mig;
    static const enum mr_mig_status from[] = {
        MR_MIG_SETUP, MR_MIG_ACTIVE, MR_MIG_PRE_SWITCHOVER, MR_MIG_DEVICE };
    struct mr_error ignored = MR_ERROR_INIT;

    if (j->stopped_vm) {
        if (j->prev_run == MR_RUN_RUNNING)
            mig->ops->start(mig->vm, &ignored);
        else
            mig->ops->set_runstate(mig->vm, j->prev_run);
    }
    if (mr_mig_state_cas(&mig->out, MR_MIG_CANCELLING, MR_MIG_CANCELLED))
        return;
    mig_set_out_error(mig, &j->err);
    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++)
        if (mr_mig_state_cas(&mig->out, from[i], MR_MIG_FAILED))
            break;
}

static void *save_thread(void *arg)
{
    struct save_job *j = arg;
    struct mr_migration *mig = j->mig;
    int rc = save_setup(j);

    if (!rc) {
        pthread_mutex_lock(&mig->lock);
        mig->out_stats.setup_time_ms = mig_now_ms() - mig->out_start_ms;
        pthread_mutex_unlock(&mig->lock);
        if (!mr_mig_state_cas(&mig->out, MR_MIG_SETUP, MR_MIG_ACTIVE))
            rc = mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
    }
    if (!rc)
        rc = save_iterate(j);
    if (!rc)
        rc = save_complete(j);
    publish_stats(j);
    release(j);
    if (!rc) {
        int64_t now = mig_now_ms();

        mig->ops->set_runstate(mig->vm, MR_RUN_POSTMIGRATE);
        pthread_mutex_lock(&mig->lock);
        mig->out_stats.total_time_ms = now - mig->out_start_ms;
        mig->out_stats.downtime_ms = now - j->downtime_start_ms;
        pthread_mutex_unlock(&mig->lock);
        if (!mr_mig_state_cas(&mig->out, MR_MIG_DEVICE, MR_MIG_COMPLETED)) {
            /* a cancel won the race after the last byte: honour it */
            mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
            rc = j->err.code;
        }
    }
    if (rc)
        save_failed(j);
    free_job(j);
    return NULL;
}

/* Open the main file: create, never truncate below the offset (§1). */
static int open_main(struct mr_migration *mig, const struct mr_mig_addr *a,
                     struct mr_error *err)
{
    int fd = mig_open(mig, a->path, O_CREAT | O_WRONLY, err);

    if (fd < 0)
        return fd;
    if (mr_sys_default()->ftruncate(fd, (off_t)a->offset) < 0) {
        int e = errno;
        mig_close_fd(mig, fd);
        return mr_error_set(err, -e, "failed to truncate migration file to "
                            "offset %llx: %s", (unsigned long long)a->offset,
                            strerror(e));
    }
    return fd;
}

int mig_start_outgoing(struct mr_migration *mig, const struct mr_mig_addr *a,
                       struct mr_error *err)
{
    struct save_job *j = calloc(1, sizeof(*j));
    bool started = false;

    if (!j)
        return mr_error_set(err, -ENOMEM, "out of memory");
    mr_mig_state_reset(&mig->out);
    pthread_mutex_lock(&mig->lock);
    memset(&mig->out_stats, 0, sizeof(mig->out_stats));
    mr_error_clear(&mig->out_err);
    mig->continue_req = false;
    mig->out_start_ms = mig_now_ms();
    pthread_mutex_unlock(&mig->lock);
    atomic_store(&mig->cancel_req, false);
    mr_mig_state_cas(&mig->out, MR_MIG_NONE, MR_MIG_SETUP);

    j->mig = mig;
    j->addr = *a;
    for (size_t i = 0; i < sizeof(j->chan_fds) / sizeof(j->chan_fds[0]); i++)
        j->chan_fds[i] = -1;
    mig_snapshot(mig, &j->caps, &j->params);
    j->mapped = j->caps.on[MR_CAP_MAPPED_RAM];
    j->dio = mr_direct_io_effective(&j->caps, &j->params);
    j->nchan = (j->mapped && j->caps.on[MR_CAP_MULTIFD]) ?
               j->params.multifd_channels : 0;
    j->main_fd = open_main(mig, a, &j->err);
    if (j->main_fd >= 0) {
        /* Recorded before the thread runs, as for the load thread. */
        pthread_mutex_lock(&mig->lock);
        started = pthread_create(&mig->save_thread, NULL, save_thread, j) == 0;
        mig->save_thread_live = started;
        pthread_mutex_unlock(&mig->lock);
    }
    if (!started) {
        if (!j->err.code)
            mr_error_set(&j->err, -EAGAIN, "cannot start the migration thread");
        mig_close_fd(mig, j->main_fd);
        mig_set_out_error(mig, &j->err);
        mr_mig_state_cas(&mig->out, MR_MIG_SETUP, MR_MIG_FAILED);
        mr_error_propagate(err, &j->err);
        j->nchan = 0;
        free_job(j);
        return err ? err->code : -EIO;
    }
    return 0;
}
