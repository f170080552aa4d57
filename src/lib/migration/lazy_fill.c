/*
 * The lazy load's background fill (docs/lazy-load.md, "Fill"): batches of
 * consecutive granules are claimed and handed to the page channels
 * (multifd/jobs_fill.c), which read them into a bounce buffer (O_DIRECT
 * when the channels are), verify every extent, and only then install
 * them; the order is the working set first, then file order.  Before each
 * batch the fill yields to pending demand faults, and a cap in MB/s
 * paces it.  Without multifd the batches run inline on the fill thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "format/mapped_ram.h"
#include "migration/lazy.h"
#include "migration/publish.h"
#include "migration/uffd.h"
#include "multifd/multifd.h"

/* A fill batch: 4 MiB of granules (one granule if larger), or a single
 * granule (an extent's worth if smaller: it is read whole anyway) while
 * the guest faults (a fault on a granule the fill holds waits for its
 * whole batch): FAULT_QUIET_NS after the last fault the batches grow
 * again.  At most
 * PREFETCH_BYTES of the working set are fetched before the guest resumes
 * (docs/lazy-load.md, "Working set": the time to running grows with the
 * working set, the faults after it fall); the rest right after. */
#define FILL_BATCH_BYTES (4ULL << 20)
#define FAULT_QUIET_NS 50000000ULL
#define PREFETCH_BYTES (256ULL << 20)

struct mig_fill_slot {
    struct mr_multifd_fill f;
    struct mig_lazy *lz;
    const struct mig_lazy_block *b;
    uint64_t g0, g1;                 /* the claimed granules [g0, g1) */
    atomic_bool busy;
};

uint64_t mig_lazy_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t batch_granules(const struct mig_lazy *lz)
{
    return lz->granule >= FILL_BATCH_BYTES ? 1 : FILL_BATCH_BYTES / lz->granule;
}

/* ---- on a channel: install a verified batch ------------------------------- */

static uint64_t present_bytes(const struct mig_lazy_block *b, uint64_t p0,
                              uint64_t p1)
{
    uint64_t n = 0, a, e;

    for (uint64_t from = p0;
         mr_bitmap_le64_next_run(b->plan->bitmap, p1, from, &a, &e); from = e)
        n += e - a;
    return n * b->plan->page_size;
}

static void note_max(atomic_uint_fast64_t *v, uint64_t x)
{
    uint_fast64_t cur = atomic_load(v);

    while (x > cur && !atomic_compare_exchange_weak(v, &cur, x))
        ;
}

/* The first caller after the granule is resident notes the wait. */
static void wait_end(struct mig_lazy *lz, uint64_t g)
{
    uint64_t t0 = atomic_exchange(&lz->fault_t0[g], 0);

    if (t0)
        mig_lazy_note_latency(lz, mig_lazy_now_ns() - t0);
}

bool mig_lazy_wait_begin(struct mig_lazy *lz, uint64_t g, uint64_t t0)
{
    uint64_t none = 0;

    if (!atomic_compare_exchange_strong(&lz->fault_t0[g], &none, t0 ? t0 : 1))
        return mr_claim_get(&lz->claim, g) == MR_CLAIM_RESIDENT;
    if (mr_claim_get(&lz->claim, g) != MR_CLAIM_RESIDENT)
        return false;
    wait_end(lz, g);
    return true;
}

void mig_lazy_resident(struct mig_lazy *lz, const struct mig_lazy_block *b,
                       uint64_t g)
{
    uint64_t p0, p1, ps = b->plan->page_size;

    mr_claim_done(&lz->claim, g, true);
    wait_end(lz, g);
    mig_lazy_granule_pages(lz, b, g, &p0, &p1);
    mr_uffd_wake(lz->uffd, b->host + p0 * ps, (p1 - p0) * ps);
}

/* A granule the fill took and did not install goes back to missing; once
 * the load has failed it is withheld instead.  The seal (lazy_seal.c)
 * skips granules that are claimed, and a fault on one sleeps until its
 * owner is done: given back after the seal, it would never be poisoned
 * and the sleeper never woken.  Checking after the give-back covers a
 * failure on either side of it. */
static void give_back(struct mig_lazy *lz, uint64_t g)
{
    mr_claim_done(&lz->claim, g, false);
    if (atomic_load(&lz->failed) && mr_claim_take(&lz->claim, g))
        mig_lazy_withhold(lz, g);
}

static int slot_done(struct mr_multifd_fill *f, int rc, struct mr_error *err)
{
    struct mig_fill_slot *s = f->opaque;
    struct mig_lazy *lz = s->lz;
    uint64_t g = s->g0;

    for (; !rc && g < s->g1; g++) {
        uint64_t p0, p1;

        mig_lazy_granule_pages(lz, s->b, g, &p0, &p1);
        rc = mig_lazy_place(lz, s->b, p0, p1,
                            f->buf + (p0 - f->first) * f->page_size, err);
        if (rc)
            break;      /* g and the rest: given back below */
        mig_lazy_resident(lz, s->b, g);
        atomic_fetch_add(&lz->fill_bytes, present_bytes(s->b, p0, p1));
    }
    for (; g < s->g1; g++)
        give_back(lz, g);   /* never installed */
    note_max(&lz->fill_t1_ns, mig_lazy_now_ns());
    atomic_store(&s->busy, false);
    return rc;
}

/* ---- setup ------------------------------------------------------------------ */

static int slots_alloc(struct mig_lazy *lz, struct mr_error *err)
{
    uint64_t per = 1ULL << 20;   /* one extent each side, for rounding */
    size_t bytes = (size_t)(batch_granules(lz) * lz->granule + 2 * per);

    lz->fault_t0 = calloc(lz->claim.n ? lz->claim.n : 1,
                          sizeof(*lz->fault_t0));
    if (!lz->fault_t0)
        return mr_error_set(err, -ENOMEM, "out of memory");
    lz->nslots = lz->nchan + 1;  /* one per channel, one being filled */
    lz->slots = calloc(lz->nslots, sizeof(*lz->slots));
    if (!lz->slots)
        return mr_error_set(err, -ENOMEM, "out of memory");
    for (unsigned i = 0; i < lz->nslots; i++) {
        lz->slots[i].lz = lz;
        lz->slots[i].f.opaque = &lz->slots[i];
        lz->slots[i].f.done = slot_done;
        if (!(lz->slots[i].f.buf = aligned_alloc(4096, bytes)))
            return mr_error_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

/* A granule covers whole extents, or an extent whole granules. */
static int check_granule(const struct mig_lazy *lz, struct mr_error *err)
{
    for (size_t i = 0; i < lz->nplans; i++) {
        const struct mig_lazy_block *b = &lz->blk[i];
        uint64_t ext = b->cb ? b->cb->extent_pages * b->plan->page_size : 0;

        if (lz->granule % b->plan->page_size ||
            (ext && lz->granule % ext && ext % lz->granule))
            return mr_error_set(err, -EINVAL, "x-lazy-granule 0x%llx does "
                                "not align with RAM block %s (page size "
                                "0x%llx, checksum extent 0x%llx)",
                                (unsigned long long)lz->granule,
                                lz->mig->blocks[b->plan->block].name,
                                (unsigned long long)b->plan->page_size,
                                (unsigned long long)ext);
    }
    return 0;
}

int mig_lazy_fill_setup(struct mig_lazy *lz, const struct load_job *j,
                        struct mr_error *err)
{
    struct mr_multifd_config cfg = { 0 };

    if (check_granule(lz, err))
        return err->code;

    lz->nchan = j->ch.nchan;
    lz->dio = j->ch.dio;
    lz->io_engine = j->io_engine;
    lz->fill_cap = j->lazy_fill_cap;
    for (unsigned i = 0; i < lz->nchan; i++) {
        lz->chan_fd[i] = fcntl(j->ch.fds[i], F_DUPFD_CLOEXEC, 0);
        if (lz->chan_fd[i] < 0) {
            lz->nchan = i;
            return mr_error_set(err, -errno, "lazy load: cannot keep the "
                                "page channels open: %s", strerror(errno));
        }
    }
    if (slots_alloc(lz, err))
        return err->code;
    cfg.nchannels = lz->nchan;
    cfg.fds = lz->chan_fd;
    cfg.sync_fd = lz->file_fd;
    cfg.direct_io = lz->dio;
    cfg.engine = lz->io_engine;
    lz->mf = mr_multifd_new(&cfg, err);
    return lz->mf ? 0 : err->code;
}

void mig_lazy_fill_free(struct mig_lazy *lz)
{
    mr_multifd_free(lz->mf);
    lz->mf = NULL;
    for (unsigned i = 0; i < lz->nchan; i++)
        close(lz->chan_fd[i]);
    lz->nchan = 0;
    for (unsigned i = 0; lz->slots && i < lz->nslots; i++)
        free(lz->slots[i].f.buf);
    free(lz->slots);
    lz->slots = NULL;
    free((void *)lz->fault_t0);
    lz->fault_t0 = NULL;
}

/* ---- the producer ------------------------------------------------------------ */

static struct mig_fill_slot *free_slot(struct mig_lazy *lz)
{
    for (;;) {
        for (unsigned i = 0; i < lz->nslots; i++)
            if (!atomic_load(&lz->slots[i].busy))
                return &lz->slots[i];
        sched_yield();      /* a channel is just finishing */
    }
}

/* The read range of granules [g0, g1) of b: rounded out to whole extents
 * when there is a trailer (one CRC per extent). */
static void batch_range(const struct mig_lazy *lz, struct mig_fill_slot *s)
{
    const struct mig_lazy_block *b = s->b;
    struct mr_multifd_fill *f = &s->f;
    uint64_t a, e, x;

    mig_lazy_granule_pages(lz, b, s->g0, &f->first, &x);
    mig_lazy_granule_pages(lz, b, s->g1 - 1, &x, &f->end);
    f->block = lz->mig->blocks[b->plan->block].name;
    f->page_size = b->plan->page_size;
    f->pages_offset = b->plan->pages_offset;
    f->bitmap = b->plan->bitmap;
    f->crc = b->cb ? b->cb->crc : NULL;
    f->nr_extents = b->cb ? b->cb->nr_extents : 0;
    if (b->cb) {
        uint64_t per = mr_cksum_extent_pages(f->page_size);

        a = f->first / per * per;
        e = (f->end + per - 1) / per * per;
        f->first = a;
        f->end = e < b->plan->num_pages ? e : b->plan->num_pages;
    }
}

/* Pace to fill_cap MB/s over what the fill has read so far. */
static void throttle(struct mig_lazy *lz, uint64_t t0)
{
    uint64_t due, now;

    if (!lz->fill_cap)
        return;
    due = t0 + atomic_load(&lz->fill_bytes) * 1000 / lz->fill_cap;
    while ((now = mig_lazy_now_ns()) < due && !atomic_load(&lz->stop) &&
           !atomic_load(&lz->failed)) {
        uint64_t ns = due - now < 5000000 ? due - now : 5000000;
        struct timespec ts = { 0, (long)ns };

        nanosleep(&ts, NULL);
    }
}

/* Claim g and the granules after it in its block, up to a batch; `next`
 * says which granule may follow (file order: g + 1; a working set: its
 * next entry, if consecutive).  Returns how many were claimed. */
static uint64_t claim_batch(struct mig_lazy *lz, struct mig_fill_slot *s,
                            uint64_t g, const uint64_t *next, uint64_t nnext)
{
    const struct mig_lazy_block *b = mig_lazy_block_of(lz, g);
    uint64_t end = b->first + (b->len + lz->granule - 1) / lz->granule;
    uint64_t last = atomic_load(&lz->last_fault_ns), n = 1;
    uint64_t per = (1ULL << 20) / lz->granule;   /* granules per extent */
    uint64_t max = last && mig_lazy_now_ns() - last < FAULT_QUIET_NS
                       ? (per > 1 ? per : 1) : batch_granules(lz);

    s->b = b;
    s->g0 = g;
    while (n < max && g + n < end) {
        if (next && (n > nnext || next[n - 1] != g + n))
            break;
        if (!mr_claim_take(&lz->claim, g + n))
            break;
        n++;
    }
    s->g1 = g + n;
    return n;
}

static int submit(struct mig_lazy *lz, struct mig_fill_slot *s,
                  struct mr_error *err)
{
    uint64_t zero = 0;

    batch_range(lz, s);
    atomic_compare_exchange_strong(&lz->fill_t0_ns, &zero, mig_lazy_now_ns());
    atomic_store(&s->busy, true);
    return mr_multifd_queue_fill(lz->mf, &s->f, err);
}

/* Granules order[0..n) (or every granule from 0 when order is NULL), up
 * to `budget` bytes (0: all).  Returns 0 or the first error. */
static int fill_pass(struct mig_lazy *lz, const uint64_t *order, uint64_t n,
                     uint64_t budget, struct mr_error *err)
{
    uint64_t t0 = mig_lazy_now_ns(), sent = 0;

    for (uint64_t i = 0; i < n; i++) {
        uint64_t g = order ? order[i] : i, k;
        struct mig_fill_slot *s;

        if (atomic_load(&lz->stop) || atomic_load(&lz->failed))
            return 0;
        if (budget && sent >= budget)
            return 0;
        while (atomic_load(&lz->pending))
            sched_yield();      /* demand faults first */
        if (!budget)
            throttle(lz, t0);   /* the guest runs */
        if (!mr_claim_take(&lz->claim, g))
            continue;
        s = free_slot(lz);
        k = claim_batch(lz, s, g, order ? order + i + 1 : NULL,
                        order ? n - i - 1 : 0);
        if (order)
            atomic_fetch_add(&lz->prefetched, k);
        i += k - 1;
        sent += k * lz->granule;
        if (submit(lz, s, err))
            return err->code;
        mig_publish_in(lz->mig, lz->total_bytes, atomic_load(&lz->done_bytes));
    }
    return 0;
}

/* After the channels are idle: a batch whose job never ran (the pool
 * failed first) gives its granules back. */
static void reclaim(struct mig_lazy *lz)
{
    for (unsigned i = 0; i < lz->nslots; i++) {
        struct mig_fill_slot *s = &lz->slots[i];

        if (atomic_load(&s->busy)) {
            for (uint64_t g = s->g0; g < s->g1; g++)
                give_back(lz, g);
            atomic_store(&s->busy, false);
        }
    }
}

static int finish(struct mig_lazy *lz, int rc, struct mr_error *err)
{
    struct mr_error e = MR_ERROR_INIT;
    int s = mr_multifd_sync(lz->mf, rc ? &e : err);

    reclaim(lz);
    return rc ? rc : s;
}

int mig_lazy_prefetch(struct mig_lazy *lz, struct mr_error *err)
{
    if (!lz->npre)
        return 0;
    return finish(lz, fill_pass(lz, lz->pre, lz->npre, PREFETCH_BYTES, err),
                  err);
}

int mig_lazy_fill_run(struct mig_lazy *lz, struct mr_error *err)
{
    int rc = fill_pass(lz, lz->pre, lz->npre, 0, err);

    if (!rc)
        rc = fill_pass(lz, NULL, lz->claim.n, 0, err);
    return finish(lz, rc, err);
}

void mig_lazy_fill_query(struct mig_lazy *lz, json_t *ram)
{
    uint64_t t0 = atomic_load(&lz->fill_t0_ns);
    uint64_t t1 = atomic_load(&lz->fill_t1_ns);
    uint64_t bytes = atomic_load(&lz->fill_bytes);
    uint64_t res = atomic_load(&lz->resident_ns);

    json_object_set_new(ram, "x-lazy-fault-p50-us", json_integer(
        (json_int_t)(mig_lat_hist_quantile(&lz->hist, 0.50) / 1000)));
    json_object_set_new(ram, "x-lazy-fault-p99-us", json_integer(
        (json_int_t)(mig_lat_hist_quantile(&lz->hist, 0.99) / 1000)));
    json_object_set_new(ram, "x-lazy-zero-faults", json_integer(
        (json_int_t)atomic_load(&lz->zero_faults)));
    json_object_set_new(ram, "x-lazy-fill-channels",
                        json_integer((json_int_t)lz->nchan));
    json_object_set_new(ram, "x-lazy-fill-bytes",
                        json_integer((json_int_t)bytes));
    json_object_set_new(ram, "x-lazy-fill-mbps", json_integer(
        t1 > t0 && t0 ? (json_int_t)(bytes * 1000 / (t1 - t0)) : 0));
    json_object_set_new(ram, "x-lazy-prefetched", json_integer(
        (json_int_t)atomic_load(&lz->prefetched)));
    json_object_set_new(ram, "x-lazy-working-set",
                        json_integer((json_int_t)lz->npre));
    json_object_set_new(ram, "x-lazy-resident-ms", json_integer(
        res ? (json_int_t)((res - lz->t_start_ns) / 1000000) : 0));
}
