/*
 * The working-set sidecar codec (format/wset.h): bounds first, the CRC
 * before any field is trusted, every entry checked against its block.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "format/wset.h"
#include "mapram/crc32c.h"

#define HDR_BYTES 48

static uint8_t *put(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint64_t get(const uint8_t *p, int bytes)
{
    uint64_t v = 0;

    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int bad(struct mr_error *err, const char *why)
{
    return mr_error_set(err, -EINVAL, "working set: %s", why);
}

static bool power_of_two(uint64_t v)
{
    return v && !(v & (v - 1));
}

static int decode_blocks(const uint8_t **pp, const uint8_t *end,
                         struct mr_wset *w, struct mr_error *err)
{
    const uint8_t *p = *pp;

    for (uint32_t i = 0; i < w->nblocks; i++) {
        size_t nl;

        if (end - p < 2 || (nl = (size_t)get(p, 2)) == 0 ||
            nl > MR_WSET_NAME_MAX || (size_t)(end - p - 2) < nl + 8)
            return bad(err, "truncated or bad block entry");
        memcpy(w->blocks[i].name, p + 2, nl);
        w->blocks[i].name[nl] = '\0';
        if (strlen(w->blocks[i].name) != nl)
            return bad(err, "block name holds a NUL byte");
        w->blocks[i].used_length = get(p + 2 + nl, 8);
        p += 2 + nl + 8;
    }
    *pp = p;
    return 0;
}

static int decode_entries(const uint8_t *p, const uint8_t *end,
                          struct mr_wset *w, struct mr_error *err)
{
    if ((uint64_t)(end - p) != w->n * 8)
        return bad(err, "entry count does not match the size");
    for (uint64_t i = 0; i < w->n; i++, p += 8) {
        struct mr_wset_entry *e = &w->e[i];
        uint64_t len;

        e->block = (uint32_t)get(p, 4);
        e->index = (uint32_t)get(p + 4, 4);
        if (e->block >= w->nblocks)
            return bad(err, "entry names no block");
        len = w->blocks[e->block].used_length;
        if ((uint64_t)e->index >= (len + w->granule - 1) / w->granule)
            return bad(err, "entry beyond its block");
    }
    return 0;
}

static int decode_header(const uint8_t *buf, size_t len, struct mr_wset *w,
                         struct mr_error *err)
{
    if (len < HDR_BYTES + 4 || memcmp(buf, MR_WSET_MAGIC, 8))
        return bad(err, "not a working-set file");
    if (mr_crc32c(0, buf, len - 4) != (uint32_t)get(buf + len - 4, 4))
        return bad(err, "CRC mismatch");
    if (get(buf + 8, 4) != MR_WSET_VERSION)
        return bad(err, "unknown version");
    w->nblocks = (uint32_t)get(buf + 12, 4);
    w->granule = get(buf + 16, 8);
    w->file_size = get(buf + 24, 8);
    w->file_mtime_ns = get(buf + 32, 8);
    w->n = get(buf + 40, 8);
    if (w->nblocks > MR_WSET_MAX_BLOCKS || w->n > MR_WSET_MAX_ENTRIES ||
        !power_of_two(w->granule) || w->granule < 4096 ||
        w->granule > (1ULL << 30))
        return bad(err, "field out of range");
    return 0;
}

int mr_wset_decode(const uint8_t *buf, size_t len, struct mr_wset *w,
                   struct mr_error *err)
{
    const uint8_t *p, *end;
    int rc;

    memset(w, 0, sizeof(*w));
    if ((rc = decode_header(buf, len, w, err)))
        return rc;
    p = buf + HDR_BYTES;
    end = buf + len - 4;
    w->blocks = calloc(w->nblocks ? w->nblocks : 1, sizeof(*w->blocks));
    w->e = (uint64_t)(end - p) >= w->n * 8
               ? calloc(w->n ? w->n : 1, sizeof(*w->e)) : NULL;
    if (!w->blocks || !w->e) {
        mr_wset_free(w);
        return bad(err, "truncated or too large");
    }
    if ((rc = decode_blocks(&p, end, w, err)) ||
        (rc = decode_entries(p, end, w, err))) {
        mr_wset_free(w);
        return rc;
    }
    return 0;
}

int mr_wset_encode(const struct mr_wset *w, uint8_t **out, size_t *len)
{
    size_t n = HDR_BYTES + 4 + (size_t)w->n * 8;
    uint8_t *buf, *p;

    if (w->nblocks > MR_WSET_MAX_BLOCKS || w->n > MR_WSET_MAX_ENTRIES)
        return -EINVAL;
    for (uint32_t i = 0; i < w->nblocks; i++) {
        size_t nl = strlen(w->blocks[i].name);

        if (nl == 0 || nl > MR_WSET_NAME_MAX)
            return -EINVAL;
        n += 2 + nl + 8;
    }
    if (!(buf = malloc(n)))
        return -ENOMEM;
    memcpy(buf, MR_WSET_MAGIC, 8);
    p = put(buf + 8, MR_WSET_VERSION, 4);
    p = put(p, w->nblocks, 4);
    p = put(p, w->granule, 8);
    p = put(p, w->file_size, 8);
    p = put(p, w->file_mtime_ns, 8);
    p = put(p, w->n, 8);
    for (uint32_t i = 0; i < w->nblocks; i++) {
        size_t nl = strlen(w->blocks[i].name);

        p = put(p, nl, 2);
        memcpy(p, w->blocks[i].name, nl);
        p = put(p + nl, w->blocks[i].used_length, 8);
    }
    for (uint64_t i = 0; i < w->n; i++)
        p = put(put(p, w->e[i].block, 4), w->e[i].index, 4);
    put(p, mr_crc32c(0, buf, n - 4), 4);
    *out = buf;
    *len = n;
    return 0;
}

void mr_wset_free(struct mr_wset *w)
{
    free(w->blocks);
    free(w->e);
    w->blocks = NULL;
    w->e = NULL;
    w->n = w->nblocks = 0;
}
