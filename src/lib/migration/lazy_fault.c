/*
 * The lazy load's installer and fault thread.  A granule is read into a
 * bounce buffer (absent pages never read, left zero), each of its extents
 * checked against the trailer, then its present runs copied in and its
 * absent runs mapped as zero pages; a fault on a granule someone else
 * owns is woken by that owner's copy.  A granule that fails is never
 * installed: the load fails and the guest is stopped (mig_lazy_fail).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "format/mapped_ram.h"
#include "mapram/crc32c.h"
#include "migration/lazy.h"
#include "migration/object.h"
#include "migration/uffd.h"

const struct mig_lazy_block *mig_lazy_block_of(const struct mig_lazy *lz,
                                               uint64_t g)
{
    for (size_t i = lz->nplans; i-- > 0;)
        if (g >= lz->blk[i].first)
            return &lz->blk[i];
    return NULL;
}

static int read_present(struct mig_lazy *lz, const struct mig_lazy_block *b,
                        uint64_t p0, uint64_t p1, uint8_t *buf,
                        struct mr_error *err)
{
    const struct load_plan *p = b->plan;
    uint64_t a, e;

    for (uint64_t from = p0;
         mr_bitmap_le64_next_run(p->bitmap, p1, from, &a, &e); from = e) {
        uint64_t off = a * p->page_size, len = (e - a) * p->page_size;

        if (mr_source_read(&lz->src, buf + (off - p0 * p->page_size), len,
                           p->pages_offset + off, err))
            return mr_error_prefix(err, "lazy load: RAM block %s, pages at "
                                   "0x%llx: ",
                                   lz->mig->blocks[p->block].name,
                                   (unsigned long long)off);
    }
    return 0;
}

static int verify(const struct mig_lazy_block *b, uint64_t p0, uint64_t p1,
                  const uint8_t *buf, struct mr_error *err)
{
    uint64_t per = mr_cksum_extent_pages(b->plan->page_size);

    for (uint64_t q = p0; q < p1; q += per) {
        uint64_t n = q + per < p1 ? per : p1 - q, x = q / per;
        uint32_t crc = mr_crc32c(0, buf + (q - p0) * b->plan->page_size,
                                 n * b->plan->page_size);

        if (x >= b->cb->nr_extents || crc != b->cb->crc[x])
            return mr_error_set(err, -EBADMSG, "checksum mismatch in RAM "
                                "block %s, extent %llu (pages at 0x%llx): "
                                "the file's data differs from what was "
                                "saved; nothing of it was installed",
                                b->cb->name, (unsigned long long)x,
                                (unsigned long long)(q * b->plan->page_size));
    }
    return 0;
}

/* Absent runs up to this many pages between present ones are copied in
 * as the zeros the buffer holds: one UFFDIO_COPY instead of three ioctls
 * (a scattered layout has a zero page every few pages). */
#define PLACE_ZERO_GAP 16

/* The end of the run starting at q: an absent run (*copy false), or
 * present pages with the short absent gaps between them (*copy true). */
static uint64_t run_end(const struct load_plan *p, uint64_t q, uint64_t p1,
                        bool *copy)
{
    uint64_t r = q, z;

    *copy = mr_bitmap_le64_test(p->bitmap, q);
    if (!*copy) {
        while (r < p1 && !mr_bitmap_le64_test(p->bitmap, r))
            r++;
        return r;
    }
    for (;;) {
        while (r < p1 && mr_bitmap_le64_test(p->bitmap, r))
            r++;
        for (z = r; z < p1 && z - r <= PLACE_ZERO_GAP &&
                    !mr_bitmap_le64_test(p->bitmap, z); z++)
            ;
        if (z == p1 || z - r > PLACE_ZERO_GAP || z == r)
            return r;
        r = z;                  /* a short gap: copied as zeros */
    }
}

static int place(struct mig_lazy *lz, const struct mig_lazy_block *b,
                 uint64_t p0, uint64_t p1, const uint8_t *buf,
                 struct mr_error *err)
{
    const struct load_plan *p = b->plan;

    for (uint64_t q = p0; q < p1;) {
        bool copy;
        uint64_t r = run_end(p, q, p1, &copy);
        uint64_t off = q * p->page_size, len = (r - q) * p->page_size;
        int rc;

        /* a longer absent run is left missing: a touch gets a zero page
         * (settle), and once the load completes the unregistered hole
         * reads as zeros anyway; installing 1 GiB of zero pages would
         * cost as much as the data */
        rc = copy ? mr_uffd_copy(lz->uffd, b->host + off,
                                 buf + (q - p0) * p->page_size, len,
                                 p->page_size) : 0;
        if (rc)
            return mr_error_set(err, rc, "RAM block %s: installing pages at "
                                "0x%llx failed: %s", b->cb ? b->cb->name : "",
                                (unsigned long long)off, strerror(-rc));
        q = r;
    }
    return 0;
}

int mig_lazy_place(struct mig_lazy *lz, const struct mig_lazy_block *b,
                   uint64_t p0, uint64_t p1, const uint8_t *buf,
                   struct mr_error *err)
{
    if (place(lz, b, p0, p1, buf, err))
        return err->code;
    for (uint64_t q = p0; q < p1; q++)
        if (mr_bitmap_le64_test(b->plan->bitmap, q))
            atomic_fetch_add(&lz->done_bytes, b->plan->page_size);
    return 0;
}

void mig_lazy_granule_pages(const struct mig_lazy *lz,
                            const struct mig_lazy_block *b, uint64_t g,
                            uint64_t *p0, uint64_t *p1)
{
    uint64_t gp = lz->granule / b->plan->page_size;

    *p0 = (g - b->first) * gp;
    *p1 = *p0 + gp < b->plan->num_pages ? *p0 + gp : b->plan->num_pages;
}

/* A granule smaller than an extent is read and checked with its whole
 * extent (the trailer has one CRC per extent); only the granule goes in. */
int mig_lazy_install(struct mig_lazy *lz, uint64_t g, uint8_t *buf,
                     struct mr_error *err)
{
    const struct mig_lazy_block *b = mig_lazy_block_of(lz, g);
    uint64_t p0, p1, v0, v1;

    mig_lazy_granule_pages(lz, b, g, &p0, &p1);
    v0 = p0;
    v1 = p1;
    if (b->cb) {
        uint64_t per = mr_cksum_extent_pages(b->plan->page_size);

        v0 = p0 / per * per;
        v1 = (p1 + per - 1) / per * per;
        if (v1 > b->plan->num_pages)
            v1 = b->plan->num_pages;
    }
    memset(buf, 0, (v1 - v0) * b->plan->page_size);
    if (read_present(lz, b, v0, v1, buf, err) ||
        (b->cb && verify(b, v0, v1, buf, err)))
        return err->code;
    return mig_lazy_place(lz, b, p0, p1,
                          buf + (p0 - v0) * b->plan->page_size, err);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mig_lazy_note_latency(struct mig_lazy *lz, uint64_t ns)
{
    uint_fast64_t max = atomic_load(&lz->fault_ns_max);

    atomic_fetch_add(&lz->fault_ns_sum, ns);
    mig_lat_hist_add(&lz->hist, ns);
    while (ns > max &&
           !atomic_compare_exchange_weak(&lz->fault_ns_max, &max, ns))
        ;
}

/* A fault on a page of a resident granule: one the file does not hold
 * gets a zero page (long absent runs are never installed); then a wake,
 * for a page already in (a stale event, or the zero page existed). */
static void settle(struct mig_lazy *lz, const struct mig_lazy_block *b,
                   uint64_t addr)
{
    uint64_t ps = b->plan->page_size;
    uint64_t pg = (addr - (uintptr_t)b->host) / ps;

    if (!mr_bitmap_le64_test(b->plan->bitmap, pg))
        (void)mr_uffd_zero(lz->uffd, b->host + pg * ps, ps, ps);
    mr_uffd_wake(lz->uffd, b->host + pg * ps, ps);
}

/* One fault at host address addr. */
static int serve(struct mig_lazy *lz, uint64_t addr, struct mr_error *err)
{
    uint64_t t0 = now_ns();

    for (size_t i = 0; i < lz->nplans; i++) {
        const struct mig_lazy_block *b = &lz->blk[i];
        uint64_t g;
        int rc;

        if (addr < (uintptr_t)b->host || addr >= (uintptr_t)b->host + b->len)
            continue;
        g = b->first + (addr - (uintptr_t)b->host) / lz->granule;
        if (mr_claim_get(&lz->claim, g) == MR_CLAIM_RESIDENT) {
            /* a page left missing in a long absent run, or a stale
             * event: not a demand fault for data */
            atomic_fetch_add(&lz->zero_faults, 1);
            settle(lz, b, addr);
            return 0;
        }
        mig_wset_note(&lz->rec, g);
        atomic_fetch_add(&lz->faults, 1);
        atomic_store(&lz->last_fault_ns, t0);
        if (atomic_load(&lz->failed)) {
            if (mr_claim_take(&lz->claim, g))   /* nothing more goes in */
                mig_lazy_withhold(lz, g);
        } else if (mr_claim_take(&lz->claim, g)) {
            struct mr_error e = MR_ERROR_INIT;

            /* A bad granule is never installed: the load fails, then the
             * granule is poisoned and stays claimed (lazy_seal.c). */
            rc = mig_lazy_install(lz, g, lz->fault_buf, &e);
            if (rc) {
                mig_lazy_fail(lz, &e);
                mig_lazy_withhold(lz, g);
            } else {
                mig_lazy_resident(lz, b, g);
                settle(lz, b, addr);
            }
        } else if (mr_claim_get(&lz->claim, g) == MR_CLAIM_RESIDENT) {
            settle(lz, b, addr);
        } else {
            /* claimed by the fill: it wakes the granule once it is in,
             * and notes how long the fault waited */
            if (mig_lazy_wait_begin(lz, g, t0))
                settle(lz, b, addr);
            return 0;
        }
        mig_lazy_note_latency(lz, now_ns() - t0);
        return 0;
    }
    return mr_error_set(err, -EFAULT, "userfault at 0x%llx outside guest "
                        "RAM", (unsigned long long)addr);
}

static void *fault_thread(void *arg)
{
    struct mig_lazy *lz = arg;
    struct pollfd pfd[2] = { { .fd = lz->uffd, .events = POLLIN },
                             { .fd = lz->stop_fd, .events = POLLIN } };
    struct mr_error err = MR_ERROR_INIT;

    while (!atomic_load(&lz->stop)) {
        uint64_t addr;
        int n;

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            mr_error_set(&err, -errno, "lazy load: poll failed");
            break;
        }
        if (pfd[1].revents)
            break;
        atomic_store(&lz->pending, 1);
        while ((n = mr_uffd_read_fault(lz->uffd, &addr)) > 0)
            if (serve(lz, addr, &err))
                break;
        atomic_store(&lz->pending, 0);
        if (err.code)
            break;
        if (n < 0) {
            mr_error_set(&err, n, "lazy load: reading userfaults failed: %s",
                         strerror(-n));
            break;
        }
    }
    if (err.code)
        mig_lazy_fail(lz, &err);
    else if (!atomic_load(&lz->stop) && !mr_claim_all_resident(&lz->claim)) {
        mr_error_set(&err, -EPIPE, "lazy load: the fault thread ended with "
                     "pages still missing");
        mig_lazy_fail(lz, &err);
    }
    return NULL;
}

int mig_lazy_fault_start(struct mig_lazy *lz, struct mr_error *err)
{
    if (pthread_create(&lz->fault_thr, NULL, fault_thread, lz))
        return mr_error_set(err, -EAGAIN, "cannot start the fault thread");
    lz->fault_live = true;
    return 0;
}

void mig_lazy_fault_stop(struct mig_lazy *lz)
{
    uint64_t one = 1;

    if (!lz->fault_live)
        return;
    atomic_store(&lz->stop, true);
    if (write(lz->stop_fd, &one, sizeof(one)) < 0)
        (void)0;
    pthread_join(lz->fault_thr, NULL);
    lz->fault_live = false;
}
