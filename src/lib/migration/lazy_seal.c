/*
 * Sealing a failed lazy load (docs/lazy-load.md, "Fail closed"): every
 * granule that is not resident is taken for good and poisoned with
 * UFFDIO_POISON, so a thread asleep on it wakes with a memory error
 * (SIGBUS for user code, EHWPOISON for KVM and the kernel's own access)
 * and no later access waits or sees data.  Nothing is ever installed in
 * a withheld granule, neither zeros nor the file's data.
 */
#include "migration/lazy.h"
#include "migration/uffd.h"

void mig_lazy_withhold(struct mig_lazy *lz, uint64_t g)
{
    for (size_t i = lz->nplans; i-- > 0;) {
        const struct mig_lazy_block *b = &lz->blk[i];
        uint64_t off, len;

        if (g < b->first)
            continue;
        off = (g - b->first) * lz->granule;
        len = b->len - off < lz->granule ? b->len - off : lz->granule;
        if (mr_uffd_poison(lz->uffd, b->host + off, len))
            atomic_store(&lz->stuck, true);    /* before Linux 6.6 */
        return;
    }
}

void mig_lazy_seal(struct mig_lazy *lz)
{
    for (uint64_t g = 0; g < lz->claim.n; g++)
        if (mr_claim_take(&lz->claim, g))
            mig_lazy_withhold(lz, g);   /* claimed for ever */
}
