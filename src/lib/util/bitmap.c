/*
 * Page bitmaps: atomic updates from channel threads, run scanning for the
 * loader, and the little-endian 64-bit on-disk form.  See bitmap.h.
 */
#include <stdlib.h>
#include <string.h>

#include "util/bitmap.h"

#define WORD(bit) ((size_t)((bit) / MR_BITS_PER_LONG))
#define MASK(bit) (1UL << ((bit) % MR_BITS_PER_LONG))

unsigned long *mr_bitmap_new(uint64_t nbits)
{
    if (nbits > (uint64_t)SIZE_MAX / 2)
        return NULL;
    return calloc(mr_bitmap_nr_longs(nbits) + 1, sizeof(unsigned long));
}

/* Relaxed is enough: the channel's hand-back (a mutex) orders the bit
 * updates before anyone who syncs reads the bitmap. */
void mr_bitmap_set_atomic(unsigned long *map, uint64_t bit)
{
    __atomic_fetch_or(&map[WORD(bit)], MASK(bit), __ATOMIC_RELAXED);
}

void mr_bitmap_clear_atomic(unsigned long *map, uint64_t bit)
{
    __atomic_fetch_and(&map[WORD(bit)], ~MASK(bit), __ATOMIC_RELAXED);
}

/* Mask of bits [lo, hi) within one word, 0 <= lo < hi <= BITS_PER_LONG. */
static unsigned long range_mask(unsigned lo, unsigned hi)
{
    unsigned long upper = hi == MR_BITS_PER_LONG ? ~0UL : (1UL << hi) - 1;

    return upper & ~((1UL << lo) - 1);
}

static void update_range(unsigned long *map, uint64_t start, uint64_t n,
                         bool set)
{
    uint64_t end = start + n;

    while (start < end) {
        unsigned lo = start % MR_BITS_PER_LONG;
        uint64_t room = MR_BITS_PER_LONG - lo;
        unsigned hi = end - start < room ? lo + (unsigned)(end - start)
                                         : (unsigned)MR_BITS_PER_LONG;
        unsigned long mask = range_mask(lo, hi);

        if (set)
            __atomic_fetch_or(&map[WORD(start)], mask, __ATOMIC_RELAXED);
        else
            __atomic_fetch_and(&map[WORD(start)], ~mask, __ATOMIC_RELAXED);
        start += hi - lo;
    }
}

void mr_bitmap_set_range_atomic(unsigned long *map, uint64_t start, uint64_t n)
{
    update_range(map, start, n, true);
}

void mr_bitmap_clear_range_atomic(unsigned long *map, uint64_t start,
                                  uint64_t n)
{
    update_range(map, start, n, false);
}

bool mr_bitmap_test(const unsigned long *map, uint64_t bit)
{
    return (__atomic_load_n(&map[WORD(bit)], __ATOMIC_RELAXED) & MASK(bit))
           != 0;
}

/* Shared search: `invert` turns "next clear" into "next set" on ~word. */
static uint64_t next_bit(const unsigned long *map, uint64_t nbits,
                         uint64_t start, bool invert)
{
    uint64_t bit = start;

    while (bit < nbits) {
        unsigned long w = __atomic_load_n(&map[WORD(bit)], __ATOMIC_RELAXED);

        if (invert)
            w = ~w;
        w &= ~0UL << (bit % MR_BITS_PER_LONG);
        if (w) {
            bit = bit - bit % MR_BITS_PER_LONG + (uint64_t)__builtin_ctzl(w);
            return bit < nbits ? bit : nbits;
        }
        bit = bit - bit % MR_BITS_PER_LONG + MR_BITS_PER_LONG;
    }
    return nbits;
}

uint64_t mr_bitmap_next_set(const unsigned long *map, uint64_t nbits,
                            uint64_t start)
{
    return next_bit(map, nbits, start, false);
}

uint64_t mr_bitmap_next_clear(const unsigned long *map, uint64_t nbits,
                              uint64_t start)
{
    return next_bit(map, nbits, start, true);
}

uint64_t mr_bitmap_count(const unsigned long *map, uint64_t nbits)
{
    size_t full = (size_t)(nbits / MR_BITS_PER_LONG);
    unsigned tail = nbits % MR_BITS_PER_LONG;
    uint64_t count = 0;

    for (size_t i = 0; i < full; i++)
        count += (uint64_t)__builtin_popcountl(map[i]);
    if (tail)
        count += (uint64_t)__builtin_popcountl(map[full] & range_mask(0, tail));
    return count;
}

bool mr_bitmap_next_run(const unsigned long *map, uint64_t nbits,
                        uint64_t start, uint64_t *first, uint64_t *len)
{
    uint64_t s = mr_bitmap_next_set(map, nbits, start);

    if (s >= nbits)
        return false;
    *first = s;
    *len = mr_bitmap_next_clear(map, nbits, s) - s;
    return true;
}

static bool get_bit(const unsigned long *map, uint64_t nbits, uint64_t bit)
{
    return bit < nbits && (map[WORD(bit)] & MASK(bit));
}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && ULONG_MAX == UINT64_MAX
#define NATIVE_LE64 1
#else
#define NATIVE_LE64 0
#endif

/* The fast path is a copy (the in-memory form *is* the disk form on
 * x86_64); the byte-wise path is right for any word size and byte order. */
void mr_bitmap_to_le64(const unsigned long *map, uint64_t nbits, uint8_t *out)
{
    uint64_t nbytes = mr_bitmap_disk_bytes(nbits);

    if (NATIVE_LE64) {
        memcpy(out, map, (size_t)nbytes);
        for (uint64_t bit = nbits; bit < nbytes * 8; bit++)
            out[bit / 8] &= (uint8_t)~(1U << (bit % 8));
        return;
    }
    for (uint64_t byte = 0; byte < nbytes; byte++) {
        uint8_t v = 0;

        for (unsigned b = 0; b < 8; b++)
            if (get_bit(map, nbits, byte * 8 + b))
                v |= (uint8_t)(1U << b);
        out[byte] = v;
    }
}

void mr_bitmap_from_le64(const uint8_t *in, uint64_t nbits,
                         unsigned long *map)
{
    size_t nlongs = mr_bitmap_nr_longs(nbits);

    if (NATIVE_LE64) {
        memcpy(map, in, nlongs * sizeof(unsigned long));
        if (nbits % MR_BITS_PER_LONG)
            map[nlongs - 1] &= range_mask(0, nbits % MR_BITS_PER_LONG);
        return;
    }
    for (size_t i = 0; i < nlongs; i++)
        map[i] = 0;
    for (uint64_t bit = 0; bit < nbits; bit++)
        if (in[bit / 8] & (1U << (bit % 8)))
            map[WORD(bit)] |= MASK(bit);
}
