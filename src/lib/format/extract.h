/*
 * A RAM block's memory out of a walked save file (stream_walk.h), as a
 * raw image of used_length bytes.  Only present pages are written, so a
 * sink that starts as a hole-filled file of used_length bytes ends up
 * sparse where pages are absent.  Mapped-ram blocks are copied by bitmap
 * runs; legacy blocks by a second walk over the records (last write wins,
 * a final ZERO leaves the page zero).
 */
#ifndef MAPRAM_FORMAT_EXTRACT_H
#define MAPRAM_FORMAT_EXTRACT_H

#include <stddef.h>
#include <stdint.h>

#include "format/stream_walk.h"

#define MR_EXTRACT_CHUNK_BYTES (1ULL << 20)

struct mr_sink {
    /* Write len bytes at block-relative offset off; 0 or -errno. */
    int (*write)(void *opaque, const void *buf, size_t len, uint64_t off,
                 struct mr_error *err);
    void *opaque;
};

int mr_extract_block(const struct mr_source *src, const struct mr_walk *w,
                     size_t block, const struct mr_sink *sink,
                     struct mr_error *err);

/*
 * A file name for a block: leading '/' and '.' are dropped, then '/' and
 * anything outside [A-Za-z0-9._@+-] become '_', and ".img" is appended
 * ("/rom@etc/acpi/tables" -> "rom@etc_acpi_tables.img"; an empty result
 * becomes "_.img").  Never contains '/', never starts with '.'.  `out`
 * holds 256 + 5 bytes.
 */
void mr_extract_file_name(const char *idstr, char out[261]);

#endif
