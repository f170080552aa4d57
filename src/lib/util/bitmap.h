/*
 * Bitmaps over `unsigned long` words, one bit per page.
 */
#ifndef MAPRAM_UTIL_BITMAP_H
#define MAPRAM_UTIL_BITMAP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The save side keeps one per RAM block (the "file bitmap": bit set = the
 * file holds the page's current content) and several channel threads update
 * the same words, so set/clear are atomic read-modify-writes.  Reads and
 * searches are plain: callers only scan after the writers have synced.
 *
 * On disk (docs/stream-format.md, "Page bitmap") the bitmap is little-endian 64-bit
 * words, ceil(nbits / 64) * 8 bytes, unused trailing bits zero.
 */

#define MR_BITS_PER_LONG (sizeof(unsigned long) * CHAR_BIT)

static inline size_t mr_bitmap_nr_longs(uint64_t nbits)
{
    return (size_t)((nbits + MR_BITS_PER_LONG - 1) / MR_BITS_PER_LONG);
}

/* Size of the on-disk form: whole 64-bit words. */
static inline uint64_t mr_bitmap_disk_bytes(uint64_t nbits)
{
    return (nbits + 63) / 64 * 8;
}

/* calloc'ed bitmap of nbits clear bits; NULL on overflow or no memory. */
unsigned long *mr_bitmap_new(uint64_t nbits);

void mr_bitmap_set_atomic(unsigned long *map, uint64_t bit);
void mr_bitmap_clear_atomic(unsigned long *map, uint64_t bit);
/* Set or clear [start, start + n) atomically word by word. */
void mr_bitmap_set_range_atomic(unsigned long *map, uint64_t start, uint64_t n);
void mr_bitmap_clear_range_atomic(unsigned long *map, uint64_t start,
                                  uint64_t n);
bool mr_bitmap_test(const unsigned long *map, uint64_t bit);

/* First set (clear) bit at or after `start`, or `nbits` if none. */
uint64_t mr_bitmap_next_set(const unsigned long *map, uint64_t nbits,
                            uint64_t start);
uint64_t mr_bitmap_next_clear(const unsigned long *map, uint64_t nbits,
                              uint64_t start);
uint64_t mr_bitmap_count(const unsigned long *map, uint64_t nbits);

/*
 * Next run of set bits at or after `start`: returns false when there is
 * none, else its first bit and length.  Loops look like
 *     for (b = 0; mr_bitmap_next_run(map, n, b, &first, &len); b = first + len)
 */
bool mr_bitmap_next_run(const unsigned long *map, uint64_t nbits,
                        uint64_t start, uint64_t *first, uint64_t *len);

/* Write the on-disk form (mr_bitmap_disk_bytes(nbits) bytes) to `out`;
 * bits past nbits are written as 0. */
void mr_bitmap_to_le64(const unsigned long *map, uint64_t nbits, uint8_t *out);
/* Read the on-disk form into `map` (mr_bitmap_nr_longs(nbits) words); bits
 * past nbits in the input are ignored. */
void mr_bitmap_from_le64(const uint8_t *in, uint64_t nbits,
                         unsigned long *map);

#endif
