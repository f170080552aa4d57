/*
 * The lazy load's working set (docs/lazy-load.md, "Working set"): the
 * fault thread notes each granule it had to serve on demand, in order;
 * when the load completes the order is written to FILE.wset
 * (format/wset.h), and the next lazy restore of FILE fetches those
 * granules first.  A sidecar is only a hint: a missing one is silent, a
 * stale, corrupt or mismatched one is ignored with a warning.
 */
#ifndef MAPRAM_MIGRATION_LAZY_WSET_H
#define MAPRAM_MIGRATION_LAZY_WSET_H

#include <stdint.h>

struct mig_lazy;
struct load_job;

/* Written by the fault thread only, read once it has stopped. */
struct mig_wset_rec {
    uint64_t *order;
    uint64_t n, ngran;
    uint8_t *seen;
};

int mig_wset_rec_init(struct mig_wset_rec *r, uint64_t granules);
void mig_wset_note(struct mig_wset_rec *r, uint64_t g);
void mig_wset_rec_free(struct mig_wset_rec *r);

/* Setup, after the claim table: the sidecar's name and the file's
 * identity (x-lazy-working-set on, a file: path), the recorder, and
 * FILE.wset into lz->pre (global granule indexes) when it fits.  0 or
 * -ENOMEM: a bad sidecar is only a warning. */
int mig_lazy_wset_setup(struct mig_lazy *lz, const struct load_job *j);
/* Completed: the sidecar's order, then this restore's new faults. */
void mig_lazy_wset_save(struct mig_lazy *lz);

#endif
