/*
 * mapram's save-file header codec (mapram_header.h).  Explicit
 * little-endian stores keep the layout independent of the host and of
 * struct padding.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "format/mapram_header.h"
#include "mapram/crc32c.h"

#define OFF_MAGIC           0
#define OFF_VERSION         8
#define OFF_STATE           12
#define OFF_HEADER_SIZE     16
#define OFF_FLAGS           20
#define OFF_STREAM_OFFSET   24
#define OFF_STREAM_SIZE     32
#define OFF_RAM_SIZE        40
#define OFF_CREATED         48
#define OFF_CHANNELS        56
#define OFF_CRC             60
#define OFF_VM_NAME         64
#define OFF_TOOL_VERSION    128
#define OFF_VM_VERSION      160
#define OFF_META_LEN        192
#define OFF_LAUNCH_LEN      196
#define OFF_LAUNCH_CRC      200

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void put_text(uint8_t *p, size_t field, const char *s)
{
    size_t n = strnlen(s, field);

    memcpy(p, s, n);
}

static void get_text(char *dst, const uint8_t *p, size_t field)
{
    size_t n = strnlen((const char *)p, field);

    memcpy(dst, p, n);
    dst[n] = '\0';
}

void mr_file_header_encode(struct mr_file_header *h,
                           uint8_t out[MR_FILE_HEADER_SECTOR])
{
    memset(out, 0, MR_FILE_HEADER_SECTOR);
    memcpy(out + OFF_MAGIC, MR_FILE_HEADER_MAGIC, 8);
    put_le32(out + OFF_VERSION, h->version);
    put_le32(out + OFF_STATE, h->state);
    put_le32(out + OFF_HEADER_SIZE, h->header_size);
    put_le32(out + OFF_FLAGS, h->flags);
    put_le64(out + OFF_STREAM_OFFSET, h->stream_offset);
    put_le64(out + OFF_STREAM_SIZE, h->stream_size);
    put_le64(out + OFF_RAM_SIZE, h->ram_size);
    put_le64(out + OFF_CREATED, h->created);
    put_le32(out + OFF_CHANNELS, h->channels);
    put_text(out + OFF_VM_NAME, 64, h->vm_name);
    put_text(out + OFF_TOOL_VERSION, 32, h->tool_version);
    put_text(out + OFF_VM_VERSION, 32, h->vm_version);
    put_le32(out + OFF_META_LEN, h->meta_len);
    put_le32(out + OFF_LAUNCH_LEN, h->launch_len);
    put_le32(out + OFF_LAUNCH_CRC, h->launch_crc);
    h->header_crc = mr_crc32c(0, out, MR_FILE_HEADER_SECTOR);
    put_le32(out + OFF_CRC, h->header_crc);
}

bool mr_file_header_probe(const uint8_t *buf, uint64_t len)
{
    return len >= 8 && !memcmp(buf, MR_FILE_HEADER_MAGIC, 8);
}

static int check_fields(const struct mr_file_header *h, struct mr_error *err)
{
    if (h->version == 0 || h->version > MR_FILE_HEADER_VERSION)
        return mr_error_set(err, -ENOTSUP, "expected mapram header version 1 "
                            "at offset 0x8, found %u", h->version);
    if (h->state != MR_FILE_STATE_PART && h->state != MR_FILE_STATE_DONE)
        return mr_error_set(err, -EINVAL, "expected mapram header state PART "
                            "or DONE at offset 0xc, found 0x%08x", h->state);
    if (h->header_size < 512 || h->header_size % 512)
        return mr_error_set(err, -EINVAL, "expected a mapram header size that "
                            "is a multiple of 512 at offset 0x10, found %u",
                            h->header_size);
    if (h->flags & ~MR_FILE_FLAGS_KNOWN)
        return mr_error_set(err, -EINVAL, "expected mapram header flags within "
                            "0x1f at offset 0x14, found 0x%x", h->flags);
    if (h->stream_offset < h->header_size)
        return mr_error_set(err, -EINVAL, "expected a stream offset of at "
                            "least the header size 0x%x at offset 0x18, found "
                            "0x%" PRIx64, h->header_size, h->stream_offset);
    if (h->meta_len > h->header_size - 512)
        return mr_error_set(err, -EINVAL, "expected metadata of at most %u "
                            "bytes at offset 0xc0, found %u",
                            h->header_size - 512, h->meta_len);
    if (h->launch_len > h->header_size - 512 - h->meta_len)
        return mr_error_set(err, -EINVAL, "expected launch metadata of at "
                            "most %u bytes at offset 0xc4, found %u",
                            h->header_size - 512 - h->meta_len, h->launch_len);
    return 0;
}

int mr_file_header_decode(const uint8_t in[MR_FILE_HEADER_SECTOR],
                          struct mr_file_header *h, struct mr_error *err)
{
    uint8_t copy[MR_FILE_HEADER_SECTOR];
    uint32_t crc;

    memset(h, 0, sizeof(*h));
    if (!mr_file_header_probe(in, MR_FILE_HEADER_SECTOR))
        return mr_error_set(err, -EINVAL, "expected mapram header magic "
                            "\"MAPRAMSV\" at offset 0x0, found something else");
    h->version = get_le32(in + OFF_VERSION);
    h->state = get_le32(in + OFF_STATE);
    h->header_size = get_le32(in + OFF_HEADER_SIZE);
    h->flags = get_le32(in + OFF_FLAGS);
    h->stream_offset = get_le64(in + OFF_STREAM_OFFSET);
    h->stream_size = get_le64(in + OFF_STREAM_SIZE);
    h->ram_size = get_le64(in + OFF_RAM_SIZE);
    h->created = get_le64(in + OFF_CREATED);
    h->channels = get_le32(in + OFF_CHANNELS);
    h->header_crc = get_le32(in + OFF_CRC);
    get_text(h->vm_name, in + OFF_VM_NAME, 64);
    get_text(h->tool_version, in + OFF_TOOL_VERSION, 32);
    get_text(h->vm_version, in + OFF_VM_VERSION, 32);
    h->meta_len = get_le32(in + OFF_META_LEN);
    h->launch_len = get_le32(in + OFF_LAUNCH_LEN);
    h->launch_crc = get_le32(in + OFF_LAUNCH_CRC);
    memcpy(copy, in, sizeof(copy));
    memset(copy + OFF_CRC, 0, 4);
    crc = mr_crc32c(0, copy, sizeof(copy));
    if (crc != h->header_crc)
        return mr_error_set(err, -EINVAL, "expected mapram header CRC32C "
                            "0x%08x at offset 0x3c, found 0x%08x", crc,
                            h->header_crc);
    return check_fields(h, err);
}

int mr_file_header_check_size(const struct mr_file_header *h,
                              uint64_t file_size, struct mr_error *err)
{
    if (!mr_file_header_is_complete(h))
        return 0;
    if (h->stream_offset > file_size ||
        h->stream_size > file_size - h->stream_offset)
        return mr_error_set(err, -EIO, "truncated: expected the stream to end "
                            "at 0x%" PRIx64 " (mapram header), found the end "
                            "of the file at 0x%" PRIx64,
                            h->stream_offset + h->stream_size, file_size);
    return 0;
}
