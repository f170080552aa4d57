/*
 * The checksum trailer mapram-vm appends to the files it saves
 * (docs/file-format.md): a CRC32C per 1 MiB extent of every RAM block's
 * pages area, placed after the VMDESCRIPTION JSON where QEMU's loader
 * never looks, and located by a fixed-size footer at the very end of the
 * file.  This module is the pure part: extent math, the checksum of one
 * extent as a loader sees it, and the trailer and footer codecs.  Every
 * size read from a file is bounded before anything is allocated.
 */
#ifndef MAPRAM_FORMAT_CKSUM_H
#define MAPRAM_FORMAT_CKSUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/source.h"
#include "mapram/error.h"
#include "mapram/format.h"

#define MR_CKSUM_MAGIC          "MRCKSUM1"
#define MR_CKSUM_FOOTER_MAGIC   "MRCKEND1"
#define MR_CKSUM_MAGIC_BYTES    8
#define MR_CKSUM_FOOTER_BYTES   32
#define MR_CKSUM_VERSION        1
#define MR_CKSUM_MAX_BLOCKS     1024
/* 16 M extents = 16 TiB of RAM: a bound for a trailer read from a file. */
#define MR_CKSUM_MAX_TRAILER_BYTES (64ULL << 20)

/* The key mapram-vm adds to the VMDESCRIPTION JSON so that a file missing
 * its trailer (a save that died before its last write) is refused. */
#define MR_CKSUM_VMDESC_KEY     "mapram-checksums"

/*
 * The stream CRC covers every byte of [stream_offset, trailer) outside
 * the blocks' pages areas: stream records, block headers, bitmaps, the
 * alignment padding (zeros), device state and the VMDESCRIPTION.  Those
 * bytes lie in "spans", the complement of the pages areas.
 */
struct mr_cksum_span {
    uint64_t off, len;
};

/* Spans of [start, end) in file order; at most nblocks + 1 of them.
 * Returns how many, or -EINVAL when pages areas overlap or leave
 * [start, end). */
int mr_cksum_spans(const struct mr_cksum *ck, uint64_t start, uint64_t end,
                   struct mr_cksum_span *out);

/* The stream CRC of a file (loader, verify): reads the spans in 64 KiB
 * pieces, allocating nothing that depends on the file. */
int mr_cksum_stream_crc(const struct mr_source *src, const struct mr_cksum *ck,
                        uint64_t end, uint32_t *crc, struct mr_error *err);

/* Checks a trailer's stream CRC, when it has one, against the stream read
 * from @stream_offset up to @end: 0 when it matches or is not recorded,
 * -EINVAL when the stream is read from elsewhere, -EBADMSG on mismatch. */
int mr_cksum_check_stream(const struct mr_source *src,
                          const struct mr_cksum *ck, uint64_t stream_offset,
                          uint64_t end, struct mr_error *err);

/*
 * The writer's side: every main-stream write (offset, bytes) is logged so
 * that the stream CRC of the final content can be computed without
 * reading the file back (the save's descriptors are write-only).  Bytes
 * never written count as zeros (holes), as a reader sees them.
 */
struct mr_cksum_log {
    struct mr_cksum_write *w;
    size_t n, cap;
    uint64_t bytes;
};

int mr_cksum_log_add(struct mr_cksum_log *log, const void *buf, size_t len,
                     uint64_t off);
int mr_cksum_log_crc(const struct mr_cksum_log *log, const struct mr_cksum *ck,
                     uint64_t end, uint32_t *crc, struct mr_error *err);
void mr_cksum_log_free(struct mr_cksum_log *log);

/* Most bytes of non-page stream a save logs (device state, bitmaps). */
#define MR_CKSUM_LOG_MAX_BYTES (256ULL << 20)

/* Does the page at `page` of a bitmap hold data in the file? */
typedef bool (*mr_cksum_present_fn)(const void *bitmap, uint64_t page);

bool mr_cksum_present_le64(const void *bitmap, uint64_t page);  /* on-disk */
bool mr_cksum_present_ulong(const void *bitmap, uint64_t page); /* memory */

uint64_t mr_cksum_extent_pages(uint64_t page_size);
uint64_t mr_cksum_nr_extents(uint64_t used_length, uint64_t page_size);

/*
 * CRC32C of extent `extent` of a block as a loader sees it: the bytes of
 * each present page (taken from `host`, the block's memory) and zeros for
 * each absent one.
 */
uint32_t mr_cksum_extent(const uint8_t *host, uint64_t page_size,
                         uint64_t num_pages, uint64_t extent,
                         mr_cksum_present_fn present, const void *bitmap);

/* Allocate the table of one more block (crc values zero). */
int mr_cksum_add_block(struct mr_cksum *ck, const char *name,
                       uint64_t page_size, uint64_t used_length,
                       uint64_t pages_offset, struct mr_error *err);
const struct mr_cksum_block *mr_cksum_find(const struct mr_cksum *ck,
                                           const char *name);
void mr_cksum_free(struct mr_cksum *ck);

/* Trailer bytes (its own CRC included); caller frees.  NULL on ENOMEM. */
uint8_t *mr_cksum_encode(const struct mr_cksum *ck, size_t *len);
int mr_cksum_decode(const uint8_t *buf, size_t len, struct mr_cksum *ck,
                    struct mr_error *err);

void mr_cksum_footer_encode(uint8_t out[MR_CKSUM_FOOTER_BYTES],
                            uint64_t trailer_offset, uint64_t trailer_len);

/*
 * Look at the end of `src`.  No footer magic: returns -ENOENT, no error
 * set.  A footer that is there but wrong, or a trailer that does not
 * decode: an error.  Otherwise fills `ck` and the trailer's offset (where
 * the QEMU stream ends).
 */
int mr_cksum_read(const struct mr_source *src, struct mr_cksum *ck,
                  uint64_t *trailer_offset, struct mr_error *err);

/*
 * No footer: are there trailer bytes right after the stream, left by a
 * seal or save whose footer never reached the disk (docs/seal.md)?  Looks
 * for the trailer magic in the last MR_CKSUM_MAX_TRAILER_BYTES of the
 * file at a place where the VMDESCRIPTION record ends; only when that
 * record does not end the file.  0 with *at = where the stream ends, or
 * -ENOENT.
 */
int mr_cksum_find_unfinished(const struct mr_source *src,
                             uint64_t stream_offset, uint64_t *at);

/* mr_cksum_read, then shrink src->size to the stream's end so stream
 * readers see exactly what QEMU wrote.  *have says whether there was one. */
int mr_cksum_open(struct mr_source *src, struct mr_cksum *ck, bool *have,
                  struct mr_error *err);

#endif
