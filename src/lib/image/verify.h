/*
 * Offline verification of a walked save file (`mapram verify`): layout
 * and bitmap bounds of any mapped-ram file, and every extent's CRC32C
 * when mapram's checksum trailer is there.
 */
#ifndef MAPRAM_IMAGE_VERIFY_H
#define MAPRAM_IMAGE_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "image/stream_walk.h"

/*
 * Offline verification of a walked save file (`mapram verify`): layout
 * and bitmap bounds for any mapped-ram file, and, when mapram's checksum
 * trailer is there, every extent's CRC32C recomputed from the file the
 * way a loader reads it (absent pages as zeros).  Reads through a bounded
 * source; allocates at most one extent and one block bitmap at a time,
 * each bounded by the file's size first.
 */


/* 0 when the file is sound; else the first problem in `err` (for a bad
 * extent: "checksum mismatch in RAM block B extent N ..."). */
int mr_verify_file(const struct mr_source *src, const struct mr_walk *w,
                   struct mr_verify_report *rep, struct mr_error *err);

#endif
