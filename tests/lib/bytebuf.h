/* A tiny growable byte buffer for building synthetic streams in tests. */
#ifndef MAPRAM_TEST_BYTEBUF_H
#define MAPRAM_TEST_BYTEBUF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct bytebuf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

static inline void bb_put(struct bytebuf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->data = realloc(b->data, b->cap);
        if (!b->data)
            abort();
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void bb_u8(struct bytebuf *b, uint8_t v)
{
    bb_put(b, &v, 1);
}

static inline void bb_be16(struct bytebuf *b, uint16_t v)
{
    bb_u8(b, (uint8_t)(v >> 8));
    bb_u8(b, (uint8_t)v);
}

static inline void bb_be32(struct bytebuf *b, uint32_t v)
{
    bb_be16(b, (uint16_t)(v >> 16));
    bb_be16(b, (uint16_t)v);
}

static inline void bb_be64(struct bytebuf *b, uint64_t v)
{
    bb_be32(b, (uint32_t)(v >> 32));
    bb_be32(b, (uint32_t)v);
}

static inline void bb_str(struct bytebuf *b, const char *s)
{
    bb_u8(b, (uint8_t)strlen(s));
    bb_put(b, s, strlen(s));
}

/* Zero-fill up to absolute length n. */
static inline void bb_pad_to(struct bytebuf *b, size_t n)
{
    while (b->len < n)
        bb_u8(b, 0);
}

/* The pieces every synthetic QEMU stream starts with
 * (docs/stream-format.md): magic and version 3 ... */
static inline void bb_stream_magic(struct bytebuf *b)
{
    bb_put(b, "QEVM\0\0\0\3", 8);
}

/* ... the configuration section: the machine type and, with mapped_ram,
 * the capabilities subsection naming mapped-ram ... */
static inline void bb_stream_config(struct bytebuf *b, const char *machine,
                                    bool mapped_ram)
{
    bb_u8(b, 0x07);
    bb_be32(b, (uint32_t)strlen(machine));
    bb_put(b, machine, strlen(machine));
    if (mapped_ram) {
        bb_u8(b, 0x05);
        bb_str(b, "configuration/capabilities");
        bb_be32(b, 1);
        bb_be32(b, 1);
        bb_str(b, "mapped-ram");
    }
}

/* ... and the SECTION_START of "ram" (id 1, instance 0, version 4). */
static inline void bb_ram_section_start(struct bytebuf *b)
{
    bb_u8(b, 0x01);
    bb_be32(b, 1);
    bb_str(b, "ram");
    bb_be32(b, 0);
    bb_be32(b, 4);
}

static inline void bb_free(struct bytebuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#endif
