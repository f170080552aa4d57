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
#include "migration/lazy_hist.h"
#include "migration/lazy_wset.h"
#include "migration/load_job.h"
#include "migration/transport.h"

struct mr_multifd;
struct mig_fill_slot;

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
    uint64_t granule;                /* bytes, x-lazy-granule */
    struct mr_claim claim;
    uint8_t *fault_buf;              /* span bytes (the fill has its own) */
    bool fault_live, fill_live;
    pthread_t fault_thr, fill_thr;
    atomic_bool stop, failed;
    atomic_bool stuck;               /* a granule could not be poisoned */
    atomic_int pending;              /* the fault thread has events */
    uint64_t total_bytes;
    atomic_uint_fast64_t done_bytes, faults, fault_ns_sum, fault_ns_max;
    bool exit_on_error;

    /* The fill through the page channels (lazy_fill.c). */
    unsigned nchan;                  /* multifd-channels, 0: inline */
    int chan_fd[MIG_MAX_CHANNELS];   /* dup'd page channel descriptors */
    bool dio;                        /* they are O_DIRECT */
    const char *io_engine;
    uint64_t fill_cap;               /* MB/s, 0: uncapped */
    uint64_t span;                   /* bounce bytes for one granule */
    struct mr_multifd *mf;
    struct mig_fill_slot *slots;
    unsigned nslots;
    uint64_t t_start_ns;             /* lazy_ram began */
    atomic_uint_fast64_t fill_bytes, fill_t0_ns, fill_t1_ns, resident_ns;
    struct mig_lat_hist hist;        /* fault service times */
    _Atomic uint64_t *fault_t0;      /* per granule: a fault waits since */
    atomic_uint_fast64_t last_fault_ns; /* the fault thread's latest */
    atomic_uint_fast64_t zero_faults;   /* on pages left missing */

    /* The working set (lazy_wset.c). */
    char *wset_path;                 /* FILE.wset, NULL: none */
    uint64_t file_size, file_mtime_ns;
    struct mig_wset_rec rec;         /* this restore's demand faults */
    uint64_t *pre;                   /* the sidecar's order (granules) */
    uint64_t npre;
    atomic_uint_fast64_t prefetched; /* granules the fill took from pre */
};

/* lazy_fault.c, for the fill: granule g's block and pages [*p0, *p1),
 * and installing verified pages [p0, p1) of b from buf (page p0 first). */
const struct mig_lazy_block *mig_lazy_block_of(const struct mig_lazy *lz,
                                               uint64_t g);
void mig_lazy_granule_pages(const struct mig_lazy *lz,
                            const struct mig_lazy_block *b, uint64_t g,
                            uint64_t *p0, uint64_t *p1);
int mig_lazy_place(struct mig_lazy *lz, const struct mig_lazy_block *b,
                   uint64_t p0, uint64_t p1, const uint8_t *buf,
                   struct mr_error *err);
/* A fault's service time (from its read to its wake) into the stats. */
void mig_lazy_note_latency(struct mig_lazy *lz, uint64_t ns);
/* lazy_fill.c: a fault (read at t0) on a granule the fill owns: its
 * latency is noted when the fill installs it.  True when the granule
 * became resident meanwhile (the caller settles the page itself). */
bool mig_lazy_wait_begin(struct mig_lazy *lz, uint64_t g, uint64_t t0);
/* The owner of granule g installed it: resident, a waiting fault's
 * latency noted, and every sleeper in it woken (a page left missing, in
 * a long absent run, then faults again and gets its zero page). */
void mig_lazy_resident(struct mig_lazy *lz, const struct mig_lazy_block *b,
                       uint64_t g);

/* lazy_fill.c: the page channels for the fill (after adopt), the
 * working set's head before the resume, the fill loop (working set, then
 * file order; yields to faults, capped), and the release. */
int mig_lazy_fill_setup(struct mig_lazy *lz, const struct load_job *j,
                        struct mr_error *err);
int mig_lazy_prefetch(struct mig_lazy *lz, struct mr_error *err);
int mig_lazy_fill_run(struct mig_lazy *lz, struct mr_error *err);
void mig_lazy_fill_free(struct mig_lazy *lz);
void mig_lazy_fill_query(struct mig_lazy *lz, json_t *ram);
uint64_t mig_lazy_now_ns(void);

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
