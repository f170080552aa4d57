/*
 * Mapped-ram layout math and the on-disk page bitmap, shared by the writer
 * and the reader (docs/stream-format.md, "Mapped-ram block header" and "Page bitmap").  Pure functions: no
 * I/O, no allocation.
 */
#ifndef MAPRAM_FORMAT_MAPPED_RAM_H
#define MAPRAM_FORMAT_MAPPED_RAM_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The on-disk bitmap is an array of little-endian 64-bit words whatever the
 * host (QEMU on x86_64 dumps its unsigned longs), so page i is bit i % 8 of
 * byte i / 8.  The helpers below work byte-wise and are host-independent.
 */

/* Bytes of bitmap for num_pages pages: whole 64-bit words. */
uint64_t mr_mapped_ram_bitmap_size(uint64_t num_pages);

struct mr_mapped_ram_layout {
    uint64_t bitmap_offset;     /* header position + 28 */
    uint64_t bitmap_size;       /* bytes */
    uint64_t pages_offset;      /* 1 MiB aligned */
    uint64_t next_offset;       /* pages_offset + used_length: next block */
};

/*
 * Where a writer puts a block whose 28-byte header is written at absolute
 * offset header_pos.  Returns false if used_length is not a multiple of
 * page_size, page_size is 0, or a sum overflows 64 bits.
 */
bool mr_mapped_ram_layout(uint64_t header_pos, uint64_t used_length,
                          uint64_t page_size,
                          struct mr_mapped_ram_layout *out);

/* Round up to the mapped-ram file offset alignment (1 MiB); false on
 * overflow. */
bool mr_mapped_ram_align_up(uint64_t off, uint64_t *out);

/* Bit `page` of an on-disk bitmap. */
bool mr_bitmap_le64_test(const uint8_t *bitmap, uint64_t page);
void mr_bitmap_le64_set(uint8_t *bitmap, uint64_t page);
void mr_bitmap_le64_clear(uint8_t *bitmap, uint64_t page);

/* Set bits among pages [0, num_pages). */
uint64_t mr_bitmap_le64_count(const uint8_t *bitmap, uint64_t num_pages);

/* Set bits at or beyond num_pages in a bitmap of size_bytes bytes (they
 * must be zero in a valid file). */
uint64_t mr_bitmap_le64_count_beyond(const uint8_t *bitmap, uint64_t size_bytes,
                                     uint64_t num_pages);

/*
 * The next maximal run of set bits at or after `from`, below num_pages:
 * [*run_start, *run_end).  Returns false when there is none.
 */
bool mr_bitmap_le64_next_run(const uint8_t *bitmap, uint64_t num_pages,
                             uint64_t from, uint64_t *run_start,
                             uint64_t *run_end);

#endif
