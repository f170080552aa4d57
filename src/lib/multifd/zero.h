/*
 * Zero-page detection for the save channels.  Most guest pages that are
 * not zero differ from zero in their first bytes, so the test looks at the
 * first 16 bytes alone, then sweeps 64-byte chunks with an early exit on
 * the first chunk holding a non-zero byte.
 */
#ifndef MAPRAM_MULTIFD_ZERO_H
#define MAPRAM_MULTIFD_ZERO_H

#include <stdbool.h>
#include <stddef.h>

/* len must be a multiple of 64 and buf 16-byte aligned (pages are). */
bool mr_page_is_zero(const void *buf, size_t len);
/* Same answer with plain 64-bit words (the reference; the benchmark
 * compares the two). */
bool mr_page_is_zero_words(const void *buf, size_t len);

#endif
