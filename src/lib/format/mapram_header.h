/*
 * Codec for mapram's own save-file header (docs/file-header.md): a
 * little-endian 512-byte sector at offset 0, protected by CRC32C, in front
 * of the QEMU stream.  Pure: encode into / decode from a buffer; the
 * callers do the I/O.  `mapram save` writes it, the reader checks it.
 */
#ifndef MAPRAM_FORMAT_MAPRAM_HEADER_H
#define MAPRAM_FORMAT_MAPRAM_HEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "mapram/error.h"

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

/* For a complete file: the file must hold stream_offset + stream_size. */
int mr_file_header_check_size(const struct mr_file_header *h,
                              uint64_t file_size, struct mr_error *err);

#endif
