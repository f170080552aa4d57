/*
 * The save file's data as libmapram reads and writes it: the QEMU stream's
 * configuration and RAM block entries, mapram's checksum trailer and
 * mapram's own file header with its codec (docs/stream-format.md,
 * docs/file-format.md, docs/file-header.md).  Plain data, no I/O.
 */
#ifndef MAPRAM_FORMAT_H
#define MAPRAM_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mapram/error.h"

/* ---- the QEMU stream ---- */

#define MR_STREAM_NAME_MAX      256     /* counted string + NUL */
#define MR_STREAM_MAX_CAPS      16
#define MR_STREAM_PAGE_SIZE     4096ULL /* the target page size */

/* Section type bytes (docs/stream-format.md, "Type bytes"). */
#define MR_SECTION_START        0x01
#define MR_SECTION_PART         0x02
#define MR_SECTION_END          0x03
#define MR_SECTION_FULL         0x04

/* Name of a command number ("SWITCHOVER_START"), or NULL. */
const char *mr_stream_command_name(uint16_t cmd);
/* Name of a section type byte ("START"), or NULL. */
const char *mr_stream_type_name(uint8_t type);

/* The CONFIGURATION section: machine type, page bits, capabilities. */
struct mr_stream_config {
    char machine[MR_STREAM_NAME_MAX];
    bool has_page_bits;
    uint32_t target_page_bits;
    bool has_caps;
    uint32_t nr_caps;
    char caps[MR_STREAM_MAX_CAPS][MR_STREAM_NAME_MAX];
    bool has_uuid;
    uint8_t uuid[16];
    /* Derived from caps: the two validated capabilities. */
    bool mapped_ram;
    bool x_ignore_shared;
};

/* A RAM block as the stream describes it (mapped-ram adds the header). */
struct mr_ram_block_entry {
    uint64_t offset;            /* of the counted idstr */
    char idstr[MR_STREAM_NAME_MAX];
    uint64_t used_length;
    bool has_gpa;
    uint64_t gpa;
    /* mapped-ram only (docs/stream-format.md, "Mapped-ram block header"): */
    uint64_t header_offset;     /* absolute offset H of the 28-byte header */
    uint32_t mr_version;
    uint64_t page_size;
    uint64_t bitmap_offset;
    uint64_t pages_offset;
};

/* ---- mapram's checksum trailer (docs/file-format.md) ---- */

#define MR_CKSUM_NAME_MAX       255
#define MR_CKSUM_EXTENT_BYTES   (1ULL << 20)    /* one CRC32C per extent */

struct mr_cksum_block {
    char name[MR_CKSUM_NAME_MAX + 1];
    uint64_t page_size;
    uint64_t used_length;
    uint64_t pages_offset;
    uint64_t extent_pages;      /* pages per extent (>= 1) */
    uint64_t nr_extents;
    uint32_t *crc;              /* nr_extents values */
};

#define MR_CKSUM_F_STREAM_CRC   1u  /* stream_crc is valid (mapped-ram) */


struct mr_cksum {
    uint32_t flags;
    uint64_t stream_offset;     /* where the QEMU stream starts */
    uint32_t stream_crc;        /* over the stream minus the pages areas */
    uint32_t nblocks;
    struct mr_cksum_block *blocks;
};

/* ---- mapram's file header (docs/file-header.md) ---- */

#define MR_FILE_HEADER_MAGIC        "MAPRAMSV"
#define MR_FILE_HEADER_VERSION      1
#define MR_FILE_HEADER_SECTOR       512     /* bytes covered by the CRC */
#define MR_FILE_HEADER_SIZE_DEFAULT 4096
#define MR_FILE_STATE_PART          0x54524150U     /* "PART" */
#define MR_FILE_STATE_DONE          0x454e4f44U     /* "DONE" */

#define MR_FILE_FLAG_WAS_RUNNING    (1U << 0)
#define MR_FILE_FLAG_LIVE           (1U << 1)
#define MR_FILE_FLAG_DIRECT_IO      (1U << 2)
#define MR_FILE_FLAG_MULTIFD        (1U << 3)
#define MR_FILE_FLAG_MAPPED_RAM     (1U << 4)
#define MR_FILE_FLAGS_KNOWN         0x1fU

struct mr_file_header {
    uint32_t version;
    uint32_t state;             /* MR_FILE_STATE_* */
    uint32_t header_size;
    uint32_t flags;             /* MR_FILE_FLAG_* */
    uint64_t stream_offset;
    uint64_t stream_size;
    uint64_t ram_size;
    uint64_t created;           /* seconds since the epoch */
    uint32_t channels;
    uint32_t header_crc;        /* filled by encode, checked by decode */
    char vm_name[65];           /* NUL-terminated copies of the fields */
    char tool_version[33];
    char vm_version[33];
    uint32_t meta_len;
    uint32_t launch_len;        /* launch metadata after the JSON, 0: none */
    uint32_t launch_crc;        /* CRC32C of those launch_len bytes */
};

/* Fill the 512-byte sector (reserved bytes zero, CRC computed); also
 * stores the CRC in h->header_crc.  Strings longer than their field are
 * truncated. */
void mr_file_header_encode(struct mr_file_header *h,
                           uint8_t out[MR_FILE_HEADER_SECTOR]);

/* True if the buffer starts with the magic. */
bool mr_file_header_probe(const uint8_t *buf, uint64_t len);

/* Decode and check magic, version, CRC, header_size, stream_offset,
 * meta_len and flags.  State PART is not an error here (see
 * mr_file_header_is_complete). */
int mr_file_header_decode(const uint8_t in[MR_FILE_HEADER_SECTOR],
                          struct mr_file_header *h, struct mr_error *err);

static inline bool mr_file_header_is_complete(const struct mr_file_header *h)
{
    return h->state == MR_FILE_STATE_DONE;
}

/* Launch metadata lies at MR_FILE_HEADER_SECTOR + meta_len. */
static inline uint64_t mr_file_header_launch_offset(const struct mr_file_header *h)
{
    return (uint64_t)MR_FILE_HEADER_SECTOR + h->meta_len;
}

/* The launch_len bytes read from there match launch_crc. */
int mr_file_header_check_launch(const struct mr_file_header *h,
                                const uint8_t *buf, size_t len,
                                struct mr_error *err);

/* ---- launch metadata (docs/file-header.md, "Launch metadata") ----
 * How the saved VM was started: text key/value pairs, keys may repeat
 * ("argv" once per argument), order kept.  Values hold no NUL. */

#define MR_LAUNCH_MAGIC         "MRLAUNCH"
#define MR_LAUNCH_VERSION       1
#define MR_LAUNCH_KEY_MAX       64
#define MR_LAUNCH_ENTRIES_MAX   4096
#define MR_LAUNCH_BYTES_MAX     (1u << 20)

struct mr_launch_entry {
    char *key;                  /* [a-z0-9._-]{1,64} */
    char *value;
};

struct mr_launch_meta {
    size_t count;
    size_t capacity;
    struct mr_launch_entry *entries;
};

void mr_launch_meta_init(struct mr_launch_meta *m);
void mr_launch_meta_free(struct mr_launch_meta *m);
int mr_launch_meta_add(struct mr_launch_meta *m, const char *key,
                       const char *value, struct mr_error *err);
/* The first value of `key`, or NULL. */
const char *mr_launch_meta_get(const struct mr_launch_meta *m,
                               const char *key);
size_t mr_launch_meta_encoded_size(const struct mr_launch_meta *m);
/* Returns the bytes written (mr_launch_meta_encoded_size) or an error. */
int mr_launch_meta_encode(const struct mr_launch_meta *m, uint8_t *out,
                          size_t out_bytes, struct mr_error *err);
/* Parse exactly `len` bytes; on error `m` is left empty. */
int mr_launch_meta_parse(const uint8_t *buf, size_t len,
                         struct mr_launch_meta *m, struct mr_error *err);

/* For a complete file: the file must hold stream_offset + stream_size. */
int mr_file_header_check_size(const struct mr_file_header *h,
                              uint64_t file_size, struct mr_error *err);

#endif
