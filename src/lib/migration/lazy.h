/*
 * The lazy load's state (load_lazy.c sets it up and finishes it,
 * lazy_fault.c serves faults and installs granules).  It outlives the
 * load job: mr_migration_free ends it.  Not installed.
 */
#ifndef MAPRAM_MIGRATION_LAZY_H
#define MAPRAM_MIGRATION_LAZY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "format/cksum.h"
#include "format/source.h"
#include "migration/lazy_claim.h"
#include "migration/load_job.h"

#define MIG_LAZY_GRANULE_DEFAULT (1ULL << 20)

struct mig_lazy_block {
    const struct load_plan *plan;
    uint8_t *host;
    uint64_t len;                    /* num_pages * page_size */
    uint64_t first;                  /* its first granule in the claim table */
    const struct mr_cksum_block *cb; /* NULL without a trailer */
};

struct mig_lazy {
    struct mr_migration *mig;
    int uffd, file_fd, stop_fd;
    struct mr_source src;            /* over file_fd, via the fault seam */
    int64_t (*fd_pread)(void *, void *, size_t, uint64_t);
    struct load_plan *plans;
    size_t nplans;
    struct mig_lazy_block *blk;
    struct mr_cksum ck;
    bool have_ck;
    uint64_t granule;                /* bytes, a multiple of the extent */
    struct mr_claim claim;
    uint8_t *fault_buf, *fill_buf;   /* one granule each */
    bool fault_live, fill_live;
    pthread_t fault_thr, fill_thr;
    atomic_bool stop, failed;
    atomic_bool stuck;               /* a granule could not be poisoned */
    atomic_int pending;              /* the fault thread has events */
    uint64_t total_bytes;
    atomic_uint_fast64_t done_bytes, faults, fault_ns_sum, fault_ns_max;
    bool exit_on_error;
};

/* Install granule g with buffer buf: read, verify, copy/zero.  0 or -errno
 * with err set; the caller owns the claim. */
int mig_lazy_install(struct mig_lazy *lz, uint64_t g, uint8_t *buf,
                     struct mr_error *err);
/* Stop the guest and fail the incoming migration (first caller only). */
void mig_lazy_fail(struct mig_lazy *lz, const struct mr_error *err);
/* After a failure (lazy_seal.c): poison granule g, which the caller has
 * claimed and keeps claimed; and take and poison every granule left.  The
 * seal runs once the installers stopped: a granule given back to missing
 * after it would leave the threads that faulted on it while it was
 * claimed asleep (the fault thread poisons it at the next fault). */
void mig_lazy_withhold(struct mig_lazy *lz, uint64_t g);
void mig_lazy_seal(struct mig_lazy *lz);
int mig_lazy_fault_start(struct mig_lazy *lz, struct mr_error *err);
void mig_lazy_fault_stop(struct mig_lazy *lz);

/* mr_migration_free: stop the threads, release everything. */
void mig_lazy_free(struct mig_lazy *lz);
/* query-migrate's x-lazy-* members, into its "ram" object. */
void mig_lazy_query(struct mig_lazy *lz, json_t *ram);
/* migrate_cancel: refused while pages are still served lazily. */
int mig_lazy_cancel_check(struct mr_migration *mig, struct mr_error *err);

#endif
