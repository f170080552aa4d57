/*
 * Physical allocation of mapped-ram page regions (stream_walk.h): how much
 * of each block's pages area holds data rather than holes, from
 * SEEK_DATA/SEEK_HOLE.  Kept apart from the walk, which only reads
 * through a byte source.
 */
#include <errno.h>
#include <unistd.h>

#include "image/stream_walk.h"

/* Data bytes in [start, start + len) according to SEEK_DATA/SEEK_HOLE. */
static int64_t allocated_in(int fd, uint64_t start, uint64_t len)
{
    uint64_t end = start + len, pos = start;
    int64_t total = 0;

    while (pos < end) {
        off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
        off_t hole;

        if (data < 0)
            return errno == ENXIO ? total : -1;
        if ((uint64_t)data >= end)
            break;
        hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0)
            return -1;
        if ((uint64_t)hole > end)
            hole = (off_t)end;
        total += hole - data;
        pos = (uint64_t)hole;
    }
    return total;
}

void mr_walk_measure_allocation(struct mr_walk *w, int fd)
{
    for (size_t i = 0; w->mapped_ram && i < w->nr_blocks; i++) {
        struct mr_walk_block *b = &w->blocks[i];

        b->allocated_bytes = allocated_in(fd, b->entry.pages_offset,
                                          b->entry.used_length);
    }
}
