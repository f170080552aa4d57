/*
 * A RAM block's memory out of a walked save file (stream_walk.h), as a
 * raw image of used_length bytes, sparse where pages are absent.
 */
#ifndef MAPRAM_IMAGE_EXTRACT_H
#define MAPRAM_IMAGE_EXTRACT_H

#include <stddef.h>
#include <stdint.h>

#include "image/stream_walk.h"

/*
 * A RAM block's memory out of a walked save file (stream_walk.h), as a
 * raw image of used_length bytes.  Only present pages are written, so a
 * sink that starts as a hole-filled file of used_length bytes ends up
 * sparse where pages are absent.  Mapped-ram blocks are copied by bitmap
 * runs; legacy blocks by a second walk over the records (last write wins,
 * a final ZERO leaves the page zero).
 */

#define MR_EXTRACT_CHUNK_BYTES (1ULL << 20)


int mr_extract_block(const struct mr_source *src, const struct mr_walk *w,
                     size_t block, const struct mr_sink *sink,
                     struct mr_error *err);


#endif
