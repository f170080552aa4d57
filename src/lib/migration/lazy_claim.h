/*
 * The lazy load's claim table: one atomic state per granule (missing,
 * claimed, resident), so the fault thread and the fill never install the
 * same page twice and a fault on a claimed granule waits for its owner.
 */
#ifndef MAPRAM_MIGRATION_LAZY_CLAIM_H
#define MAPRAM_MIGRATION_LAZY_CLAIM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum { MR_CLAIM_MISSING, MR_CLAIM_BUSY, MR_CLAIM_RESIDENT };

struct mr_claim {
    _Atomic uint8_t *state;
    uint64_t n;
    atomic_uint_fast64_t resident;   /* granules installed */
};

int mr_claim_init(struct mr_claim *t, uint64_t granules);
void mr_claim_free(struct mr_claim *t);
/* Take granule g for installing: true for exactly one caller. */
bool mr_claim_take(struct mr_claim *t, uint64_t g);
/* The owner installed it (true) or gave it back after a failure (false). */
void mr_claim_done(struct mr_claim *t, uint64_t g, bool installed);
int mr_claim_get(const struct mr_claim *t, uint64_t g);
bool mr_claim_all_resident(const struct mr_claim *t);

#endif
