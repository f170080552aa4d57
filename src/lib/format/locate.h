/*
 * Where the QEMU stream starts inside a save file: at 0 (plain `file:`),
 * after a libvirt save-image header (spec/libvirt-header.md), after
 * mapram's own header (docs/file-header.md), at an explicit offset, or,
 * failing all of those, at the first 4 KiB boundary within the first MiB
 * that carries "QEVM" version 3 (a management header of unknown shape in
 * front, as with `file:/dev/fdset/N,offset=...`).
 */
#ifndef MAPRAM_FORMAT_LOCATE_H
#define MAPRAM_FORMAT_LOCATE_H

#include <stdbool.h>
#include <stdint.h>

#include "format/mapram_header.h"
#include "format/source.h"

enum mr_container {
    MR_CONTAINER_RAW,           /* stream at offset 0 */
    MR_CONTAINER_EXPLICIT,      /* offset given by the user */
    MR_CONTAINER_LIBVIRT,
    MR_CONTAINER_MAPRAM,
    MR_CONTAINER_PROBED,        /* unknown prefix, found by probing */
};

#define MR_LIBVIRT_HEADER_SIZE  92
#define MR_LOCATE_PROBE_LIMIT   (1ULL << 20)
#define MR_LOCATE_PROBE_STEP    4096

struct mr_libvirt_header {
    bool complete;              /* magic Save, not Part */
    bool big_endian;
    uint32_t version;
    uint32_t data_len;
    uint32_t was_running;
    uint32_t format;            /* 0 raw, 6 sparse; others are compressed */
    uint32_t cookie_offset;
};

struct mr_location {
    enum mr_container kind;
    uint64_t stream_offset;
    bool incomplete;            /* libvirt Part or mapram PART */
    struct mr_libvirt_header libvirt;       /* kind == LIBVIRT */
    struct mr_file_header mapram;           /* kind == MAPRAM */
    char prefix_preview[40];    /* kind == PROBED: printable start of file */
};

/* Find the stream; explicit_offset < 0 means "work it out". */
int mr_stream_locate(const struct mr_source *src, int64_t explicit_offset,
                     struct mr_location *loc, struct mr_error *err);

const char *mr_container_name(enum mr_container kind);

#endif
