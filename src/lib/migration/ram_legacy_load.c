/*
 * Legacy RAM, load side: pages arrive inline as PAGE/ZERO records and are
 * copied while the stream is parsed, read ahead in large pieces, with the
 * memory faulted in ahead on another CPU.  Memory that cannot be backed
 * (a full tmpfs behind the RAM) fails the load instead of raising SIGBUS.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "format/stream_defs.h"
#include "migration/load_job.h"
#include "migration/populate.h"
#include "migration/ram_format.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define LEGACY_READAHEAD_BYTES (1u << 20)
#define LEGACY_BACKED_STEP (2u << 20)

/* A legacy stream is a page record after another: read it ahead in large
 * pieces and copy the pages out of them (4 KiB reads would cost two reads
 * per page). */
static int legacy_begin(struct load_job *j)
{
    j->populated = calloc(j->mig->nblocks ? j->mig->nblocks : 1,
                          sizeof(*j->populated));
    if (!j->populated)
        return mr_cursor_fail(&j->c, -ENOMEM, "out of memory");
    j->readahead = malloc(LEGACY_READAHEAD_BYTES);
    mr_cursor_set_buffer(&j->c, j->readahead, LEGACY_READAHEAD_BYTES);
    return 0;
}

static void legacy_mem_size(struct load_job *j, uint64_t total)
{
    j->total_bytes = total;
}

static int legacy_block(struct load_job *j, int b,
                        const struct mr_ram_block_entry *e)
{
    (void)j;
    (void)b;
    (void)e;
    return 0;
}

/* A legacy stream's first pass sends every page of every block in order
 * (data or zero record): fault the memory in ahead of the parser, on
 * another CPU, instead of inside each copy (migration/populate.h). */
static void legacy_blocks_done(struct load_job *j)
{
    struct mr_populate *pop = mr_populate_new();

    for (size_t i = 0; pop && i < j->mig->nblocks; i++)
        mr_populate_add(pop, j->mig->blocks[i].host,
                        j->mig->blocks[i].used_length);
    mr_populate_start(pop);
    j->legacy_pop = pop;
}

/* Before a page is stored by memcpy, make sure the kernel can back it:
 * a store into memory it cannot back is a SIGBUS, while populating
 * reports the error (as the channels' preadv does for mapped-ram).  The
 * checked front moves in 2 MiB steps; on a kernel without
 * MADV_POPULATE_WRITE nothing is checked. */
static int ensure_backed(struct load_job *j, int b, uint64_t end)
{
    const struct mr_ram_block *rb = &j->mig->blocks[b];
    uint64_t from = j->populated[b], to;

    if (end <= from)
        return 0;
    to = (end + LEGACY_BACKED_STEP - 1) / LEGACY_BACKED_STEP *
         LEGACY_BACKED_STEP;
    if (to > rb->used_length)
        to = rb->used_length;
    if (madvise(rb->host + from, to - from, MADV_POPULATE_WRITE) == 0) {
        j->populated[b] = to;
        return 0;
    }
    if (errno == EINVAL) {
        j->populated[b] = rb->used_length;
        return 0;
    }
    return LOAD_FAIL(j, -errno, "Cannot back guest RAM block %s at 0x%llx: "
                     "%s", rb->name, ULL(from), strerror(errno));
}

static int load_page(struct load_job *j, const struct mr_ram_page_record *r)
{
    int b = -1;
    const struct mr_ram_block *rb;

    for (size_t i = 0; i < j->mig->nblocks && b < 0; i++)
        if (strcmp(j->mig->blocks[i].name, r->idstr) == 0)
            b = (int)i;
    if (b < 0)
        return mr_cursor_fail(&j->c, -EINVAL, "Can't find block %s", r->idstr);
    rb = &j->mig->blocks[b];
    if (r->addr % rb->page_size || r->addr >= rb->used_length)
        return LOAD_FAIL(j, -EINVAL, "Illegal RAM offset 0x%llx in block %s "
                         "of 0x%llx bytes", ULL(r->addr), rb->name,
                         ULL(rb->used_length));
    if (ensure_backed(j, b, r->addr + rb->page_size))
        return j->c.err.code;
    if (r->flags & RAM_SAVE_FLAG_PAGE) {
        const uint8_t *data = mr_cursor_peek(&j->c, r->data_offset,
                                             (size_t)rb->page_size);

        if (data)
            memcpy(rb->host + r->addr, data, rb->page_size);
        else if (mr_source_read(&j->src, rb->host + r->addr, rb->page_size,
                                r->data_offset, &j->c.err))
            return j->c.err.code;
    } else if (r->flags & RAM_SAVE_FLAG_ZERO) {
        if (r->fill)
            return LOAD_FAIL(j, -EINVAL, "Found a zero page with value %u",
                             r->fill);
        memset(rb->host + r->addr, 0, rb->page_size);
    } else {
        return LOAD_FAIL(j, -ENOTSUP, "Unsupported RAM record flags 0x%x",
                         r->flags);
    }
    j->done_bytes += rb->page_size;
    if ((j->done_bytes / rb->page_size) % 1024 == 0)
        load_publish(j);
    return 0;
}

int mig_ram_legacy_records(struct load_job *j,
                           int (*on_flush)(struct load_job *j))
{
    struct mr_ram_page_record r;

    for (;;) {
        int rc = mr_ram_read_page_record(&j->c, false, MR_TARGET_PAGE_SIZE,
                                         &j->pctx, &r);
        if (rc)
            return rc;
        if (r.flags & RAM_SAVE_FLAG_EOS)
            return 0;
        if (r.flags & RAM_SAVE_FLAG_MULTIFD_FLUSH) {
            if (on_flush && (rc = on_flush(j)))
                return rc;
            continue;
        }
        if ((rc = load_page(j, &r)))
            return rc;
        if (load_cancelled(j))
            return LOAD_FAIL(j, -ECANCELED, "Migration cancelled");
    }
}

static int legacy_payload(struct load_job *j)
{
    return mig_ram_legacy_records(j, NULL);
}

/* Every page came inline. */
static int legacy_fetch_all(struct load_job *j)
{
    (void)j;
    return 0;
}

static void legacy_release(struct load_job *j)
{
    mr_cursor_set_buffer(&j->c, NULL, 0);
    free(j->readahead);
    j->readahead = NULL;
    mr_populate_free(j->legacy_pop);
    j->legacy_pop = NULL;
    free(j->populated);
    j->populated = NULL;
}

const struct mig_ram_load_ops mig_ram_load_legacy = {
    .name = "legacy",
    .wire_mapped = false,
    .nchannels = mig_ram_no_channels,
    .begin = legacy_begin,
    .mem_size = legacy_mem_size,
    .block = legacy_block,
    .blocks_done = legacy_blocks_done,
    .payload = legacy_payload,
    .fetch_all = legacy_fetch_all,
    .release = legacy_release,
};
