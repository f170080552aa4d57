/*
 * Turning a batch of page indexes into write requests (pure logic, unit
 * tested apart from the threads).
 */
#ifndef MAPRAM_MULTIFD_BATCH_H
#define MAPRAM_MULTIFD_BATCH_H

#include <stddef.h>
#include <stdint.h>

/*
 * Pages are sorted, then cut into runs of consecutive indexes, one write
 * request each.  Zero pages split runs, but a short stretch of zero pages
 * between data pages of one consecutive stretch is written too when that
 * keeps one request instead of two: the file then holds those zeros, so
 * their bits are set and the rule "bit set <=> the file holds the page's
 * current content" still holds.
 */

/* Per-page classification in and out of mr_batch_plan(). */
enum {
    MR_PAGE_DATA = 0,     /* write it, set its bit */
    MR_PAGE_ZERO = 1,     /* skip it, clear its bit */
    MR_PAGE_BRIDGED = 2,  /* zero, but written inside a run: set its bit */
};

struct mr_page_run {
    uint64_t first;       /* block-relative page index */
    uint64_t nr_pages;
};

/* Sort ascending; cheap when already sorted (the usual case). */
void mr_batch_sort(uint64_t *pages, size_t n);

/*
 * pages[] sorted, kind[i] MR_PAGE_DATA or MR_PAGE_ZERO for pages[i].
 * Fills runs[] (room for n) with the write runs and returns their count;
 * zero pages folded into a run become MR_PAGE_BRIDGED.  A gap of more
 * than max_zero_gap zero pages (0: never bridge) ends the run.
 */
size_t mr_batch_plan(const uint64_t *pages, uint8_t *kind, size_t n,
                     unsigned max_zero_gap, struct mr_page_run *runs);

#endif
