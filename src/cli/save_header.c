/*
 * Encode, decode and validate mapram's save-file header
 * (docs/file-header.md).  Little-endian on disk regardless of the host;
 * CRC32C over the first sector with the CRC field zeroed.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "save_header.h"

#define OFF_MAGIC         0
#define OFF_VERSION       8
#define OFF_STATE         12
#define OFF_HEADER_SIZE   16
#define OFF_FLAGS         20
#define OFF_STREAM_OFFSET 24
#define OFF_STREAM_SIZE   32
#define OFF_RAM_SIZE      40
#define OFF_CREATED       48
#define OFF_CHANNELS      56
#define OFF_CRC           60
#define OFF_VM_NAME       64
#define OFF_TOOL_VERSION  128
#define OFF_VM_VERSION    160
#define OFF_META_LEN      192

uint32_t save_header_crc32c(uint32_t crc, const void *buf, size_t len_bytes)
{
    const uint8_t *p = buf;

    crc = ~crc;
    for (size_t i = 0; i < len_bytes; i++) {
        crc ^= p[i];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

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
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Copy a string into a fixed NUL-padded field, truncating if needed. */
static void put_str(uint8_t *field, size_t field_bytes, const char *s)
{
    size_t n = strnlen(s, field_bytes);

    memcpy(field, s, n);
}

static void get_str(char *dst, const uint8_t *field, size_t field_bytes)
{
    size_t n = strnlen((const char *)field, field_bytes);

    memcpy(dst, field, n);
    dst[n] = '\0';
}

void save_header_encode(struct save_header *h,
                        uint8_t sector[SAVE_HEADER_SECTOR_BYTES])
{
    memset(sector, 0, SAVE_HEADER_SECTOR_BYTES);
    memcpy(sector + OFF_MAGIC, SAVE_HEADER_MAGIC, 8);
    put_le32(sector + OFF_VERSION, h->version);
    put_le32(sector + OFF_STATE, h->state);
    put_le32(sector + OFF_HEADER_SIZE, h->header_size);
    put_le32(sector + OFF_FLAGS, h->flags);
    put_le64(sector + OFF_STREAM_OFFSET, h->stream_offset);
    put_le64(sector + OFF_STREAM_SIZE, h->stream_size);
    put_le64(sector + OFF_RAM_SIZE, h->ram_size);
    put_le64(sector + OFF_CREATED, h->created);
    put_le32(sector + OFF_CHANNELS, h->channels);
    put_str(sector + OFF_VM_NAME, 64, h->vm_name);
    put_str(sector + OFF_TOOL_VERSION, 32, h->tool_version);
    put_str(sector + OFF_VM_VERSION, 32, h->vm_version);
    put_le32(sector + OFF_META_LEN, h->meta_len);
    h->header_crc = save_header_crc32c(0, sector, SAVE_HEADER_SECTOR_BYTES);
    put_le32(sector + OFF_CRC, h->header_crc);
}

static int check_sizes(const struct save_header *h, struct mr_error *err)
{
    if (h->header_size < SAVE_HEADER_SECTOR_BYTES ||
        h->header_size % SAVE_HEADER_SECTOR_BYTES)
        return mr_error_set(err, -EINVAL,
                            "bad mapram header: header_size %" PRIu32
                            " is not a multiple of 512 of at least 512",
                            h->header_size);
    if (h->stream_offset < h->header_size)
        return mr_error_set(err, -EINVAL,
                            "bad mapram header: stream_offset %" PRIu64
                            " lies inside the %" PRIu32 "-byte header",
                            h->stream_offset, h->header_size);
    if (h->meta_len > h->header_size - SAVE_HEADER_SECTOR_BYTES)
        return mr_error_set(err, -EINVAL,
                            "bad mapram header: meta_len %" PRIu32
                            " exceeds the %" PRIu32 " bytes after the first sector",
                            h->meta_len,
                            h->header_size - SAVE_HEADER_SECTOR_BYTES);
    return 0;
}

int save_header_decode(const uint8_t sector[SAVE_HEADER_SECTOR_BYTES],
                       struct save_header *h, struct mr_error *err)
{
    uint8_t copy[SAVE_HEADER_SECTOR_BYTES];
    uint32_t crc;

    memset(h, 0, sizeof(*h));
    if (memcmp(sector + OFF_MAGIC, SAVE_HEADER_MAGIC, 8))
        return mr_error_set(err, -EINVAL,
                            "not a mapram save file (no MAPRAMSV header)");
    h->version = get_le32(sector + OFF_VERSION);
    if (h->version != SAVE_HEADER_VERSION)
        return mr_error_set(err, -EINVAL,
                            "unsupported mapram header version %" PRIu32
                            " (expected %u)", h->version, SAVE_HEADER_VERSION);
    h->header_crc = get_le32(sector + OFF_CRC);
    memcpy(copy, sector, sizeof(copy));
    memset(copy + OFF_CRC, 0, 4);
    crc = save_header_crc32c(0, copy, sizeof(copy));
    if (crc != h->header_crc)
        return mr_error_set(err, -EINVAL,
                            "mapram header checksum mismatch: expected 0x%08" PRIx32
                            ", found 0x%08" PRIx32, crc, h->header_crc);
    h->state = get_le32(sector + OFF_STATE);
    h->header_size = get_le32(sector + OFF_HEADER_SIZE);
    h->flags = get_le32(sector + OFF_FLAGS);
    h->stream_offset = get_le64(sector + OFF_STREAM_OFFSET);
    h->stream_size = get_le64(sector + OFF_STREAM_SIZE);
    h->ram_size = get_le64(sector + OFF_RAM_SIZE);
    h->created = get_le64(sector + OFF_CREATED);
    h->channels = get_le32(sector + OFF_CHANNELS);
    get_str(h->vm_name, sector + OFF_VM_NAME, 64);
    get_str(h->tool_version, sector + OFF_TOOL_VERSION, 32);
    get_str(h->vm_version, sector + OFF_VM_VERSION, 32);
    h->meta_len = get_le32(sector + OFF_META_LEN);
    return check_sizes(h, err);
}

int save_header_check_restorable(const struct save_header *h,
                                 uint64_t file_size_bytes,
                                 struct mr_error *err)
{
    uint64_t need;

    if (h->state != SAVE_HEADER_STATE_DONE)
        return mr_error_set(err, -EINVAL,
                            "incomplete save file: the save did not finish");
    if (h->stream_size == 0 ||
        __builtin_add_overflow(h->stream_offset, h->stream_size, &need))
        return mr_error_set(err, -EINVAL,
                            "bad mapram header: stream_size %" PRIu64
                            " at offset %" PRIu64,
                            h->stream_size, h->stream_offset);
    if (file_size_bytes < need)
        return mr_error_set(err, -EINVAL,
                            "truncated save file: expected at least %" PRIu64
                            " bytes, found %" PRIu64, need, file_size_bytes);
    return 0;
}
