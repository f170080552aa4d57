/*
 * QEMU 10's multifd socket wire format without compression
 * (docs/multifd.md, "Over sockets"): the 64-byte channel
 * handshake and the RAM packet header, encoded and decoded with every
 * check the receiver needs.  Pure: no I/O.
 */
#ifndef MAPRAM_FORMAT_MULTIFD_WIRE_H
#define MAPRAM_FORMAT_MULTIFD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "mapram/error.h"

#define MR_MFD_MAGIC 0x11223344u
#define MR_MFD_VERSION 1u
#define MR_MFD_HANDSHAKE_SIZE 64
#define MR_MFD_PAGE_SIZE 4096u
#define MR_MFD_PACKET_PAGES 128u  /* 512 KiB / page size, fixed in 10.0 */
#define MR_MFD_COMMON_SIZE 12     /* magic, version, flags */
#define MR_MFD_HEADER_SIZE (320 + 8 * MR_MFD_PACKET_PAGES) /* 1344 */
#define MR_MFD_IDSTR_SIZE 256
#define MR_MFD_UUID_SIZE 16

#define MR_MFD_FLAG_SYNC 0x01u
#define MR_MFD_FLAG_COMPRESSION 0x3eu  /* bits 1..5: zlib, zstd, qpl, ... */
#define MR_MFD_FLAG_DEVICE_STATE 0x40u

/* The first 64 bytes of every multifd channel. */
struct mr_mfd_handshake {
    uint8_t uuid[MR_MFD_UUID_SIZE];
    uint8_t id;
};

/* A RAM packet header.  offsets[0 .. normal_pages) have data following,
 * offsets[normal_pages .. normal_pages + zero_pages) are zero pages. */
struct mr_mfd_packet {
    uint32_t flags;
    uint32_t pages_alloc;
    uint32_t normal_pages;
    uint32_t next_packet_size;
    uint64_t packet_num;
    uint32_t zero_pages;
    char block[MR_MFD_IDSTR_SIZE];  /* always NUL-terminated after decode */
    uint64_t offsets[MR_MFD_PACKET_PAGES];
};

/* The receiver's RAM blocks, by which packets are validated. */
struct mr_mfd_block {
    const char *name;
    uint64_t used_length;
};

struct mr_mfd_blocks {
    const struct mr_mfd_block *v;
    size_t n;
};

void mr_mfd_handshake_encode(const struct mr_mfd_handshake *h,
                             uint8_t out[MR_MFD_HANDSHAKE_SIZE]);

/* Checks magic, version, that the uuid equals `uuid` and that the id is
 * below `nchannels` (stricter than QEMU's `id > N`, see docs). */
int mr_mfd_handshake_decode(const uint8_t *in, size_t len,
                            const uint8_t uuid[MR_MFD_UUID_SIZE],
                            unsigned nchannels, struct mr_mfd_handshake *out,
                            struct mr_error *err);

/* Fills a SYNC packet (no pages, no block). */
void mr_mfd_packet_sync(struct mr_mfd_packet *p, uint64_t packet_num);

/* Writes the full MR_MFD_HEADER_SIZE header; unused offset slots are 0.
 * The caller keeps normal_pages + zero_pages <= MR_MFD_PACKET_PAGES. */
void mr_mfd_packet_encode(const struct mr_mfd_packet *p,
                          uint8_t out[MR_MFD_HEADER_SIZE]);

/* Checks only the 12-byte common part: magic and version. */
int mr_mfd_common_check(const uint8_t *in, size_t len, uint32_t *flags,
                        struct mr_error *err);

/* Decodes and validates a full header: magic, version, flags (no
 * compression, no device state), page counts, data size, block name
 * against `blocks` and every offset inside that block and page aligned.
 * *block_idx is the matched block, or SIZE_MAX for a packet without
 * pages. */
int mr_mfd_packet_decode(const uint8_t *in, size_t len,
                         const struct mr_mfd_blocks *blocks,
                         struct mr_mfd_packet *out, size_t *block_idx,
                         struct mr_error *err);

#endif
