/*
 * The offline image API: read a save file of any kind mapram knows
 * (mapram's own, QEMU's `file:` saves, libvirt's images) without a VM,
 * model what it holds, extract a RAM block's memory and verify the file.
 * Memory is bounded by constants, not by the file (docs/inspect.md).
 */
#ifndef MAPRAM_IMAGE_H
#define MAPRAM_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mapram/error.h"
#include "mapram/format.h"

/* ---- where the stream is ---- */

enum mr_container {
    MR_CONTAINER_RAW,           /* stream at offset 0 */
    MR_CONTAINER_EXPLICIT,      /* offset given by the user */
    MR_CONTAINER_LIBVIRT,
    MR_CONTAINER_MAPRAM,
    MR_CONTAINER_PROBED,        /* unknown prefix, found by probing */
};

#define MR_LIBVIRT_HEADER_SIZE  92

/* libvirt's save-image header (docs/libvirt-header.md). */
struct mr_libvirt_header {
    bool complete;              /* magic Save, not Part */
    bool big_endian;
    uint32_t version;
    uint32_t data_len;
    uint32_t was_running;
    uint32_t format;            /* 0 raw, 6 sparse; 1-5 compressed */
    uint32_t cookie_offset;
    uint32_t xml_len;           /* of the domain XML at offset 92, no NUL */
    uint32_t cookie_len;        /* of the cookie text, 0 for none */
};

/* libvirt's names of the format field (docs/libvirt-header.md): "raw",
 * "gzip", "bzip2", "xz", "lzop", "zstd", "sparse"; NULL for others. */
const char *mr_libvirt_format_name(uint32_t format);

struct mr_location {
    enum mr_container kind;
    uint64_t stream_offset;
    bool incomplete;            /* libvirt Part or mapram PART */
    struct mr_libvirt_header libvirt;       /* kind == LIBVIRT */
    struct mr_file_header mapram;           /* kind == MAPRAM */
    char prefix_preview[40];    /* kind == PROBED: printable start of file */
};

const char *mr_container_name(enum mr_container kind);

/* ---- the model of a walked file ---- */

#define MR_WALK_MAX_BLOCKS      256
#define MR_WALK_MAX_PROBLEMS    16
#define MR_WALK_MAX_LIVE        64      /* START sections (live handlers) */
#define MR_WALK_MAX_SECTIONS    1024    /* listed one by one; then counted */
#define MR_WALK_MAX_COMMANDS    64      /* listed one by one; all counted */
/* Legacy streams: all blocks' final-state maps together (512 GiB of RAM);
 * blocks past it get counts without pages_present. */
#define MR_WALK_LEGACY_MAP_BYTES (16ULL << 20)

#define MR_WALK_SECTION_TYPES   5       /* section type bytes 0x00-0x04 */
#define MR_WALK_CMD_KINDS       12      /* MIG_CMD_* numbers 0-11 */
struct mr_walk_internal;

struct mr_walk_section {
    uint8_t type;               /* QEMU_VM_SECTION_* */
    uint32_t section_id;
    char idstr[MR_STREAM_NAME_MAX];     /* PART/END: from their START */
    uint32_t instance_id;
    uint32_t version_id;
    uint64_t start;             /* type byte */
    uint64_t end;               /* just after the footer */
};

struct mr_walk_command {
    uint64_t offset;
    uint16_t cmd;
    uint16_t len;
};

struct mr_walk_block {
    struct mr_ram_block_entry entry;    /* name, length, mapped-ram header */
    uint64_t num_pages;
    uint64_t bitmap_size;       /* mapped-ram: bytes of bitmap */
    uint64_t pages_present;     /* mapped-ram: bits set; legacy: last
                                 * record of the page is PAGE */
    uint64_t pages_absent;
    uint64_t bits_beyond;       /* mapped-ram: set bits past num_pages */
    int64_t allocated_bytes;    /* of the pages region; -1 = not measured */
    /* legacy streams */
    uint64_t page_records;
    uint64_t zero_records;
    uint8_t *final_map;         /* bit set: the page's last record is PAGE;
                                 * NULL: not tracked (past the budget) */
    bool present_known;         /* pages_present/absent are exact (always
                                 * for mapped-ram) */
};

/* Sections past the listed ones: counts per type byte and bytes. */
struct mr_walk_unlisted {
    uint64_t count;
    uint64_t by_type[MR_WALK_SECTION_TYPES];   /* by type byte */
    uint64_t bytes;
};

struct mr_walk {
    struct mr_location loc;
    uint64_t file_size;
    uint32_t stream_version;
    bool have_config;
    struct mr_stream_config config;
    bool mapped_ram;

    struct mr_walk_section *sections;   /* the first MR_WALK_MAX_SECTIONS */
    size_t nr_sections, cap_sections;
    struct mr_walk_unlisted unlisted;   /* the sections after them */
    struct mr_walk_section live[MR_WALK_MAX_LIVE];  /* every START */
    size_t nr_live;
    struct mr_walk_command *commands;   /* the first MR_WALK_MAX_COMMANDS */
    size_t nr_commands, cap_commands;
    uint64_t command_counts[MR_WALK_CMD_KINDS]; /* all, per number */
    uint64_t legacy_map_bytes;          /* sum of the final_map sizes */

    bool have_ram;
    uint32_t ram_section_id;
    uint64_t ram_total_bytes;
    struct mr_walk_block *blocks;
    size_t nr_blocks;

    bool ram_complete;          /* the END section of 'ram' was read: all
                                 * RAM data (and bitmaps) are final */
    bool eof_seen;
    uint64_t eof_offset;
    bool vmdesc_present;
    uint64_t vmdesc_offset;     /* of the JSON text */
    uint32_t vmdesc_len;
    uint64_t vmdesc_devices;    /* entries of its "devices" list */
    uint64_t stream_end;        /* after the last byte read */
    bool have_cksum;            /* mapram's checksum trailer (cksum.h) */
    struct mr_cksum cksum;
    uint64_t cksum_offset;      /* where the trailer starts */
    bool unfinished_trailer;    /* the bytes after the stream start with
                                 * the trailer's magic but no footer ends
                                 * the file: an interrupted seal, treated
                                 * as no trailer (docs/seal.md) */
    bool complete;              /* walked all the way to the end */

    char problems[MR_WALK_MAX_PROBLEMS][MR_ERROR_MSG_MAX];
    size_t nr_problems;         /* non-fatal findings */

    struct mr_walk_internal *in;        /* the library's own state */
};

/*
 * Walk the save file open on `fd` (read-only; the caller keeps the
 * descriptor and must not close it before mr_walk_free).  stream_offset
 * < 0 locates the stream; otherwise it starts there.  Returns 0 when the
 * whole file was read and is sound, else a negative code with one message
 * in `err`; either way `w` holds what was read (a broken file can still be
 * shown) and must be released with mr_walk_free().
 */
int mr_image_walk(int fd, int64_t stream_offset, struct mr_walk *w,
                  struct mr_error *err);
void mr_walk_free(struct mr_walk *w);

/* Index of the block named `idstr`, or -1. */
int mr_walk_find_block(const struct mr_walk *w, const char *idstr);

/* Measure physically allocated bytes of each mapped-ram pages region with
 * SEEK_DATA/SEEK_HOLE (file systems without it leave -1). */
void mr_walk_measure_allocation(struct mr_walk *w, int fd);

/* ---- extract ---- */

/* Where extracted memory goes. */
struct mr_sink {
    /* Write len bytes at block-relative offset off; 0 or -errno. */
    int (*write)(void *opaque, const void *buf, size_t len, uint64_t off,
                 struct mr_error *err);
    void *opaque;
};

/*
 * Write block `block` of the walked file as a raw image of used_length
 * bytes: only present pages are written (a sink that starts as a hole of
 * used_length bytes ends up sparse where pages are absent); mapped-ram by
 * bitmap runs in large reads, legacy from each page's final record.
 */
int mr_image_extract(int fd, const struct mr_walk *w, size_t block,
                     const struct mr_sink *sink, struct mr_error *err);

/*
 * A file name for a block: leading '/' and '.' are dropped, then '/' and
 * anything outside [A-Za-z0-9._@+-] become '_', and ".img" is appended
 * ("/rom@etc/acpi/tables" -> "rom@etc_acpi_tables.img"; an empty result
 * becomes "_.img").  Never contains '/', never starts with '.'.  `out`
 * holds 256 + 5 bytes.
 */
void mr_extract_file_name(const char *idstr, char out[261]);

/* ---- verify ---- */

struct mr_verify_report {
    bool checksums;             /* the file has a trailer */
    bool trailer_announced;     /* VMDESC says a trailer must follow */
    uint64_t blocks;
    uint64_t extents;           /* verified */
    uint64_t data_bytes;        /* present page bytes read */
};

/*
 * Check the walked file: layout and bitmap bounds of any mapped-ram file
 * and, when mapram's checksum trailer is there, every extent's CRC32C
 * recomputed as a loader reads it.  0 when sound; else the first problem
 * (a bad extent: "checksum mismatch in RAM block B extent N ...").
 */
int mr_image_verify(int fd, const struct mr_walk *w,
                    struct mr_verify_report *rep, struct mr_error *err);

/* ---- seal ---- */

struct mr_seal_report {
    uint64_t blocks;
    uint64_t extents;           /* checksummed */
    uint64_t data_bytes;        /* present page bytes read */
    uint64_t trailer_offset;    /* = where the stream ends */
    uint64_t trailer_len;       /* footer excluded */
    bool replaced_unfinished;   /* an interrupted seal's bytes were cut */
};

/*
 * Add mapram's checksum trailer to the walked mapped-ram file open
 * read-write on `fd`: a CRC32C per 1 MiB extent of every block as a
 * loader sees it, and the stream CRC, computed from the file.  The file
 * must be complete, sound (mr_image_verify's layout checks) and have no
 * trailer yet.  Atomic: the trailer goes after the stream and is synced,
 * then the 32-byte footer that makes it visible is written and synced; a
 * file cut anywhere before that reads as unsealed.  Returns 0; -EALREADY
 * when the file already has a trailer; -ENOTSUP for a legacy stream (its
 * pages are inline: nothing to checksum by extent); -EINVAL for an
 * incomplete or unsound file; an I/O error as -errno.
 */
int mr_image_seal(int fd, const struct mr_walk *w, struct mr_seal_report *rep,
                  struct mr_error *err);

#endif
