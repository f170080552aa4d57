/*
 * The page-channel pool of multifd.h: N threads, each owning one borrowed
 * descriptor and one I/O engine instance, fed by the caller's thread.
 *
 * Hand-off.  One mutex (m->lock) guards every channel's `job` field and
 * the pool's error and stats.  The caller fills m->cur without the lock;
 * dispatch swaps m->cur with the empty batch an idle channel holds, so
 * pages are never copied, and the mutex is the release/acquire pair that
 * publishes the filled batch to the channel (and the emptied one back).
 * A channel works on its job without the lock and hands back under it,
 * broadcasting m->idle, which both dispatch (waiting for any idle
 * channel) and sync (waiting for all) sleep on: nobody busy-waits.
 *
 * Errors: each job's error lands in m->err if none is there yet; later
 * calls return it.  `failed` mirrors m->err.code so the per-page path can
 * check it without taking the lock.
 *
 * With nchannels == 0 a single channel structure with no thread runs each
 * job inline on the caller's thread, on sync_fd.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/cksum.h"
#include "format/mapped_ram.h"
#include "format/stream_defs.h"
#include "io/engine.h"
#include "multifd/batch.h"
#include "multifd/multifd.h"
#include "multifd/multifd_internal.h"
#include "multifd/zero.h"
#include "util/bitmap.h"

#define MR_MULTIFD_MAX_CHANNELS 255
#define MR_MULTIFD_MAX_PAGE_SIZE 0x40000000ULL

struct batch {
    size_t block_idx;
    size_t npages;
    uint64_t *pages;           /* block-relative page indexes */
};

enum job_kind {
    JOB_NONE,                  /* idle */
    JOB_SAVE,
    JOB_READ,
    JOB_EXTENT,                /* read one extent and verify its CRC */
    JOB_CSUM,                  /* compute extent checksums (save) */
};

struct channel {
    struct mr_multifd *m;
    unsigned id;
    int fd;
    pthread_t thread;
    bool thread_started;
    pthread_cond_t wake;
    struct mr_io_engine *io;

    /* Under m->lock: what the channel was handed. */
    enum job_kind job;
    struct batch *batch;       /* empty while idle */
    uint8_t *rd_host;
    uint64_t rd_len;
    uint64_t rd_offset;
    struct mr_multifd_extent ext;      /* JOB_EXTENT */
    size_t cs_block;                   /* JOB_CSUM: block, extents, out */
    uint64_t cs_first, cs_count;
    uint32_t *cs_out;

    /* The channel's own scratch, sized for one batch. */
    uint8_t *kind;
    struct mr_page_run *runs;
    struct iovec *iov;
    struct mr_io_req *reqs;
    struct mr_multifd_stats st;     /* this job's counts */
};

struct mr_multifd {
    unsigned nch;                  /* 0: inline */
    struct channel *ch;            /* max(nch, 1) entries */
    struct mr_multifd_block *blocks;
    size_t nblocks;
    bool direct_io;
    enum mr_zero_page_detection zero_detection;
    unsigned zero_gap;
    size_t batch_cap;              /* pages a batch array can hold */

    struct batch *cur;             /* caller's batch being filled */
    struct batch *batches;         /* nch + 1 (or 1 + 1) batch objects */
    unsigned next;                 /* round-robin start */

    pthread_mutex_t lock;
    pthread_cond_t idle;
    bool quit;
    int failed;                    /* atomic mirror of err.code */
    int cancelled;                 /* atomic */
    struct mr_error err;
    struct mr_multifd_stats stats;
};

/* ---- recording errors ------------------------------------------------ */

/* First error wins, across channels and the caller. */
static int record_locked(struct mr_multifd *m, const struct mr_error *e)
{
    mr_error_propagate(&m->err, e);
    __atomic_store_n(&m->failed, m->err.code, __ATOMIC_RELEASE);
    return m->err.code;
}

static int record(struct mr_multifd *m, const struct mr_error *e)
{
    int code;

    pthread_mutex_lock(&m->lock);
    code = record_locked(m, e);
    pthread_mutex_unlock(&m->lock);
    return code;
}

static int sticky(struct mr_multifd *m, struct mr_error *err)
{
    int code;

    if (!__atomic_load_n(&m->failed, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&m->lock);
    code = mr_error_propagate(err, &m->err);
    pthread_mutex_unlock(&m->lock);
    return code;
}

/* Record a new error from the caller's side and return it in `err`. */
static int fail(struct mr_multifd *m, struct mr_error *err,
                const struct mr_error *e)
{
    record(m, e);
    return sticky(m, err);
}

/* ---- the work of one job (channel thread, or caller when inline) ------ */

static bool page_is_zero(const struct mr_multifd_block *b, uint64_t page)
{
    return mr_page_is_zero(b->host + page * b->page_size,
                           (size_t)b->page_size);
}

#define ZERO_TEST_PREFETCH_PAGES 8

/* Zero test, bitmap updates and the writes of one batch. */
static int run_save(struct channel *c, struct batch *bt, struct mr_error *e)
{
    struct mr_multifd *m = c->m;
    const struct mr_multifd_block *b = &m->blocks[bt->block_idx];
    bool detect = m->zero_detection == MR_ZERO_PAGE_CHANNEL;
    size_t n = bt->npages, nruns;
    int r;

    mr_batch_sort(bt->pages, n);
    for (size_t i = 0; i < n; i++) {
        /* A data page is told apart by its first bytes, so the test costs
         * one cache miss per page, which the CPU's prefetchers (they stop
         * at page boundaries) do not hide: ask for pages ahead. */
        if (detect && i + ZERO_TEST_PREFETCH_PAGES < n)
            __builtin_prefetch(b->host + bt->pages[i + ZERO_TEST_PREFETCH_PAGES] *
                               b->page_size);
        c->kind[i] = detect && page_is_zero(b, bt->pages[i]) ? MR_PAGE_ZERO
                                                             : MR_PAGE_DATA;
    }
    nruns = mr_batch_plan(bt->pages, c->kind, n, m->zero_gap, c->runs);
    for (size_t i = 0; i < n; i++) {
        if (c->kind[i] == MR_PAGE_ZERO) {
            mr_bitmap_clear_atomic(b->file_bitmap, bt->pages[i]);
            c->st.zero_pages++;
        }
    }
    for (size_t k = 0; k < nruns; k++) {
        uint64_t off = c->runs[k].first * b->page_size;

        c->iov[k].iov_base = b->host + off;
        c->iov[k].iov_len = (size_t)(c->runs[k].nr_pages * b->page_size);
        mr_io_req_init(&c->reqs[k], c->fd, MR_IO_WRITE, b->pages_offset + off,
                       &c->iov[k], 1);
    }
    r = mr_io_run(c->io, c->reqs, nruns);
    c->st.requests += nruns;
    /* Bits are set only for runs the file now holds. */
    for (size_t k = 0; k < nruns; k++) {
        if (c->reqs[k].result)
            continue;
        mr_bitmap_set_range_atomic(b->file_bitmap, c->runs[k].first,
                                   c->runs[k].nr_pages);
        c->st.normal_pages += c->runs[k].nr_pages;
        c->st.bytes_written += c->runs[k].nr_pages * b->page_size;
    }
    if (r < 0)
        return mr_error_set(e, r, "Unable to write to file: %s", strerror(-r));
    return 0;
}

static int run_read(struct channel *c, struct mr_error *e)
{
    struct iovec iov = { c->rd_host, (size_t)c->rd_len };
    struct mr_io_req req;
    int r;

    mr_io_req_init(&req, c->fd, MR_IO_READ, c->rd_offset, &iov, 1);
    r = mr_io_run(c->io, &req, 1);
    c->st.requests++;
    c->st.bytes_read += req.done;
    if (r == 0)
        return 0;
    if (c->m->nch == 0 && r == -ENODATA)
        return mr_error_set(e, -EIO, "Partial read of size %zu, expected %zu",
                            req.done, req.len);
    if (c->m->nch == 0)
        return mr_error_set(e, r, "Unable to read from file: %s",
                            strerror(-r));
    if (r == -ENODATA)
        return mr_error_set(e, -EIO, "multifd recv (%u): read 0x%zx, "
                            "expected 0x%zx", c->id, req.done, req.len);
    return mr_error_set(e, r, "multifd recv (%u): read 0x%zx, expected 0x%zx: "
                        "%s", c->id, req.done, req.len, strerror(-r));
}

/* Read each run of present pages of the extent, then check its CRC. */
static int run_extent(struct channel *c, struct mr_error *e)
{
    const struct mr_multifd_extent *x = &c->ext;
    uint64_t per = mr_cksum_extent_pages(x->page_size);
    uint64_t first = x->extent * per, end = first + per, a, b;
    uint32_t got;

    if (end > x->num_pages)
        end = x->num_pages;
    for (uint64_t from = first;
         mr_bitmap_le64_next_run(x->bitmap, end, from, &a, &b); from = b) {
        c->rd_host = x->host + a * x->page_size;
        c->rd_len = (b - a) * x->page_size;
        c->rd_offset = x->pages_offset + a * x->page_size;
        if (run_read(c, e))
            return e->code;
    }
    got = mr_cksum_extent(x->host, x->page_size, x->num_pages, x->extent,
                          mr_cksum_present_le64, x->bitmap);
    if (got != x->crc)
        return mr_error_set(e, -EBADMSG, "checksum mismatch in RAM block %s "
                            "extent %" PRIu64 " (file offset 0x%" PRIx64
                            "): expected 0x%08x, computed 0x%08x", x->block,
                            x->extent, x->pages_offset + first * x->page_size,
                            x->crc, got);
    return 0;
}

static int run_csum(struct channel *c)
{
    const struct mr_multifd_block *b = &c->m->blocks[c->cs_block];
    uint64_t pages = b->used_length / b->page_size;

    for (uint64_t i = 0; i < c->cs_count; i++)
        c->cs_out[c->cs_first + i] =
            mr_cksum_extent(b->host, b->page_size, pages, c->cs_first + i,
                            mr_cksum_present_ulong, b->file_bitmap);
    return 0;
}

static int run_job(struct channel *c, enum job_kind job, struct mr_error *e)
{
    if (__atomic_load_n(&c->m->cancelled, __ATOMIC_ACQUIRE))
        return mr_error_set(e, -ECANCELED, "multifd: cancelled");
    switch (job) {
    case JOB_SAVE:
        return run_save(c, c->batch, e);
    case JOB_EXTENT:
        return run_extent(c, e);
    case JOB_CSUM:
        return run_csum(c);
    default:
        return run_read(c, e);
    }
}

static void add_stats(struct mr_multifd_stats *to, struct mr_multifd_stats *from)
{
    to->normal_pages += from->normal_pages;
    to->zero_pages += from->zero_pages;
    to->bytes_written += from->bytes_written;
    to->bytes_read += from->bytes_read;
    to->requests += from->requests;
    memset(from, 0, sizeof(*from));
}

/* Called with m->lock held when a job is over. */
static void finish_job_locked(struct channel *c, const struct mr_error *e)
{
    struct mr_multifd *m = c->m;

    add_stats(&m->stats, &c->st);
    if (mr_error_is_set(e))
        record_locked(m, e);
    if (c->batch)
        c->batch->npages = 0;
    c->job = JOB_NONE;
}

static void *channel_thread(void *arg)
{
    struct channel *c = arg;
    struct mr_multifd *m = c->m;

    pthread_mutex_lock(&m->lock);
    for (;;) {
        struct mr_error e = MR_ERROR_INIT;
        enum job_kind job;

        while (c->job == JOB_NONE && !m->quit)
            pthread_cond_wait(&c->wake, &m->lock);
        if (m->quit)
            break;
        /* Acquire: the lock we hold published the batch/read handed to us;
         * from here until we hand back, the job is ours alone. */
        job = c->job;
        pthread_mutex_unlock(&m->lock);
        run_job(c, job, &e);
        pthread_mutex_lock(&m->lock);
        /* Release: unlocking after this publishes the emptied batch, the
         * bitmap updates and stats to whoever takes the lock next. */
        finish_job_locked(c, &e);
        pthread_cond_broadcast(&m->idle);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* ---- hand-off --------------------------------------------------------- */

/* Wait for an idle channel (lock held); NULL when the pool failed. */
static struct channel *claim_idle_locked(struct mr_multifd *m)
{
    for (;;) {
        if (m->err.code)
            return NULL;
        for (unsigned k = 0; k < m->nch; k++) {
            unsigned i = (m->next + k) % m->nch;

            if (m->ch[i].job == JOB_NONE) {
                m->next = (i + 1) % m->nch;
                return &m->ch[i];
            }
        }
        pthread_cond_wait(&m->idle, &m->lock);
    }
}

/* Run a job on the caller's thread (nchannels == 0). */
static int run_inline(struct mr_multifd *m, enum job_kind job,
                      struct mr_error *err)
{
    struct channel *c = &m->ch[0];
    struct mr_error e = MR_ERROR_INIT;

    run_job(c, job, &e);
    pthread_mutex_lock(&m->lock);
    finish_job_locked(c, &e);
    pthread_mutex_unlock(&m->lock);
    return sticky(m, err);
}

static int dispatch_batch(struct mr_multifd *m, struct mr_error *err)
{
    struct channel *c;
    struct batch *empty;

    if (m->nch == 0) {
        /* The inline channel works on m->cur directly; it empties it. */
        m->ch[0].batch = m->cur;
        return run_inline(m, JOB_SAVE, err);
    }
    pthread_mutex_lock(&m->lock);
    c = claim_idle_locked(m);
    if (c) {
        /* Swap, don't copy: the channel takes the filled batch and we take
         * its empty one (released to the channel by the unlock below). */
        empty = c->batch;
        c->batch = m->cur;
        m->cur = empty;
        c->job = JOB_SAVE;
        pthread_cond_signal(&c->wake);
    }
    pthread_mutex_unlock(&m->lock);
    return sticky(m, err);
}

/* ---- public API ------------------------------------------------------- */

int mr_multifd_queue_page(struct mr_multifd *m, size_t block_idx,
                          uint64_t page_index, struct mr_error *err)
{
    struct batch *bt = m->cur;
    const struct mr_multifd_block *b;
    int r = sticky(m, err);

    if (r)
        return r;
    if (block_idx >= m->nblocks) {
        struct mr_error e = MR_ERROR_INIT;

        mr_error_set(&e, -EINVAL, "multifd: no RAM block %zu (have %zu)",
                     block_idx, m->nblocks);
        return fail(m, err, &e);
    }
    b = &m->blocks[block_idx];
    if (page_index >= b->used_length / b->page_size) {
        struct mr_error e = MR_ERROR_INIT;

        mr_error_set(&e, -EINVAL, "offset %" PRIx64 "outside of ramblock %s "
                     "range", page_index * b->page_size, b->name);
        return fail(m, err, &e);
    }
    if (bt->npages && (bt->block_idx != block_idx ||
                       bt->npages >= MR_MULTIFD_BATCH_BYTES / b->page_size ||
                       bt->npages >= m->batch_cap)) {
        r = dispatch_batch(m, err);
        if (r)
            return r;
        bt = m->cur;
    }
    bt->block_idx = block_idx;
    bt->pages[bt->npages++] = page_index;
    return 0;
}

int mr_multifd_flush(struct mr_multifd *m, struct mr_error *err)
{
    int r = sticky(m, err);

    if (r || m->cur->npages == 0)
        return r;
    return dispatch_batch(m, err);
}

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
    struct channel *c;
    int r = sticky(m, err);

    if (r)
        return r;
    r = check_read(m, host, len, file_offset, err);
    if (r || len == 0)
        return r;
    if (m->nch == 0) {
        c = &m->ch[0];
        c->rd_host = host;
        c->rd_len = len;
        c->rd_offset = file_offset;
        return run_inline(m, JOB_READ, err);
    }
    pthread_mutex_lock(&m->lock);
    c = claim_idle_locked(m);
    if (c) {
        c->rd_host = host;
        c->rd_len = len;
        c->rd_offset = file_offset;
        c->job = JOB_READ;
        pthread_cond_signal(&c->wake);
    }
    pthread_mutex_unlock(&m->lock);
    return sticky(m, err);
}

/* Hand a prepared job to the next idle channel, or run it inline.  `fill`
 * writes the job's arguments into the channel under the lock. */
static int hand_off(struct mr_multifd *m, enum job_kind job,
                    void (*fill)(struct channel *, const void *),
                    const void *arg, struct mr_error *err)
{
    struct channel *c;
    int r = sticky(m, err);

    if (r)
        return r;
    if (m->nch == 0) {
        fill(&m->ch[0], arg);
        return run_inline(m, job, err);
    }
    pthread_mutex_lock(&m->lock);
    c = claim_idle_locked(m);
    if (c) {
        fill(c, arg);
        c->job = job;
        pthread_cond_signal(&c->wake);
    }
    pthread_mutex_unlock(&m->lock);
    return sticky(m, err);
}

static void fill_extent(struct channel *c, const void *arg)
{
    c->ext = *(const struct mr_multifd_extent *)arg;
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
    return hand_off(m, JOB_EXTENT, fill_extent, x, err);
}

struct csum_arg {
    size_t block;
    uint64_t first, count;
    uint32_t *out;
};

static void fill_csum(struct channel *c, const void *arg)
{
    const struct csum_arg *a = arg;

    c->cs_block = a->block;
    c->cs_first = a->first;
    c->cs_count = a->count;
    c->cs_out = a->out;
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

        for (uint64_t e = 0; !r && e < n; e += CSUM_JOB_EXTENTS) {
            struct csum_arg a = { b, e, n - e < CSUM_JOB_EXTENTS ?
                                  n - e : CSUM_JOB_EXTENTS, crc[b] };

            r = hand_off(m, JOB_CSUM, fill_csum, &a, err);
        }
    }
    return r ? r : mr_multifd_sync(m, err);
}

static bool any_busy_locked(struct mr_multifd *m)
{
    for (unsigned i = 0; i < m->nch; i++)
        if (m->ch[i].job != JOB_NONE)
            return true;
    return false;
}

/* Flushes the partial batch first, so "everything queued" is on disk (or
 * failed) when this returns 0. */
int mr_multifd_sync(struct mr_multifd *m, struct mr_error *err)
{
    mr_multifd_flush(m, NULL);
    pthread_mutex_lock(&m->lock);
    while (any_busy_locked(m))
        pthread_cond_wait(&m->idle, &m->lock);
    pthread_mutex_unlock(&m->lock);
    return sticky(m, err);
}

void mr_multifd_cancel(struct mr_multifd *m)
{
    struct mr_error e = MR_ERROR_INIT;

    mr_error_set(&e, -ECANCELED, "multifd: cancelled");
    __atomic_store_n(&m->cancelled, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&m->lock);
    record_locked(m, &e);
    /* Wake dispatchers waiting for an idle channel: they must see it. */
    pthread_cond_broadcast(&m->idle);
    pthread_mutex_unlock(&m->lock);
}

void mr_multifd_get_stats(struct mr_multifd *m, struct mr_multifd_stats *st)
{
    pthread_mutex_lock(&m->lock);
    *st = m->stats;
    pthread_mutex_unlock(&m->lock);
}

void mr_multifd_set_zero_gap(struct mr_multifd *m, unsigned max_pages)
{
    m->zero_gap = max_pages;
}

/* ---- construction ------------------------------------------------------ */

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

static int channel_init(struct mr_multifd *m, struct channel *c, unsigned id,
                        int fd, const char *engine, struct mr_error *err)
{
    size_t cap = m->batch_cap;

    if (pthread_cond_init(&c->wake, NULL))
        return mr_error_set(err, -ENOMEM, "multifd: cannot create condvar");
    c->m = m;               /* from here on free() destroys the condvar */
    c->id = id;
    c->fd = fd;
    c->kind = calloc(cap, 1);
    c->runs = calloc(cap, sizeof(*c->runs));
    c->iov = calloc(cap, sizeof(*c->iov));
    c->reqs = calloc(cap, sizeof(*c->reqs));
    if (!c->kind || !c->runs || !c->iov || !c->reqs)
        return mr_error_set(err, -ENOMEM, "multifd: out of memory");
    c->io = mr_io_engine_open_fd(engine, MR_MULTIFD_IO_DEPTH, fd, err);
    if (!c->io)
        return mr_error_prefix(err, "multifd channel %u: ", id);
    return 0;
}

static int alloc_pool(struct mr_multifd *m, const struct mr_multifd_config *cfg,
                      struct mr_error *err)
{
    unsigned nch_alloc = cfg->nchannels ? cfg->nchannels : 1;
    unsigned nbatches = nch_alloc + 1;

    m->ch = calloc(nch_alloc, sizeof(*m->ch));
    m->batches = calloc(nbatches, sizeof(*m->batches));
    if (cfg->nblocks) {
        m->blocks = calloc(cfg->nblocks, sizeof(*m->blocks));
        if (m->blocks)
            memcpy(m->blocks, cfg->blocks, cfg->nblocks * sizeof(*m->blocks));
    }
    if (!m->ch || !m->batches || (cfg->nblocks && !m->blocks))
        return mr_error_set(err, -ENOMEM, "multifd: out of memory");
    for (unsigned i = 0; i < nbatches; i++) {
        m->batches[i].pages = calloc(m->batch_cap, sizeof(uint64_t));
        if (!m->batches[i].pages)
            return mr_error_set(err, -ENOMEM, "multifd: out of memory");
    }
    m->cur = &m->batches[nch_alloc];
    for (unsigned i = 0; i < nch_alloc; i++) {
        int fd = cfg->nchannels ? cfg->fds[i] : cfg->sync_fd;
        int r = channel_init(m, &m->ch[i], i, fd, cfg->engine, err);

        m->ch[i].batch = &m->batches[i];
        if (r)
            return r;
    }
    return 0;
}

/* "mr/send_3" / "mr/recv_3" in top and gdb, like QEMU's mig/src/send_3. */
static void thread_name(struct mr_multifd *m, unsigned i)
{
    char name[16];

    snprintf(name, sizeof(name), "mr/%s_%u", m->nblocks ? "send" : "recv",
             i % 1000);
    pthread_setname_np(m->ch[i].thread, name);
}

static int start_threads(struct mr_multifd *m, struct mr_error *err)
{
    for (unsigned i = 0; i < m->nch; i++) {
        int r = pthread_create(&m->ch[i].thread, NULL, channel_thread,
                               &m->ch[i]);

        if (r)
            return mr_error_set(err, -r, "multifd: cannot start channel %u: "
                                "%s", i, strerror(r));
        m->ch[i].thread_started = true;
        thread_name(m, i);
    }
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
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->idle, NULL);
    m->nch = cfg->nchannels;
    m->nblocks = cfg->nblocks;
    m->direct_io = cfg->direct_io;
    m->zero_detection = cfg->zero_detection;
    m->zero_gap = MR_MULTIFD_ZERO_GAP_DEFAULT;
    m->batch_cap = batch_capacity(cfg);
    if (alloc_pool(m, cfg, err) || start_threads(m, err)) {
        mr_multifd_free(m);
        return NULL;
    }
    return m;
}

void mr_multifd_free(struct mr_multifd *m)
{
    unsigned nch_alloc;

    if (!m)
        return;
    nch_alloc = m->nch ? m->nch : 1;
    pthread_mutex_lock(&m->lock);
    m->quit = true;
    for (unsigned i = 0; m->ch && i < m->nch; i++)
        pthread_cond_signal(&m->ch[i].wake);
    pthread_mutex_unlock(&m->lock);
    for (unsigned i = 0; m->ch && i < nch_alloc; i++) {
        struct channel *c = &m->ch[i];

        if (c->thread_started)
            pthread_join(c->thread, NULL);
        if (c->m)
            pthread_cond_destroy(&c->wake);
        mr_io_engine_close(c->io);
        free(c->kind);
        free(c->runs);
        free(c->iov);
        free(c->reqs);
    }
    for (unsigned i = 0; m->batches && i < nch_alloc + 1; i++)
        free(m->batches[i].pages);
    free(m->batches);
    free(m->ch);
    free(m->blocks);
    pthread_cond_destroy(&m->idle);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
