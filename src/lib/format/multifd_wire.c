/*
 * The multifd channel handshake and RAM packet header codec
 * (docs/multifd.md, "Over sockets"), with QEMU 10's receive-side
 * messages where QEMU has one and mapram's stricter checks otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "format/multifd_wire.h"

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void uuid_str(const uint8_t *u, char out[37])
{
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5],
             u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

void mr_mfd_handshake_encode(const struct mr_mfd_handshake *h,
                             uint8_t out[MR_MFD_HANDSHAKE_SIZE])
{
    memset(out, 0, MR_MFD_HANDSHAKE_SIZE);
    put32(out, MR_MFD_MAGIC);
    put32(out + 4, MR_MFD_VERSION);
    memcpy(out + 8, h->uuid, MR_MFD_UUID_SIZE);
    out[24] = h->id;
}

int mr_mfd_handshake_decode(const uint8_t *in, size_t len,
                            const uint8_t uuid[MR_MFD_UUID_SIZE],
                            unsigned nchannels, struct mr_mfd_handshake *out,
                            struct mr_error *err)
{
    uint32_t magic, version;
    char a[37], b[37];

    if (len < MR_MFD_HANDSHAKE_SIZE)
        return mr_error_set(err, -EIO, "multifd: channel closed before its "
                            "initial packet (%zu of %d bytes)", len,
                            MR_MFD_HANDSHAKE_SIZE);
    magic = get32(in);
    version = get32(in + 4);
    if (magic != MR_MFD_MAGIC)
        return mr_error_set(err, -EINVAL, "multifd: received packet magic %x "
                            "expected %x", magic, MR_MFD_MAGIC);
    if (version != MR_MFD_VERSION)
        return mr_error_set(err, -EINVAL, "multifd: received packet version "
                            "%u expected %u", version, MR_MFD_VERSION);
    memcpy(out->uuid, in + 8, MR_MFD_UUID_SIZE);
    out->id = in[24];
    if (memcmp(out->uuid, uuid, MR_MFD_UUID_SIZE) != 0) {
        uuid_str(out->uuid, a);
        uuid_str(uuid, b);
        return mr_error_set(err, -EINVAL, "multifd: received uuid '%s' and "
                            "expected uuid '%s' for channel %u", a, b,
                            out->id);
    }
    if (out->id >= nchannels)
        return mr_error_set(err, -EINVAL, "multifd: received channel id %u "
                            "is greater than number of channels %u",
                            out->id, nchannels);
    return 0;
}

void mr_mfd_packet_sync(struct mr_mfd_packet *p, uint64_t packet_num)
{
    memset(p, 0, sizeof(*p));
    p->flags = MR_MFD_FLAG_SYNC;
    p->packet_num = packet_num;
}

void mr_mfd_packet_encode(const struct mr_mfd_packet *p,
                          uint8_t out[MR_MFD_HEADER_SIZE])
{
    uint32_t n = p->normal_pages + p->zero_pages;

    memset(out, 0, MR_MFD_HEADER_SIZE);
    put32(out, MR_MFD_MAGIC);
    put32(out + 4, MR_MFD_VERSION);
    put32(out + 8, p->flags);
    put32(out + 12, p->pages_alloc);
    put32(out + 16, p->normal_pages);
    put32(out + 20, p->next_packet_size);
    put64(out + 24, p->packet_num);
    put32(out + 32, p->zero_pages);
    memcpy(out + 64, p->block, strnlen(p->block, MR_MFD_IDSTR_SIZE - 1));
    for (uint32_t i = 0; i < n && i < MR_MFD_PACKET_PAGES; i++)
        put64(out + 320 + 8 * i, p->offsets[i]);
}

int mr_mfd_common_check(const uint8_t *in, size_t len, uint32_t *flags,
                        struct mr_error *err)
{
    uint32_t magic, version;

    if (len < MR_MFD_COMMON_SIZE)
        return mr_error_set(err, -EIO, "multifd: unexpected EOF in packet "
                            "header");
    magic = get32(in);
    version = get32(in + 4);
    if (magic != MR_MFD_MAGIC)
        return mr_error_set(err, -EINVAL, "multifd: received packet magic %x, "
                            "expected %x", magic, MR_MFD_MAGIC);
    if (version != MR_MFD_VERSION)
        return mr_error_set(err, -EINVAL, "multifd: received packet version "
                            "%u, expected %u", version, MR_MFD_VERSION);
    *flags = get32(in + 8);
    return 0;
}

static int check_counts(const struct mr_mfd_packet *p, struct mr_error *err)
{
    if (p->flags & MR_MFD_FLAG_DEVICE_STATE)
        return mr_error_set(err, -ENOTSUP, "multifd: device state packets "
                            "are not supported (flags 0x%x)", p->flags);
    if (p->pages_alloc > MR_MFD_PACKET_PAGES)
        return mr_error_set(err, -EINVAL, "multifd: received packet with %u "
                            "pages, expected %u", p->pages_alloc,
                            MR_MFD_PACKET_PAGES);
    if (p->normal_pages > p->pages_alloc)
        return mr_error_set(err, -EINVAL, "multifd: received packet with %u "
                            "non-zero pages, which exceeds maximum expected "
                            "pages %u", p->normal_pages, p->pages_alloc);
    if (p->zero_pages > p->pages_alloc - p->normal_pages)
        return mr_error_set(err, -EINVAL, "multifd: received packet with %u "
                            "zero pages, expected maximum %u", p->zero_pages,
                            p->pages_alloc - p->normal_pages);
    if ((uint64_t)p->next_packet_size !=
        (uint64_t)p->normal_pages * MR_MFD_PAGE_SIZE)
        return mr_error_set(err, -EINVAL, "multifd: packet data size %u does "
                            "not match %u normal pages", p->next_packet_size,
                            p->normal_pages);
    return 0;
}

static int find_block(const struct mr_mfd_packet *p,
                      const struct mr_mfd_blocks *blocks, size_t *idx,
                      struct mr_error *err)
{
    for (size_t i = 0; i < blocks->n; i++) {
        if (strcmp(blocks->v[i].name, p->block) == 0) {
            *idx = i;
            return 0;
        }
    }
    return mr_error_set(err, -EINVAL, "multifd: unknown ram block %s",
                        p->block);
}

static int check_offsets(const struct mr_mfd_packet *p, uint64_t used,
                         struct mr_error *err)
{
    uint32_t n = p->normal_pages + p->zero_pages;

    for (uint32_t i = 0; i < n; i++) {
        uint64_t off = p->offsets[i];

        if (used < MR_MFD_PAGE_SIZE || off > used - MR_MFD_PAGE_SIZE)
            return mr_error_set(err, -EINVAL, "multifd: offset too long "
                                "%" PRIu64 " (max %" PRIu64 ")", off, used);
        if (off % MR_MFD_PAGE_SIZE)
            return mr_error_set(err, -EINVAL, "multifd: offset %" PRIu64
                                " in block %s is not page aligned", off,
                                p->block);
    }
    return 0;
}

static void decode_fields(const uint8_t *in, struct mr_mfd_packet *out)
{
    out->flags = get32(in + 8);
    out->pages_alloc = get32(in + 12);
    out->normal_pages = get32(in + 16);
    out->next_packet_size = get32(in + 20);
    out->packet_num = get64(in + 24);
    out->zero_pages = get32(in + 32);
    memcpy(out->block, in + 64, MR_MFD_IDSTR_SIZE);
    out->block[MR_MFD_IDSTR_SIZE - 1] = '\0';
    for (uint32_t i = 0; i < MR_MFD_PACKET_PAGES; i++)
        out->offsets[i] = get64(in + 320 + 8 * i);
}

int mr_mfd_packet_decode(const uint8_t *in, size_t len,
                         const struct mr_mfd_blocks *blocks,
                         struct mr_mfd_packet *out, size_t *block_idx,
                         struct mr_error *err)
{
    uint32_t flags;
    int rc;

    *block_idx = SIZE_MAX;
    rc = mr_mfd_common_check(in, len, &flags, err);
    if (rc)
        return rc;
    if (len < MR_MFD_HEADER_SIZE)
        return mr_error_set(err, -EIO, "multifd: unexpected EOF after packet "
                            "header");
    decode_fields(in, out);
    rc = check_counts(out, err);
    if (rc || out->normal_pages + out->zero_pages == 0)
        return rc;
    rc = find_block(out, blocks, block_idx, err);
    if (!rc)
        rc = check_offsets(out, blocks->v[*block_idx].used_length, err);
    if (!rc && (out->flags & MR_MFD_FLAG_COMPRESSION))
        rc = mr_error_set(err, -EINVAL, "multifd: flags received %x flags "
                          "expected 0", out->flags & MR_MFD_FLAG_COMPRESSION);
    return rc;
}
