/*
 * Finding the start of the QEMU stream inside a save file (locate.h).
 * Containers are recognised by their magic; only when none matches does
 * the probe look for the stream at page boundaries, and it reports the
 * unknown prefix rather than silently skipping it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "image/locate.h"
#include "format/stream_defs.h"

static const uint8_t qevm_v3[8] = { 'Q', 'E', 'V', 'M', 0, 0, 0, 3 };

const char *mr_container_name(enum mr_container kind)
{
    switch (kind) {
    case MR_CONTAINER_RAW: return "raw";
    case MR_CONTAINER_EXPLICIT: return "explicit-offset";
    case MR_CONTAINER_LIBVIRT: return "libvirt";
    case MR_CONTAINER_MAPRAM: return "mapram";
    case MR_CONTAINER_PROBED: return "unknown-prefix";
    }
    return "?";
}

static uint32_t get_u32(const uint8_t *p, bool big_endian)
{
    if (big_endian)
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
               (uint32_t)p[2] << 8 | p[3];
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
           (uint32_t)p[1] << 8 | p[0];
}

const char *mr_libvirt_format_name(uint32_t format)
{
    static const char *const names[] = {
        "raw", "gzip", "bzip2", "xz", "lzop", "zstd", "sparse",
    };

    return format < sizeof(names) / sizeof(names[0]) ? names[format] : NULL;
}

/* Length of the NUL-terminated text at `off`, looking at most `max` bytes
 * (an unterminated text is `max` long). */
static int text_len(const struct mr_source *src, uint64_t off, uint64_t max,
                    uint32_t *len, struct mr_error *err)
{
    uint8_t buf[4096];
    uint64_t done = 0;

    if (off + max > src->size)
        max = off < src->size ? src->size - off : 0;
    while (done < max) {
        size_t n = max - done < sizeof(buf) ? (size_t)(max - done)
                                            : sizeof(buf);
        const uint8_t *nul;

        if (mr_source_read(src, buf, n, off + done, err) < 0)
            return mr_error_prefix(err, "libvirt data area: ");
        nul = memchr(buf, 0, n);
        if (nul) {
            *len = (uint32_t)(done + (uint64_t)(nul - buf));
            return 0;
        }
        done += n;
    }
    *len = (uint32_t)max;
    return 0;
}

/* The XML fills the data area up to the cookie (or to its end). */
static int libvirt_texts(const struct mr_source *src,
                         struct mr_libvirt_header *lv, struct mr_error *err)
{
    uint64_t xml_area = lv->cookie_offset && lv->cookie_offset < lv->data_len
                        ? lv->cookie_offset : lv->data_len;

    if (text_len(src, MR_LIBVIRT_HEADER_SIZE, xml_area, &lv->xml_len, err) < 0)
        return err->code;
    if (!lv->cookie_offset || lv->cookie_offset >= lv->data_len)
        return 0;
    return text_len(src, MR_LIBVIRT_HEADER_SIZE + (uint64_t)lv->cookie_offset,
                    lv->data_len - lv->cookie_offset, &lv->cookie_len, err);
}

/* A compressed format is located (inspect shows its header, restore
 * pipes it through the decompressor); only the walk refuses it. */
static int locate_libvirt(const struct mr_source *src, const uint8_t *hdr,
                          struct mr_location *loc, struct mr_error *err)
{
    struct mr_libvirt_header *lv = &loc->libvirt;

    lv->complete = !memcmp(hdr, "LibvirtQemudSave", 16);
    lv->big_endian = get_u32(hdr + 16, false) != 2;
    lv->version = get_u32(hdr + 16, lv->big_endian);
    if (lv->version != 2)
        return mr_error_set(err, -ENOTSUP, "expected libvirt save header "
                            "version 2 at offset 0x10, found 0x%08x",
                            get_u32(hdr + 16, false));
    lv->data_len = get_u32(hdr + 20, lv->big_endian);
    lv->was_running = get_u32(hdr + 24, lv->big_endian);
    lv->format = get_u32(hdr + 28, lv->big_endian);
    lv->cookie_offset = get_u32(hdr + 32, lv->big_endian);
    loc->kind = MR_CONTAINER_LIBVIRT;
    loc->incomplete = !lv->complete;
    loc->stream_offset = MR_LIBVIRT_HEADER_SIZE + (uint64_t)lv->data_len;
    if (loc->stream_offset > src->size)
        return mr_error_set(err, -EIO, "truncated: libvirt header puts the "
                            "stream at offset 0x%" PRIx64 ", file ends at 0x%"
                            PRIx64, loc->stream_offset, src->size);
    if (!mr_libvirt_format_name(lv->format))
        return mr_error_set(err, -ENOTSUP, "expected a libvirt image format "
                            "0 to 6 at offset 0x1c, found format %u",
                            lv->format);
    return libvirt_texts(src, lv, err);
}

int mr_libvirt_check_readable(const struct mr_location *loc,
                              struct mr_error *err)
{
    uint32_t f = loc->libvirt.format;

    if (loc->kind != MR_CONTAINER_LIBVIRT || f == 0 || f == 6)
        return 0;
    return mr_error_set(err, -ENOTSUP, "expected a raw or sparse libvirt "
                        "image (format 0 or 6) at offset 0x1c, found format "
                        "%u (%s-compressed; decompress it first)", f,
                        mr_libvirt_format_name(f));
}

static int locate_mapram(const struct mr_source *src, struct mr_location *loc,
                         struct mr_error *err)
{
    uint8_t sector[MR_FILE_HEADER_SECTOR];

    if (mr_source_read(src, sector, sizeof(sector), 0, err) < 0)
        return mr_error_prefix(err, "mapram header: ");
    if (mr_file_header_decode(sector, &loc->mapram, err) < 0)
        return err->code;
    loc->kind = MR_CONTAINER_MAPRAM;
    loc->incomplete = !mr_file_header_is_complete(&loc->mapram);
    loc->stream_offset = loc->mapram.stream_offset;
    if (loc->stream_offset > src->size)
        return mr_error_set(err, -EIO, "truncated: mapram header puts the "
                            "stream at offset 0x%" PRIx64 ", file ends at 0x%"
                            PRIx64, loc->stream_offset, src->size);
    return mr_file_header_check_size(&loc->mapram, src->size, err);
}

static void preview(const uint8_t *p, size_t len, char *out, size_t out_size)
{
    size_t n = 0;

    for (size_t i = 0; i < len && n + 1 < out_size; i++) {
        if (p[i] < 0x20 || p[i] > 0x7e)
            break;
        out[n++] = (char)p[i];
    }
    out[n] = '\0';
}

static int probe(const struct mr_source *src, const uint8_t *head,
                 size_t head_len, struct mr_location *loc,
                 struct mr_error *err)
{
    uint8_t magic[8];

    for (uint64_t off = MR_LOCATE_PROBE_STEP;
         off < MR_LOCATE_PROBE_LIMIT && off + 8 <= src->size;
         off += MR_LOCATE_PROBE_STEP) {
        if (mr_source_read(src, magic, 8, off, err) < 0)
            return err->code;
        if (!memcmp(magic, qevm_v3, 8)) {
            loc->kind = MR_CONTAINER_PROBED;
            loc->stream_offset = off;
            preview(head, head_len, loc->prefix_preview,
                    sizeof(loc->prefix_preview));
            return 0;
        }
    }
    return mr_error_set(err, -EINVAL, "Not a migration stream: expected magic "
                        "0x5145564d (\"QEVM\"), a libvirt or a mapram header "
                        "at offset 0x0, found 0x%02x%02x%02x%02x",
                        head_len > 0 ? head[0] : 0, head_len > 1 ? head[1] : 0,
                        head_len > 2 ? head[2] : 0, head_len > 3 ? head[3] : 0);
}

int mr_stream_locate(const struct mr_source *src, int64_t explicit_offset,
                     struct mr_location *loc, struct mr_error *err)
{
    uint8_t head[MR_LIBVIRT_HEADER_SIZE] = { 0 };
    size_t head_len = src->size < sizeof(head) ? (size_t)src->size
                                               : sizeof(head);

    memset(loc, 0, sizeof(*loc));
    if (explicit_offset >= 0) {
        loc->kind = MR_CONTAINER_EXPLICIT;
        loc->stream_offset = (uint64_t)explicit_offset;
        if (loc->stream_offset > src->size)
            return mr_error_set(err, -EINVAL, "expected --offset within the "
                                "file (0x%" PRIx64 " bytes), found 0x%" PRIx64,
                                src->size, loc->stream_offset);
        return 0;
    }
    if (mr_source_read(src, head, head_len, 0, err) < 0)
        return err->code;
    if (head_len >= 4 && !memcmp(head, "QEVM", 4)) {
        loc->kind = MR_CONTAINER_RAW;
        return 0;
    }
    if (head_len >= 16 && (!memcmp(head, "LibvirtQemudSave", 16) ||
                           !memcmp(head, "LibvirtQemudPart", 16))) {
        if (head_len < MR_LIBVIRT_HEADER_SIZE)
            return mr_error_set(err, -EIO, "truncated: needed %d bytes of "
                                "libvirt header at offset 0x0, file ends at "
                                "0x%zx", MR_LIBVIRT_HEADER_SIZE, head_len);
        return locate_libvirt(src, head, loc, err);
    }
    if (mr_file_header_probe(head, head_len))
        return locate_mapram(src, loc, err);
    return probe(src, head, head_len, loc, err);
}
