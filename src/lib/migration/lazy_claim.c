/*
 * Claim table: compare-and-swap from missing to claimed; the owner alone
 * moves it on.  A failed install returns the granule to missing.
 */
#include <errno.h>
#include <stdlib.h>

#include "migration/lazy_claim.h"

int mr_claim_init(struct mr_claim *t, uint64_t granules)
{
    t->state = calloc(granules ? granules : 1, sizeof(*t->state));
    t->n = granules;
    atomic_init(&t->resident, 0);
    return t->state ? 0 : -ENOMEM;
}

void mr_claim_free(struct mr_claim *t)
{
    free((void *)t->state);
    t->state = NULL;
}

bool mr_claim_take(struct mr_claim *t, uint64_t g)
{
    uint8_t expected = MR_CLAIM_MISSING;

    return g < t->n && atomic_compare_exchange_strong(&t->state[g], &expected,
                                                       MR_CLAIM_BUSY);
}

void mr_claim_done(struct mr_claim *t, uint64_t g, bool installed)
{
    atomic_store(&t->state[g], installed ? MR_CLAIM_RESIDENT
                                         : MR_CLAIM_MISSING);
    if (installed)
        atomic_fetch_add(&t->resident, 1);
}

int mr_claim_get(const struct mr_claim *t, uint64_t g)
{
    return atomic_load(&t->state[g]);
}

bool mr_claim_all_resident(const struct mr_claim *t)
{
    return atomic_load(&t->resident) == t->n;
}
