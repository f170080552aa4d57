/*
 * Sealing a failed lazy load (docs/lazy-load.md, "Fail closed"): every
 * granule that is not resident is taken for good and poisoned with
 * UFFDIO_POISON, so a thread asleep on it wakes with a memory error
 * (SIGBUS for user code, EHWPOISON for KVM and the kernel's own access)
 * and no later access waits or sees data.  Nothing is ever installed in
 * a withheld granule, neither zeros nor the file's data.  The absent
 * runs a resident granule left missing are poisoned too: a touch of one
 * would wait for a fault thread that may be the one that died.
 */
#include "format/mapped_ram.h"
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

/* Pages [p0, p1) of b that the file does not hold. */
static void withhold_absent(struct mig_lazy *lz, const struct mig_lazy_block *b,
                            uint64_t p0, uint64_t p1)
{
    const struct load_plan *p = b->plan;

    for (uint64_t q = p0; q < p1;) {
        uint64_t r = q;

        while (r < p1 && !mr_bitmap_le64_test(p->bitmap, r))
            r++;
        /* pages installed as zeros meanwhile are skipped (EEXIST) */
        if (r > q && mr_uffd_poison(lz->uffd, b->host + q * p->page_size,
                                    (r - q) * p->page_size))
            atomic_store(&lz->stuck, true);
        q = r + 1;
    }
}

void mig_lazy_seal(struct mig_lazy *lz)
{
    for (uint64_t g = 0; g < lz->claim.n; g++) {
        if (mr_claim_take(&lz->claim, g)) {
            mig_lazy_withhold(lz, g);   /* claimed for ever */
        } else if (mr_claim_get(&lz->claim, g) == MR_CLAIM_RESIDENT) {
            const struct mig_lazy_block *b = mig_lazy_block_of(lz, g);
            uint64_t p0, p1;

            mig_lazy_granule_pages(lz, b, g, &p0, &p1);
            withhold_absent(lz, b, p0, p1);
        }
    }
}
