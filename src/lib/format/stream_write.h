/*
 * The stream encoder: QEMU's migration stream (docs/stream-format.md)
 * written through a buffered, positional sink with a sticky error, like
 * QEMUFile.  Only this file and the reader know byte layouts.
 */
#ifndef MAPRAM_FORMAT_STREAM_WRITE_H
#define MAPRAM_FORMAT_STREAM_WRITE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mapram/error.h"

/*
 * The writer tracks the absolute file position of every byte it buffers,
 * because mapped-ram headers store absolute offsets computed from where
 * the header lands (docs/stream-format.md, "Mapped-ram block header").  Once an error is recorded every put is a
 * no-op; callers check mr_sw_error() at flush points.
 */

/* Where bytes go: a positional write that writes all of `len` or fails. */
struct mr_stream_sink {
    int (*pwrite_all)(void *opaque, const void *buf, size_t len, uint64_t off,
                      struct mr_error *err);
    void *opaque;
};

struct mr_stream_writer {
    struct mr_stream_sink sink;
    uint8_t *buf;
    size_t len, cap;
    uint64_t base;          /* absolute file offset of buf[0] */
    uint64_t bytes_out;     /* bytes handed to the sink so far */
    struct mr_error err;    /* sticky */
};

int mr_sw_init(struct mr_stream_writer *w, const struct mr_stream_sink *sink,
               uint64_t start_offset, struct mr_error *err);
void mr_sw_destroy(struct mr_stream_writer *w);

static inline uint64_t mr_sw_pos(const struct mr_stream_writer *w)
{
    return w->base + w->len;
}
static inline int mr_sw_error(const struct mr_stream_writer *w)
{
    return w->err.code;
}
/* Record an error from outside (cancel): every later put is dropped. */
void mr_sw_set_error(struct mr_stream_writer *w, const struct mr_error *e);

void mr_sw_put_u8(struct mr_stream_writer *w, uint8_t v);
void mr_sw_put_be16(struct mr_stream_writer *w, uint16_t v);
void mr_sw_put_be32(struct mr_stream_writer *w, uint32_t v);
void mr_sw_put_be64(struct mr_stream_writer *w, uint64_t v);
void mr_sw_put_bytes(struct mr_stream_writer *w, const void *p, size_t len);
/* u8 length + bytes; names longer than 255 bytes are an error. */
void mr_sw_put_counted(struct mr_stream_writer *w, const char *s);
int mr_sw_flush(struct mr_stream_writer *w);
/* Continue the sequential stream at absolute offset `off`. */
int mr_sw_seek(struct mr_stream_writer *w, uint64_t off);
/* Flush, then write `len` bytes at `off` outside the sequential stream. */
int mr_sw_pwrite(struct mr_stream_writer *w, const void *p, size_t len,
                 uint64_t off);

/* --- records --- */

void mr_sw_header(struct mr_stream_writer *w);
/* CONFIGURATION with the capabilities subsection when `ncaps` > 0 (only
 * validated capabilities: x-ignore-shared, mapped-ram, in that order). */
void mr_sw_configuration(struct mr_stream_writer *w, const char *machine,
                         const char *const *caps, size_t ncaps);
/* START or FULL header. */
void mr_sw_section_header(struct mr_stream_writer *w, uint8_t type,
                          uint32_t section_id, const char *idstr,
                          uint32_t instance_id, uint32_t version_id);
/* PART or END header. */
void mr_sw_section_short(struct mr_stream_writer *w, uint8_t type,
                         uint32_t section_id);
void mr_sw_section_footer(struct mr_stream_writer *w, uint32_t section_id);
void mr_sw_command(struct mr_stream_writer *w, uint16_t cmd,
                   const void *data, uint16_t len);
void mr_sw_eof(struct mr_stream_writer *w);
/* VMDESCRIPTION: compact JSON, no NUL. */
void mr_sw_vmdesc(struct mr_stream_writer *w, json_t *desc);

/* --- the RAM section --- */

struct mr_sw_ram_block {
    const char *name;
    uint64_t used_length;
    uint64_t page_size;
    uint64_t gpa;            /* written only with x-ignore-shared */
    /* filled by mr_sw_ram_setup with mapped-ram: */
    uint64_t bitmap_offset;
    uint64_t pages_offset;
};

/* MEM_SIZE and the block list of the START payload (not the EOS).  With
 * mapped-ram each block gets its header and the stream continues after its
 * pages area (layout math: format/mapped_ram.h). */
void mr_sw_ram_setup(struct mr_stream_writer *w, struct mr_sw_ram_block *blocks,
                     size_t nblocks, bool mapped_ram, bool ignore_shared);
/* Legacy page records.  `block` NULL means CONTINUE (same block as the
 * previous record). */
void mr_sw_ram_page(struct mr_stream_writer *w, const char *block,
                    uint64_t offset, const void *data, size_t page_size);
void mr_sw_ram_zero(struct mr_stream_writer *w, const char *block,
                    uint64_t offset);
void mr_sw_ram_eos(struct mr_stream_writer *w);

#endif
