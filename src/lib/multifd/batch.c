/* Batch → write runs, with zero-gap bridging.  See batch.h. */
#include <stdbool.h>

#include "multifd/batch.h"

void mr_batch_sort(uint64_t *pages, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint64_t p = pages[i];
        size_t j = i;

        while (j > 0 && pages[j - 1] > p) {
            pages[j] = pages[j - 1];
            j--;
        }
        pages[j] = p;
    }
}

size_t mr_batch_plan(const uint64_t *pages, uint8_t *kind, size_t n,
                     unsigned max_zero_gap, struct mr_page_run *runs)
{
    size_t nruns = 0;
    bool open = false;        /* runs[nruns - 1] can still grow */
    size_t nzero = 0;         /* zero pages right after the open run */

    for (size_t i = 0; i < n; i++) {
        uint64_t next = open ? runs[nruns - 1].first +
                               runs[nruns - 1].nr_pages + nzero : 0;
        bool follows = open && pages[i] == next;

        if (kind[i] == MR_PAGE_ZERO) {
            if (follows && nzero < max_zero_gap) {
                nzero++;
            } else {
                open = false;
                nzero = 0;
            }
            continue;
        }
        if (follows) {
            /* Bridge the zero pages in between (there are <= max). */
            for (size_t z = i - nzero; z < i; z++)
                kind[z] = MR_PAGE_BRIDGED;
            runs[nruns - 1].nr_pages += nzero + 1;
        } else {
            runs[nruns].first = pages[i];
            runs[nruns].nr_pages = 1;
            nruns++;
            open = true;
        }
        nzero = 0;
    }
    return nruns;
}
