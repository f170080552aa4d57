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

/* The parts seal shares: the layout rules over every block and no bits
 * set past a block's pages; a block's on-disk bitmap (caller frees); one
 * extent as a loader sees it, read into buf (extent_pages pages), and its
 * CRC32C. */
int mr_verify_layout(const struct mr_source *src, const struct mr_walk *w,
                     struct mr_error *err);
uint8_t *mr_verify_read_bitmap(const struct mr_source *src,
                               const struct mr_walk_block *b,
                               struct mr_error *err);
int mr_verify_extent_crc(const struct mr_source *src,
                         const struct mr_walk_block *b, const uint8_t *bm,
                         uint64_t ext, uint8_t *buf, uint32_t *crc,
                         uint64_t *data_bytes, struct mr_error *err);

#endif
