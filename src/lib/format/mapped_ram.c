/*
 * Mapped-ram layout math and LE-64 bitmap helpers (mapped_ram.h).  Kept
 * free of I/O so the writer, the loader and `inspect` agree by
 * construction and the arithmetic is unit-tested alone.
 */
#include "format/mapped_ram.h"
#include "format/stream_defs.h"

uint64_t mr_mapped_ram_bitmap_size(uint64_t num_pages)
{
    return (num_pages / 64 + (num_pages % 64 != 0)) * 8;
}

bool mr_mapped_ram_align_up(uint64_t off, uint64_t *out)
{
    uint64_t mask = MAPPED_RAM_FILE_OFFSET_ALIGNMENT - 1;

    if (off > UINT64_MAX - mask)
        return false;
    *out = (off + mask) & ~mask;
    return true;
}

bool mr_mapped_ram_layout(uint64_t header_pos, uint64_t used_length,
                          uint64_t page_size,
                          struct mr_mapped_ram_layout *out)
{
    uint64_t bitmap_end;

    if (page_size == 0 || used_length % page_size)
        return false;
    if (header_pos > UINT64_MAX - MAPPED_RAM_HDR_SIZE)
        return false;
    out->bitmap_offset = header_pos + MAPPED_RAM_HDR_SIZE;
    out->bitmap_size = mr_mapped_ram_bitmap_size(used_length / page_size);
    if (out->bitmap_offset > UINT64_MAX - out->bitmap_size)
        return false;
    bitmap_end = out->bitmap_offset + out->bitmap_size;
    if (!mr_mapped_ram_align_up(bitmap_end, &out->pages_offset))
        return false;
    if (out->pages_offset > UINT64_MAX - used_length)
        return false;
    out->next_offset = out->pages_offset + used_length;
    return true;
}

bool mr_bitmap_le64_test(const uint8_t *bitmap, uint64_t page)
{
    return bitmap[page / 8] >> (page % 8) & 1;
}

void mr_bitmap_le64_set(uint8_t *bitmap, uint64_t page)
{
    bitmap[page / 8] |= (uint8_t)(1u << (page % 8));
}

void mr_bitmap_le64_clear(uint8_t *bitmap, uint64_t page)
{
    bitmap[page / 8] &= (uint8_t)~(1u << (page % 8));
}

uint64_t mr_bitmap_le64_count(const uint8_t *bitmap, uint64_t num_pages)
{
    uint64_t full = num_pages / 8, count = 0;

    for (uint64_t i = 0; i < full; i++)
        count += (uint64_t)__builtin_popcount(bitmap[i]);
    if (num_pages % 8)
        count += (uint64_t)__builtin_popcount(
            bitmap[full] & ((1u << (num_pages % 8)) - 1));
    return count;
}

uint64_t mr_bitmap_le64_count_beyond(const uint8_t *bitmap, uint64_t size_bytes,
                                     uint64_t num_pages)
{
    uint64_t total = size_bytes * 8;

    if (num_pages >= total)
        return 0;
    return mr_bitmap_le64_count(bitmap, total) -
           mr_bitmap_le64_count(bitmap, num_pages);
}

bool mr_bitmap_le64_next_run(const uint8_t *bitmap, uint64_t num_pages,
                             uint64_t from, uint64_t *run_start,
                             uint64_t *run_end)
{
    uint64_t i = from;

    /* Skip clear bits a byte at a time where possible. */
    while (i < num_pages) {
        if (i % 8 == 0 && bitmap[i / 8] == 0) {
            i += 8;
            continue;
        }
        if (mr_bitmap_le64_test(bitmap, i))
            break;
        i++;
    }
    if (i >= num_pages)
        return false;
    *run_start = i;
    while (i < num_pages) {
        if (i % 8 == 0 && bitmap[i / 8] == 0xff && i + 8 <= num_pages) {
            i += 8;
            continue;
        }
        if (!mr_bitmap_le64_test(bitmap, i))
            break;
        i++;
    }
    *run_end = i;
    return true;
}
