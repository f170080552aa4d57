/*
 * The stream encoder (see stream_write.h): QEMU 10's migration stream,
 * byte for byte, through a buffered positional sink with a sticky error.
 * Integers are big-endian except the mapped-ram bitmap (LE-64 words).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "format/mapped_ram.h"
#include "format/stream_defs.h"
#include "format/stream_write.h"

#define SW_BUF_BYTES (256 * 1024)

int mr_sw_init(struct mr_stream_writer *w, const struct mr_stream_sink *sink,
               uint64_t start_offset, struct mr_error *err)
{
    memset(w, 0, sizeof(*w));
    w->sink = *sink;
    w->base = start_offset;
    w->cap = SW_BUF_BYTES;
    w->buf = malloc(w->cap);
    if (!w->buf)
        return mr_error_set(err, -ENOMEM, "out of memory for the stream buffer");
    return 0;
}

void mr_sw_destroy(struct mr_stream_writer *w)
{
    free(w->buf);
    w->buf = NULL;
}

void mr_sw_set_error(struct mr_stream_writer *w, const struct mr_error *e)
{
    mr_error_propagate(&w->err, e);
}

int mr_sw_flush(struct mr_stream_writer *w)
{
    if (w->err.code)
        return w->err.code;
    if (w->len) {
        if (w->sink.pwrite_all(w->sink.opaque, w->buf, w->len, w->base,
                               &w->err))
            return mr_error_set(&w->err, -EIO, "stream write failed");
        w->bytes_out += w->len;
        w->base += w->len;
        w->len = 0;
    }
    return 0;
}

int mr_sw_seek(struct mr_stream_writer *w, uint64_t off)
{
    int rc = mr_sw_flush(w);

    if (!rc)
        w->base = off;
    return rc;
}

int mr_sw_pwrite(struct mr_stream_writer *w, const void *p, size_t len,
                 uint64_t off)
{
    int rc = mr_sw_flush(w);

    if (rc || !len)
        return rc;
    if (w->sink.pwrite_all(w->sink.opaque, p, len, off, &w->err))
        return mr_error_set(&w->err, -EIO, "stream write failed");
    w->bytes_out += len;
    return 0;
}

void mr_sw_put_bytes(struct mr_stream_writer *w, const void *p, size_t len)
{
    if (w->err.code)
        return;
    if (w->len + len > w->cap) {
        if (mr_sw_flush(w))
            return;
        if (len > w->cap / 2) {
            /* Large payloads bypass the buffer. */
            uint64_t at = w->base;
            if (w->sink.pwrite_all(w->sink.opaque, p, len, at, &w->err)) {
                mr_error_set(&w->err, -EIO, "stream write failed");
                return;
            }
            w->bytes_out += len;
            w->base += len;
            return;
        }
    }
    memcpy(w->buf + w->len, p, len);
    w->len += len;
}

void mr_sw_put_u8(struct mr_stream_writer *w, uint8_t v)
{
    mr_sw_put_bytes(w, &v, 1);
}

void mr_sw_put_be16(struct mr_stream_writer *w, uint16_t v)
{
    uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

    mr_sw_put_bytes(w, b, 2);
}

void mr_sw_put_be32(struct mr_stream_writer *w, uint32_t v)
{
    uint8_t b[4];

    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (24 - 8 * i));
    mr_sw_put_bytes(w, b, 4);
}

void mr_sw_put_be64(struct mr_stream_writer *w, uint64_t v)
{
    uint8_t b[8];

    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    mr_sw_put_bytes(w, b, 8);
}

void mr_sw_put_counted(struct mr_stream_writer *w, const char *s)
{
    size_t n = strlen(s);

    if (n > 255) {
        mr_error_set(&w->err, -ENAMETOOLONG,
                     "name '%.32s...' is longer than 255 bytes", s);
        return;
    }
    mr_sw_put_u8(w, (uint8_t)n);
    mr_sw_put_bytes(w, s, n);
}

void mr_sw_header(struct mr_stream_writer *w)
{
    mr_sw_put_be32(w, QEMU_VM_FILE_MAGIC);
    mr_sw_put_be32(w, QEMU_VM_FILE_VERSION);
}

void mr_sw_configuration(struct mr_stream_writer *w, const char *machine,
                         const char *const *caps, size_t ncaps)
{
    size_t n = strlen(machine);

    mr_sw_put_u8(w, QEMU_VM_CONFIGURATION);
    mr_sw_put_be32(w, (uint32_t)n);
    mr_sw_put_bytes(w, machine, n);
    if (!ncaps)
        return; /* the subsection is only "needed" with a validated cap */
    mr_sw_put_u8(w, QEMU_VM_SUBSECTION);
    mr_sw_put_counted(w, CONFIG_SUBSECTION_CAPABILITIES);
    mr_sw_put_be32(w, 1);
    mr_sw_put_be32(w, (uint32_t)ncaps);
    for (size_t i = 0; i < ncaps; i++)
        mr_sw_put_counted(w, caps[i]);
}

void mr_sw_section_header(struct mr_stream_writer *w, uint8_t type,
                          uint32_t section_id, const char *idstr,
                          uint32_t instance_id, uint32_t version_id)
{
    mr_sw_put_u8(w, type);
    mr_sw_put_be32(w, section_id);
    mr_sw_put_counted(w, idstr);
    mr_sw_put_be32(w, instance_id);
    mr_sw_put_be32(w, version_id);
}

void mr_sw_section_short(struct mr_stream_writer *w, uint8_t type,
                         uint32_t section_id)
{
    mr_sw_put_u8(w, type);
    mr_sw_put_be32(w, section_id);
}

void mr_sw_section_footer(struct mr_stream_writer *w, uint32_t section_id)
{
    mr_sw_put_u8(w, QEMU_VM_SECTION_FOOTER);
    mr_sw_put_be32(w, section_id);
}

void mr_sw_command(struct mr_stream_writer *w, uint16_t cmd,
                   const void *data, uint16_t len)
{
    mr_sw_put_u8(w, QEMU_VM_COMMAND);
    mr_sw_put_be16(w, cmd);
    mr_sw_put_be16(w, len);
    mr_sw_put_bytes(w, data, len);
}

void mr_sw_eof(struct mr_stream_writer *w)
{
    mr_sw_put_u8(w, QEMU_VM_EOF);
}

void mr_sw_vmdesc(struct mr_stream_writer *w, json_t *desc)
{
    char *text = json_dumps(desc, JSON_COMPACT | JSON_PRESERVE_ORDER);

    if (!text) {
        mr_error_set(&w->err, -ENOMEM, "cannot encode the VM description");
        return;
    }
    size_t n = strlen(text);
    mr_sw_put_u8(w, QEMU_VM_VMDESCRIPTION);
    mr_sw_put_be32(w, (uint32_t)n);
    mr_sw_put_bytes(w, text, n);
    free(text);
}

static void put_mapped_ram_header(struct mr_stream_writer *w,
                                  struct mr_sw_ram_block *b)
{
    struct mr_mapped_ram_layout l;

    /* H is where the header lands: everything buffered counts. */
    if (!mr_mapped_ram_layout(mr_sw_pos(w), b->used_length, b->page_size, &l)) {
        mr_error_set(&w->err, -EINVAL, "RAM block %s: length 0x%llx is not a "
                     "multiple of the page size", b->name,
                     (unsigned long long)b->used_length);
        return;
    }
    b->bitmap_offset = l.bitmap_offset;
    b->pages_offset = l.pages_offset;
    mr_sw_put_be32(w, MAPPED_RAM_HDR_VERSION);
    mr_sw_put_be64(w, b->page_size);
    mr_sw_put_be64(w, b->bitmap_offset);
    mr_sw_put_be64(w, b->pages_offset);
    /* Bitmap and padding stay holes until the END section. */
    mr_sw_seek(w, b->pages_offset + b->used_length);
}

void mr_sw_ram_setup(struct mr_stream_writer *w, struct mr_sw_ram_block *blocks,
                     size_t nblocks, bool mapped_ram, bool ignore_shared)
{
    uint64_t total = 0;

    for (size_t i = 0; i < nblocks; i++)
        total += blocks[i].used_length;
    mr_sw_put_be64(w, total | RAM_SAVE_FLAG_MEM_SIZE);
    for (size_t i = 0; i < nblocks; i++) {
        mr_sw_put_counted(w, blocks[i].name);
        mr_sw_put_be64(w, blocks[i].used_length);
        if (ignore_shared)
            mr_sw_put_be64(w, blocks[i].gpa);
        if (mapped_ram)
            put_mapped_ram_header(w, &blocks[i]);
    }
}

static void page_record_head(struct mr_stream_writer *w, const char *block,
                             uint64_t offset, uint64_t flags)
{
    mr_sw_put_be64(w, offset | flags | (block ? 0 : RAM_SAVE_FLAG_CONTINUE));
    if (block)
        mr_sw_put_counted(w, block);
}

void mr_sw_ram_page(struct mr_stream_writer *w, const char *block,
                    uint64_t offset, const void *data, size_t page_size)
{
    page_record_head(w, block, offset, RAM_SAVE_FLAG_PAGE);
    mr_sw_put_bytes(w, data, page_size);
}

void mr_sw_ram_zero(struct mr_stream_writer *w, const char *block,
                    uint64_t offset)
{
    page_record_head(w, block, offset, RAM_SAVE_FLAG_ZERO);
    mr_sw_put_u8(w, 0);
}

void mr_sw_ram_eos(struct mr_stream_writer *w)
{
    mr_sw_put_be64(w, RAM_SAVE_FLAG_EOS);
}
