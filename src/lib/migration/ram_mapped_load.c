/*
 * Mapped-ram, load side: the block list gives each block's bitmap and
 * pages area (the one layout rule, format/layout.h); once the stream was
 * checked the set pages are read by the multifd channels in pieces of at
 * most 1 MiB, or per 1 MiB extent verified against the checksum trailer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/mapped_ram.h"
#include "migration/load_job.h"
#include "migration/populate.h"
#include "migration/ram_format.h"
#include "multifd/multifd.h"

static int mapped_begin(struct load_job *j)
{
    (void)j;
    return 0;
}

static void mapped_mem_size(struct load_job *j, uint64_t total)
{
    (void)j;
    (void)total;
}

/* One block entry of the stream: its page size against the local block,
 * then the layout rule shared with `mapram verify` (format/layout.h). */
static int check_layout(struct load_job *j, const struct mr_ram_block *rb,
                        const struct mr_ram_block_entry *e)
{
    if (e->page_size != rb->page_size)
        return LOAD_FAIL(j, -EINVAL, "RAM block %s: file page size 0x%llx, "
                         "local 0x%llx", rb->name, ULL(e->page_size),
                         ULL(rb->page_size));
    if (mr_layout_add(&j->layout, e, j->src.size, &j->c.err))
        return j->c.err.code;
    return 0;
}

static struct load_plan *new_plan(struct load_job *j)
{
    if (j->nplans == j->plans_cap) {
        size_t cap = j->plans_cap ? j->plans_cap * 2 : 8;
        struct load_plan *p = realloc(j->plans, cap * sizeof(*p));

        if (!p)
            return NULL;
        j->plans = p;
        j->plans_cap = cap;
    }
    memset(&j->plans[j->nplans], 0, sizeof(j->plans[0]));
    return &j->plans[j->nplans];
}

static int mapped_block(struct load_job *j, int b,
                        const struct mr_ram_block_entry *e)
{
    struct load_plan *p;
    uint64_t bytes;

    if (check_layout(j, &j->mig->blocks[b], e))
        return j->c.err.code;
    if (!(p = new_plan(j)))
        return mr_cursor_fail(&j->c, -ENOMEM, "out of memory");
    p->block = (size_t)b;
    p->pages_offset = e->pages_offset;
    p->page_size = e->page_size;
    p->num_pages = e->used_length / e->page_size;
    bytes = mr_mapped_ram_bitmap_size(p->num_pages);
    p->bitmap = malloc(bytes ? bytes : 1);
    if (!p->bitmap)
        return mr_cursor_fail(&j->c, -ENOMEM, "out of memory for a bitmap");
    j->nplans++;
    if (mr_source_read(&j->src, p->bitmap, bytes, e->bitmap_offset, NULL))
        return mr_cursor_fail(&j->c, -EIO, "Error reading dirty bitmap");
    j->total_bytes += mr_bitmap_le64_count(p->bitmap, p->num_pages) *
                      p->page_size;
    return 0;
}

static void mapped_blocks_done(struct load_job *j)
{
    (void)j;
}

static int mapped_payload(struct load_job *j)
{
    return mr_ram_read_eos(&j->c);
}

/* The ranges the channels will read, in their order, for the
 * populate-ahead thread (migration/populate.h). */
static struct mr_populate *populate_plan(struct load_job *j)
{
    struct mr_populate *pop = mr_populate_new();

    for (size_t i = 0; pop && i < j->nplans; i++) {
        const struct load_plan *p = &j->plans[i];
        const struct mr_ram_block *rb = &j->mig->blocks[p->block];
        uint64_t a, b;

        for (uint64_t from = 0;
             mr_bitmap_le64_next_run(p->bitmap, p->num_pages, from, &a, &b);
             from = b)
            if (b * p->page_size <= rb->used_length)
                mr_populate_add(pop, rb->host + a * p->page_size,
                                (b - a) * p->page_size);
    }
    mr_populate_start(pop);
    return pop;
}

/* The trailer's entry for a plan must describe the same block layout. */
static const struct mr_cksum_block *ck_block(struct load_job *j,
                                             const struct load_plan *p)
{
    const char *name = j->mig->blocks[p->block].name;
    const struct mr_cksum_block *cb = mr_cksum_find(&j->ck, name);

    if (!cb)
        mr_error_set(&j->err, -EINVAL, "checksum trailer has no entry for "
                     "RAM block %s", name);
    else if (cb->page_size != p->page_size ||
             cb->pages_offset != p->pages_offset ||
             cb->used_length != p->num_pages * p->page_size)
        mr_error_set(&j->err, -EINVAL, "checksum trailer: RAM block %s "
                     "layout differs from the stream's", name);
    else
        return cb;
    return NULL;
}

static uint64_t extent_present(const struct load_plan *p, uint64_t e)
{
    uint64_t per = mr_cksum_extent_pages(p->page_size), n = 0;
    uint64_t end = (e + 1) * per < p->num_pages ? (e + 1) * per : p->num_pages;

    for (uint64_t q = e * per; q < end; q++)
        n += mr_bitmap_le64_test(p->bitmap, q);
    return n;
}

/* With a trailer: every extent is read and verified by a channel. */
static int fetch_verified(struct load_job *j)
{
    int rc = 0;

    for (size_t i = 0; i < j->nplans && !rc; i++) {
        const struct load_plan *p = &j->plans[i];
        const struct mr_cksum_block *cb = ck_block(j, p);
        struct mr_multifd_extent x = { 0 };

        if (!cb)
            return j->err.code;
        x.block = cb->name;
        x.host = j->mig->blocks[p->block].host;
        x.page_size = p->page_size;
        x.num_pages = p->num_pages;
        x.pages_offset = p->pages_offset;
        x.bitmap = p->bitmap;
        for (uint64_t e = 0; !rc && e < cb->nr_extents; e++) {
            if (load_cancelled(j))
                return mr_error_set(&j->err, -ECANCELED,
                                    "Migration cancelled");
            x.extent = e;
            x.crc = cb->crc[e];
            rc = mr_multifd_queue_extent(j->mf, &x, &j->err);
            j->done_bytes += extent_present(p, e) * p->page_size;
            load_publish(j);
        }
    }
    return rc ? rc : mr_multifd_sync(j->mf, &j->err);
}

/* One run of set bits [a, b) of a plan, cut into <= 1 MiB pieces. */
static int fetch_run(struct load_job *j, const struct load_plan *p,
                     uint64_t a, uint64_t b)
{
    const struct mr_ram_block *rb = &j->mig->blocks[p->block];
    int rc = 0;

    for (uint64_t off = a * p->page_size; !rc && off < b * p->page_size;
         off += MAPPED_RAM_LOAD_BUF_SIZE) {
        uint64_t len = b * p->page_size - off;

        if (len > MAPPED_RAM_LOAD_BUF_SIZE)
            len = MAPPED_RAM_LOAD_BUF_SIZE;
        if (load_cancelled(j))
            return mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
        if (off >= rb->used_length)
            return mr_error_set(&j->err, -EINVAL, "page outside of "
                                "ramblock %s range", rb->name);
        rc = mr_multifd_queue_read(j->mf, rb->host + off, len,
                                   p->pages_offset + off, &j->err);
        j->done_bytes += len;
        load_publish(j);
    }
    return rc;
}

static int fetch_plain(struct load_job *j)
{
    int rc = 0;

    for (size_t i = 0; i < j->nplans && !rc; i++) {
        const struct load_plan *p = &j->plans[i];
        uint64_t a, b;

        for (uint64_t from = 0; !rc &&
             mr_bitmap_le64_next_run(p->bitmap, p->num_pages, from, &a, &b);
             from = b)
            rc = fetch_run(j, p, a, b);
    }
    return rc ? rc : mr_multifd_sync(j->mf, &j->err);
}

static int mapped_fetch_all(struct load_job *j)
{
    struct mr_multifd_config cfg = { 0 };
    struct mr_populate *pop;
    int rc;

    cfg.nchannels = j->ch.nchan;
    cfg.fds = j->ch.fds;
    cfg.sync_fd = j->ch.main_fd;
    cfg.direct_io = j->ch.dio;
    cfg.engine = j->io_engine;
    j->mf = mr_multifd_new(&cfg, &j->err);
    if (!j->mf)
        return j->err.code;
    pop = populate_plan(j);
    rc = j->have_ck ? fetch_verified(j) : fetch_plain(j);
    mr_populate_free(pop);
    return rc;
}

static void mapped_release(struct load_job *j)
{
    if (j->mf) {
        if (j->err.code)
            mr_multifd_cancel(j->mf);
        mr_multifd_free(j->mf);
        j->mf = NULL;
    }
    for (size_t i = 0; i < j->nplans; i++)
        free(j->plans[i].bitmap);
    free(j->plans);
    j->plans = NULL;
    j->nplans = j->plans_cap = 0;
    mr_layout_free(&j->layout);
}

const struct mig_ram_load_ops mig_ram_load_mapped = {
    .name = "mapped-ram",
    .wire_mapped = true,
    .nchannels = mig_ram_multifd_channels,
    .begin = mapped_begin,
    .mem_size = mapped_mem_size,
    .block = mapped_block,
    .blocks_done = mapped_blocks_done,
    .payload = mapped_payload,
    .fetch_all = mapped_fetch_all,
    .release = mapped_release,
};
