/*
 * mapram's own save-file header (docs/file-header.md): a 512-byte sector
 * at offset 0, then optional JSON metadata, then the VM's stream from
 * stream_offset on.  Pure encode/decode/validate so `save` and `restore`
 * agree on every byte and the rules are unit-tested without files.
 */
#ifndef MAPRAM_CLI_SAVE_HEADER_H
#define MAPRAM_CLI_SAVE_HEADER_H

#include <stdint.h>

#include "mapram/error.h"

#define SAVE_HEADER_MAGIC        "MAPRAMSV"
#define SAVE_HEADER_VERSION      1u
#define SAVE_HEADER_STATE_PART   0x54524150u /* "PART" little-endian */
#define SAVE_HEADER_STATE_DONE   0x454e4f44u /* "DONE" little-endian */
#define SAVE_HEADER_SECTOR_BYTES 512u
#define SAVE_HEADER_DEFAULT_BYTES 4096u

#define SAVE_HEADER_F_WAS_RUNNING (1u << 0)
#define SAVE_HEADER_F_LIVE        (1u << 1)
#define SAVE_HEADER_F_DIRECT_IO   (1u << 2)
#define SAVE_HEADER_F_MULTIFD     (1u << 3)
#define SAVE_HEADER_F_MAPPED_RAM  (1u << 4)
#define SAVE_HEADER_F_KNOWN       0x1fu

struct save_header {
    uint32_t version;
    uint32_t state;
    uint32_t header_size;
    uint32_t flags;
    uint64_t stream_offset;
    uint64_t stream_size;
    uint64_t ram_size;
    uint64_t created;
    uint32_t channels;
    uint32_t header_crc;       /* filled by encode, checked by decode */
    char vm_name[65];          /* NUL-terminated copies of the fields */
    char tool_version[33];
    char vm_version[33];
    uint32_t meta_len;
};

uint32_t save_header_crc32c(uint32_t crc, const void *buf, size_t len_bytes);

/* Fill the first 512 bytes of `sector` (zeroed first) and the CRC. */
void save_header_encode(struct save_header *h,
                        uint8_t sector[SAVE_HEADER_SECTOR_BYTES]);

/* Parse and check magic, version, CRC, sizes; not the completeness. */
int save_header_decode(const uint8_t sector[SAVE_HEADER_SECTOR_BYTES],
                       struct save_header *h, struct mr_error *err);

/* A restore's checks: complete, and the file holds the whole stream. */
int save_header_check_restorable(const struct save_header *h,
                                 uint64_t file_size_bytes,
                                 struct mr_error *err);

#endif
