/*
 * Where the QEMU stream starts inside a save file: at 0 (plain `file:`),
 * after a libvirt save-image header (docs/libvirt-header.md), after
 * mapram's own header (docs/file-header.md), at an explicit offset, or,
 * failing all of those, at the first 4 KiB boundary within the first MiB
 * that carries "QEVM" version 3 (a management header of unknown shape in
 * front, as with `file:/dev/fdset/N,offset=...`).
 */
#ifndef MAPRAM_IMAGE_LOCATE_H
#define MAPRAM_IMAGE_LOCATE_H

#include <stdbool.h>
#include <stdint.h>

#include "format/source.h"
#include "mapram/image.h"


#define MR_LOCATE_PROBE_LIMIT   (1ULL << 20)
#define MR_LOCATE_PROBE_STEP    4096



/* Find the stream; explicit_offset < 0 means "work it out". */
int mr_stream_locate(const struct mr_source *src, int64_t explicit_offset,
                     struct mr_location *loc, struct mr_error *err);

/* A compressed libvirt image is located but cannot be walked where it
 * lies: 0, or -ENOTSUP naming the compressor. */
int mr_libvirt_check_readable(const struct mr_location *loc,
                              struct mr_error *err);


#endif
