/*
 * The page channels of multifd.h on the worker pool (pool.h): checks what
 * the migration code asks for, collects save pages into batches, and hands
 * every request on as one job descriptor (jobs.h) through one submit.
 * Owns the channels (a descriptor and an I/O engine each) and the batches.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "format/cksum.h"
#include "format/stream_defs.h"
#include "io/engine.h"
#include "multifd/jobs.h"
#include "multifd/multifd.h"
#include "multifd/multifd_internal.h"
#include "multifd/pool.h"

#define MR_MULTIFD_MAX_CHANNELS 255
#define MR_MULTIFD_MAX_PAGE_SIZE 0x40000000ULL

struct mr_multifd {
    unsigned nch;                  /* 0: jobs run on the caller */
    struct mr_channel *ch;         /* max(nch, 1) */
    struct mr_pool *pool;
    struct mr_multifd_block *blocks;
    size_t nblocks;
    bool direct_io;
    enum mr_zero_page_detection zero_detection;
    unsigned zero_gap;
    size_t batch_cap;              /* pages a batch can hold */

    /* Save batches: the caller's, being filled; those back from channels
     * (each channel holds at most one, so one is always spare when the
     * caller needs it); and all max(nch, 1) + 1 of them. */
    struct mr_page_batch *cur;
    struct mr_page_batch **spare;
    size_t nspare;
    struct mr_page_batch **batches;
    size_t nbatches;
};

static int fail(struct mr_multifd *m, struct mr_error *err,
                const struct mr_error *e)
{
    return mr_pool_fail(m->pool, e, err);
}

/* ---- the one way out: every job goes through here ------------------------ */

/* A batch coming back with the descriptor a channel finished is spare. */
static int submit(struct mr_multifd *m, struct mr_pool_job job,
                  struct mr_error *err)
{
    int r = mr_pool_submit(m->pool, &job, err);

    if (job.obj)
        m->spare[m->nspare++] = job.obj;
    return r;
}

/* The batch goes to a channel (or, refused or run inline, comes straight
 * back); the caller goes on with an empty one. */
static int dispatch_batch(struct mr_multifd *m, struct mr_error *err)
{
    int r = submit(m, mr_job_write(m->cur, m->zero_detection ==
                                   MR_ZERO_PAGE_CHANNEL, m->zero_gap), err);

    m->cur = m->spare[--m->nspare];
    m->cur->npages = 0;
    return r;
}

/* ---- save ------------------------------------------------------------------ */

static int check_page(struct mr_multifd *m, size_t block_idx,
                      uint64_t page_index, struct mr_error *err)
{
    struct mr_error e = MR_ERROR_INIT;
    const struct mr_multifd_block *b;

    if (block_idx >= m->nblocks) {
        mr_error_set(&e, -EINVAL, "multifd: no RAM block %zu (have %zu)",
                     block_idx, m->nblocks);
        return fail(m, err, &e);
    }
    b = &m->blocks[block_idx];
    if (page_index >= b->used_length / b->page_size) {
        mr_error_set(&e, -EINVAL, "offset %" PRIx64 "outside of ramblock %s "
                     "range", page_index * b->page_size, b->name);
        return fail(m, err, &e);
    }
    return 0;
}

int mr_multifd_queue_page(struct mr_multifd *m, size_t block_idx,
                          uint64_t page_index, struct mr_error *err)
{
    struct mr_page_batch *bt = m->cur;
    const struct mr_multifd_block *b;
    int r = mr_pool_error(m->pool, err);

    if (r || (r = check_page(m, block_idx, page_index, err)))
        return r;
    b = &m->blocks[block_idx];
    if (bt->npages && (bt->block != b ||
                       bt->npages >= MR_MULTIFD_BATCH_BYTES / b->page_size ||
                       bt->npages >= m->batch_cap)) {
        r = dispatch_batch(m, err);
        if (r)
            return r;
        bt = m->cur;
    }
    bt->block = b;
    bt->pages[bt->npages++] = page_index;
    return 0;
}

int mr_multifd_flush(struct mr_multifd *m, struct mr_error *err)
{
    int r = mr_pool_error(m->pool, err);

    if (r || m->cur->npages == 0)
        return r;
    return dispatch_batch(m, err);
}

/* Extents per checksum job: 16 MiB of 4 KiB pages, enough to keep the
 * hand-off cost negligible and the channels evenly loaded. */
#define CSUM_JOB_EXTENTS 16

int mr_multifd_checksum(struct mr_multifd *m, uint32_t *const *crc,
                        struct mr_error *err)
{
    int r = mr_multifd_sync(m, err);

    for (size_t b = 0; !r && b < m->nblocks; b++) {
        const struct mr_multifd_block *bl = &m->blocks[b];
        uint64_t n = mr_cksum_nr_extents(bl->used_length, bl->page_size);

        for (uint64_t e = 0; !r && e < n; e += CSUM_JOB_EXTENTS)
            r = submit(m, mr_job_checksum(bl, e, n - e < CSUM_JOB_EXTENTS ?
                                          n - e : CSUM_JOB_EXTENTS, crc[b]),
                       err);
    }
    return r ? r : mr_multifd_sync(m, err);
}

/* ---- load ------------------------------------------------------------------ */

static int check_read(struct mr_multifd *m, const void *host, uint64_t len,
                      uint64_t file_offset, struct mr_error *err)
{
    struct mr_error e = MR_ERROR_INIT;

    if (len > SIZE_MAX / 2 || file_offset > (uint64_t)INT64_MAX - len)
        mr_error_set(&e, -EINVAL, "multifd: read of 0x%" PRIx64 " bytes at "
                     "0x%" PRIx64 " is out of range", len, file_offset);
    else if (m->direct_io && (((uintptr_t)host | len | file_offset) &
                              (MR_TARGET_PAGE_SIZE - 1)))
        mr_error_set(&e, -EINVAL, "multifd: read of 0x%" PRIx64 " bytes at "
                     "0x%" PRIx64 " is not page-aligned, as direct-io needs",
                     len, file_offset);
    return mr_error_is_set(&e) ? fail(m, err, &e) : 0;
}

int mr_multifd_queue_read(struct mr_multifd *m, void *host, uint64_t len,
                          uint64_t file_offset, struct mr_error *err)
{
    int r = mr_pool_error(m->pool, err);

    if (r || (r = check_read(m, host, len, file_offset, err)) || len == 0)
        return r;
    return submit(m, mr_job_read(host, len, file_offset), err);
}

static bool extent_in_range(const struct mr_multifd_extent *x)
{
    uint64_t bytes;

    if (x->page_size == 0 || x->num_pages > UINT64_MAX / x->page_size)
        return false;
    bytes = x->num_pages * x->page_size;
    return x->extent < mr_cksum_nr_extents(bytes, x->page_size) &&
           x->pages_offset <= (uint64_t)INT64_MAX - bytes;
}

int mr_multifd_queue_extent(struct mr_multifd *m,
                            const struct mr_multifd_extent *x,
                            struct mr_error *err)
{
    struct mr_error e = MR_ERROR_INIT;

    if (!extent_in_range(x))
        mr_error_set(&e, -EINVAL, "multifd: extent %" PRIu64 " of block %s "
                     "is out of range", x->extent, x->block);
    else if (m->direct_io && (((uintptr_t)x->host | x->pages_offset |
                               x->page_size) & (MR_TARGET_PAGE_SIZE - 1)))
        mr_error_set(&e, -EINVAL, "multifd: extent %" PRIu64 " of block %s "
                     "is not page-aligned, as direct-io needs", x->extent,
                     x->block);
    if (mr_error_is_set(&e))
        return fail(m, err, &e);
    return submit(m, mr_job_verify_extent(x), err);
}

static bool fill_ok(const struct mr_multifd *m, const struct mr_multifd_fill *f)
{
    uint64_t per = f->page_size ? mr_cksum_extent_pages(f->page_size) : 0;

    if (!f->done || !f->buf || !f->page_size || f->end <= f->first ||
        f->end - f->first > SIZE_MAX / 2 / f->page_size)
        return false;
    if (f->crc && (!per || f->first % per))
        return false;
    return !m->direct_io || !(((uintptr_t)f->buf | f->pages_offset |
                               f->page_size) & (MR_TARGET_PAGE_SIZE - 1));
}

int mr_multifd_queue_fill(struct mr_multifd *m, struct mr_multifd_fill *f,
                          struct mr_error *err)
{
    struct mr_error e = MR_ERROR_INIT;
    int r = mr_pool_error(m->pool, err);

    if (r)
        return r;
    if (!fill_ok(m, f)) {
        mr_error_set(&e, -EINVAL, "multifd: fill of pages 0x%" PRIx64 "-0x%"
                     PRIx64 " of block %s is malformed or not aligned",
                     f->first, f->end, f->block);
        return fail(m, err, &e);
    }
    return submit(m, mr_job_fill(f), err);
}

/* ---- both ------------------------------------------------------------------ */

/* Flushes the partial batch first, so "everything queued" is on disk (or
 * failed) when this returns 0. */
int mr_multifd_sync(struct mr_multifd *m, struct mr_error *err)
{
    mr_multifd_flush(m, NULL);
    return mr_pool_wait(m->pool, err);
}

void mr_multifd_cancel(struct mr_multifd *m)
{
    struct mr_error e = MR_ERROR_INIT;

    mr_error_set(&e, -ECANCELED, "multifd: cancelled");
    mr_pool_cancel(m->pool, &e);
}

void mr_multifd_get_stats(struct mr_multifd *m, struct mr_multifd_stats *st)
{
    uint64_t c[MR_POOL_COUNTERS];

    mr_pool_counters(m->pool, c);
    *st = (struct mr_multifd_stats){
        .normal_pages = c[MR_CNT_NORMAL_PAGES],
        .zero_pages = c[MR_CNT_ZERO_PAGES],
        .bytes_written = c[MR_CNT_BYTES_WRITTEN],
        .bytes_read = c[MR_CNT_BYTES_READ],
        .requests = c[MR_CNT_REQUESTS],
    };
}

void mr_multifd_set_zero_gap(struct mr_multifd *m, unsigned max_pages)
{
    m->zero_gap = max_pages;
}

/* ---- construction ---------------------------------------------------------- */

static int check_block(const struct mr_multifd_config *cfg, size_t i,
                       struct mr_error *err)
{
    const struct mr_multifd_block *b = &cfg->blocks[i];
    const char *name = b->name ? b->name : "?";
    uint64_t ps = b->page_size;

    /* Pages larger than a batch are sent one per batch. */
    if (ps < 64 || (ps & (ps - 1)) || ps > MR_MULTIFD_MAX_PAGE_SIZE)
        return mr_error_set(err, -EINVAL, "multifd: block %s has page size "
                            "%" PRIu64 ", expected a power of two from 64 to "
                            "0x%llx", name, ps, MR_MULTIFD_MAX_PAGE_SIZE);
    if (!b->host || !b->file_bitmap || b->used_length % ps)
        return mr_error_set(err, -EINVAL, "multifd: block %s needs host "
                            "memory, a file bitmap and a used length that is "
                            "a multiple of %" PRIu64, name, ps);
    if (((uintptr_t)b->host | b->pages_offset) % ps)
        return mr_error_set(err, -EINVAL, "multifd: block %s memory and "
                            "pages offset 0x%" PRIx64 " must be aligned to "
                            "its page size", name, b->pages_offset);
    return 0;
}

static int check_config(const struct mr_multifd_config *cfg,
                        struct mr_error *err)
{
    int r;

    if (cfg->nchannels > MR_MULTIFD_MAX_CHANNELS)
        return mr_error_set(err, -EINVAL, "multifd: %u channels, expected at "
                            "most %d", cfg->nchannels, MR_MULTIFD_MAX_CHANNELS);
    if (cfg->nchannels == 0 && cfg->sync_fd < 0)
        return mr_error_set(err, -EBADF, "multifd: no channels and no "
                            "descriptor for synchronous I/O");
    if (cfg->nchannels && !cfg->fds)
        return mr_error_set(err, -EINVAL, "multifd: %u channels but no "
                            "descriptors", cfg->nchannels);
    if (cfg->nblocks && !cfg->blocks)
        return mr_error_set(err, -EINVAL, "multifd: %zu blocks but no block "
                            "list", cfg->nblocks);
    if (!mr_io_find(cfg->engine))
        return mr_error_set(err, -EINVAL, "Unknown I/O engine '%s' (expected "
                            "auto, psync or io_uring)", cfg->engine);
    for (size_t i = 0; i < cfg->nblocks; i++) {
        r = check_block(cfg, i, err);
        if (r)
            return r;
    }
    return 0;
}

/* Smallest page size decides how many pages one batch can hold. */
static size_t batch_capacity(const struct mr_multifd_config *cfg)
{
    uint64_t min_ps = MR_MULTIFD_BATCH_BYTES;

    for (size_t i = 0; i < cfg->nblocks; i++)
        if (cfg->blocks[i].page_size < min_ps)
            min_ps = cfg->blocks[i].page_size;
    return (size_t)(MR_MULTIFD_BATCH_BYTES / min_ps);
}

static int channels_open(struct mr_multifd *m,
                         const struct mr_multifd_config *cfg,
                         struct mr_error *err)
{
    unsigned n = cfg->nchannels ? cfg->nchannels : 1;

    m->ch = calloc(n, sizeof(*m->ch));
    if (!m->ch)
        return mr_error_set(err, -ENOMEM, "multifd: out of memory");
    for (unsigned i = 0; i < n; i++) {
        struct mr_channel *c = &m->ch[i];

        c->id = i;
        c->fd = cfg->nchannels ? cfg->fds[i] : cfg->sync_fd;
        c->on_caller = cfg->nchannels == 0;
        c->io = mr_io_engine_open_fd(cfg->engine, MR_MULTIFD_IO_DEPTH, c->fd,
                                     err);
        if (!c->io)
            return mr_error_prefix(err, "multifd channel %u: ", i);
    }
    return 0;
}

static int batches_alloc(struct mr_multifd *m, struct mr_error *err)
{
    size_t n = (m->nch ? m->nch : 1) + 1;

    m->batches = calloc(n, sizeof(*m->batches));
    m->spare = calloc(n, sizeof(*m->spare));
    if (!m->batches || !m->spare)
        return mr_error_set(err, -ENOMEM, "multifd: out of memory");
    m->nbatches = n;
    for (size_t i = 0; i < n; i++) {
        m->batches[i] = mr_page_batch_new(m->batch_cap);
        if (!m->batches[i])
            return mr_error_set(err, -ENOMEM, "multifd: out of memory");
        if (i)
            m->spare[m->nspare++] = m->batches[i];
    }
    m->cur = m->batches[0];
    return 0;
}

static int pool_start(struct mr_multifd *m, struct mr_error *err)
{
    unsigned n = m->nch ? m->nch : 1;
    void **ctx = calloc(n, sizeof(*ctx));
    struct mr_pool_config cfg = {
        .nthreads = m->nch, .workers = ctx,
        .thread_name = m->nblocks ? "mr/send" : "mr/recv",
    };

    if (!ctx)
        return mr_error_set(err, -ENOMEM, "multifd: out of memory");
    for (unsigned i = 0; i < n; i++)
        ctx[i] = &m->ch[i];
    m->pool = mr_pool_new(&cfg, err);
    free(ctx);
    return m->pool ? 0 : mr_error_prefix(err, "multifd: ");
}

static int copy_blocks(struct mr_multifd *m,
                       const struct mr_multifd_config *cfg,
                       struct mr_error *err)
{
    m->nblocks = cfg->nblocks;
    if (!cfg->nblocks)
        return 0;
    m->blocks = calloc(cfg->nblocks, sizeof(*m->blocks));
    if (!m->blocks)
        return mr_error_set(err, -ENOMEM, "multifd: out of memory");
    memcpy(m->blocks, cfg->blocks, cfg->nblocks * sizeof(*m->blocks));
    return 0;
}

struct mr_multifd *mr_multifd_new(const struct mr_multifd_config *cfg,
                                  struct mr_error *err)
{
    struct mr_multifd *m;

    if (check_config(cfg, err))
        return NULL;
    m = calloc(1, sizeof(*m));
    if (!m) {
        mr_error_set(err, -ENOMEM, "multifd: out of memory");
        return NULL;
    }
    m->nch = cfg->nchannels;
    m->direct_io = cfg->direct_io;
    m->zero_detection = cfg->zero_detection;
    m->zero_gap = MR_MULTIFD_ZERO_GAP_DEFAULT;
    m->batch_cap = batch_capacity(cfg);
    if (copy_blocks(m, cfg, err) || channels_open(m, cfg, err) ||
        batches_alloc(m, err) || pool_start(m, err)) {
        mr_multifd_free(m);
        return NULL;
    }
    return m;
}

void mr_multifd_free(struct mr_multifd *m)
{
    if (!m)
        return;
    /* Joins the threads: nothing below is in use after this. */
    mr_pool_free(m->pool);
    for (unsigned i = 0; m->ch && i < (m->nch ? m->nch : 1); i++)
        mr_io_engine_close(m->ch[i].io);
    for (size_t i = 0; i < m->nbatches; i++)
        mr_page_batch_free(m->batches[i]);
    free(m->batches);
    free(m->spare);
    free(m->ch);
    free(m->blocks);
    free(m);
}
