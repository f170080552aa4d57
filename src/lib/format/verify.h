/*
 * Offline verification of a walked save file (`mapram verify`): layout
 * and bitmap bounds for any mapped-ram file, and, when mapram's checksum
 * trailer is there, every extent's CRC32C recomputed from the file the
 * way a loader reads it (absent pages as zeros).  Reads through a bounded
 * source; allocates at most one extent and one block bitmap at a time,
 * each bounded by the file's size first.
 */
#ifndef MAPRAM_FORMAT_VERIFY_H
#define MAPRAM_FORMAT_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "format/stream_walk.h"

struct mr_verify_report {
    bool checksums;             /* the file has a trailer */
    bool trailer_announced;     /* VMDESC says a trailer must follow */
    uint64_t blocks;
    uint64_t extents;           /* verified */
    uint64_t data_bytes;        /* present page bytes read */
};

/* 0 when the file is sound; else the first problem in `err` (for a bad
 * extent: "checksum mismatch in RAM block B extent N ..."). */
int mr_verify_file(const struct mr_source *src, const struct mr_walk *w,
                   struct mr_verify_report *rep, struct mr_error *err);

#endif
