/*
 * Checksum trailer codec and extent checksums (cksum.h).  Layout, all
 * integers little-endian (docs/file-format.md):
 *
 *   trailer: "MRCKSUM1" | u32 version | u32 nblocks | u32 flags |
 *            u32 stream_crc | u64 stream_offset |
 *            per block: u16 name_len | name | u64 page_size |
 *                       u64 used_length | u64 pages_offset |
 *                       u64 extent_pages | u64 nr_extents |
 *                       u32 crc[nr_extents]
 *            | u32 CRC32C of everything before it
 *   footer (last 32 bytes of the file):
 *            "MRCKEND1" | u64 trailer_offset | u64 trailer_len |
 *            u32 CRC32C of the 24 bytes before | u32 zero
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/cksum.h"
#include "format/mapped_ram.h"
#include "format/vmdesc.h"
#include "mapram/crc32c.h"
#include "util/bitmap.h"

#define ULL(x) ((unsigned long long)(x))

bool mr_cksum_present_le64(const void *bitmap, uint64_t page)
{
    return mr_bitmap_le64_test(bitmap, page);
}

bool mr_cksum_present_ulong(const void *bitmap, uint64_t page)
{
    return mr_bitmap_test(bitmap, page);
}

uint64_t mr_cksum_extent_pages(uint64_t page_size)
{
    uint64_t n = page_size ? MR_CKSUM_EXTENT_BYTES / page_size : 1;

    return n ? n : 1;
}

uint64_t mr_cksum_nr_extents(uint64_t used_length, uint64_t page_size)
{
    uint64_t pages = page_size ? used_length / page_size : 0;
    uint64_t per = mr_cksum_extent_pages(page_size);

    return pages / per + (pages % per ? 1 : 0);
}

uint32_t mr_cksum_extent(const uint8_t *host, uint64_t page_size,
                         uint64_t num_pages, uint64_t extent,
                         mr_cksum_present_fn present, const void *bitmap)
{
    uint64_t per = mr_cksum_extent_pages(page_size);
    uint64_t first = extent * per, end = first + per;
    uint32_t crc = 0;

    if (end > num_pages)
        end = num_pages;
    /* Whole runs at a time: one call per run of present pages. */
    for (uint64_t p = first; p < end;) {
        bool here = present(bitmap, p);
        uint64_t q = p + 1;

        while (q < end && present(bitmap, q) == here)
            q++;
        crc = here ? mr_crc32c(crc, host + p * page_size,
                               (size_t)((q - p) * page_size))
                   : mr_crc32c_zeros(crc, (q - p) * page_size);
        p = q;
    }
    return crc;
}

int mr_cksum_add_block(struct mr_cksum *ck, const char *name,
                       uint64_t page_size, uint64_t used_length,
                       uint64_t pages_offset, struct mr_error *err)
{
    struct mr_cksum_block *b;
    uint64_t n = mr_cksum_nr_extents(used_length, page_size);

    if (strlen(name) > MR_CKSUM_NAME_MAX || ck->nblocks >= MR_CKSUM_MAX_BLOCKS)
        return mr_error_set(err, -EINVAL, "checksums: block name '%s' too "
                            "long or too many blocks", name);
    b = realloc(ck->blocks, (ck->nblocks + 1) * sizeof(*b));
    if (!b)
        return mr_error_set(err, -ENOMEM, "out of memory");
    ck->blocks = b;
    b = &b[ck->nblocks];
    memset(b, 0, sizeof(*b));
    b->crc = calloc(n ? n : 1, sizeof(uint32_t));
    if (!b->crc)
        return mr_error_set(err, -ENOMEM, "out of memory for checksums");
    ck->nblocks++;
    snprintf(b->name, sizeof(b->name), "%s", name);
    b->page_size = page_size;
    b->used_length = used_length;
    b->pages_offset = pages_offset;
    b->extent_pages = mr_cksum_extent_pages(page_size);
    b->nr_extents = n;
    return 0;
}

const struct mr_cksum_block *mr_cksum_find(const struct mr_cksum *ck,
                                           const char *name)
{
    for (uint32_t i = 0; i < ck->nblocks; i++)
        if (strcmp(ck->blocks[i].name, name) == 0)
            return &ck->blocks[i];
    return NULL;
}

void mr_cksum_free(struct mr_cksum *ck)
{
    for (uint32_t i = 0; i < ck->nblocks; i++)
        free(ck->blocks[i].crc);
    free(ck->blocks);
    ck->blocks = NULL;
    ck->nblocks = 0;
}

/* ---- little-endian helpers -------------------------------------------- */

static uint8_t *put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + bytes;
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;

    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* ---- trailer ------------------------------------------------------------ */

#define BLOCK_FIXED_BYTES (2 + 5 * 8)

#define TRAILER_HEAD_BYTES (MR_CKSUM_MAGIC_BYTES + 4 * 4 + 8)

uint8_t *mr_cksum_encode(const struct mr_cksum *ck, size_t *len)
{
    size_t n = TRAILER_HEAD_BYTES + 4;
    uint8_t *buf, *p;

    for (uint32_t i = 0; i < ck->nblocks; i++)
        n += BLOCK_FIXED_BYTES + strlen(ck->blocks[i].name) +
             4 * ck->blocks[i].nr_extents;
    buf = malloc(n);
    if (!buf)
        return NULL;
    memcpy(buf, MR_CKSUM_MAGIC, MR_CKSUM_MAGIC_BYTES);
    p = put_le(buf + MR_CKSUM_MAGIC_BYTES, MR_CKSUM_VERSION, 4);
    p = put_le(p, ck->nblocks, 4);
    p = put_le(p, ck->flags, 4);
    p = put_le(p, ck->stream_crc, 4);
    p = put_le(p, ck->stream_offset, 8);
    for (uint32_t i = 0; i < ck->nblocks; i++) {
        const struct mr_cksum_block *b = &ck->blocks[i];
        size_t nl = strlen(b->name);

        p = put_le(p, nl, 2);
        memcpy(p, b->name, nl);
        p += nl;
        p = put_le(p, b->page_size, 8);
        p = put_le(p, b->used_length, 8);
        p = put_le(p, b->pages_offset, 8);
        p = put_le(p, b->extent_pages, 8);
        p = put_le(p, b->nr_extents, 8);
        for (uint64_t e = 0; e < b->nr_extents; e++)
            p = put_le(p, b->crc[e], 4);
    }
    put_le(p, mr_crc32c(0, buf, (size_t)(p - buf)), 4);
    *len = n;
    return buf;
}

/* One block entry at *pos; every field checked against the buffer and
 * against the others before the crc array is allocated. */
static int decode_block(const uint8_t *buf, size_t len, size_t *pos,
                        struct mr_cksum *ck, struct mr_error *err)
{
    const uint8_t *p = buf + *pos;
    size_t left = len - *pos, nl;
    char name[MR_CKSUM_NAME_MAX + 1];
    uint64_t ps, used, poff, per, n;
    struct mr_cksum_block *b;

    if (left < 2 || (nl = (size_t)get_le(p, 2)) > MR_CKSUM_NAME_MAX ||
        left < 2 + nl + BLOCK_FIXED_BYTES - 2)
        return mr_error_set(err, -EINVAL, "checksum trailer: block %u entry "
                            "is cut short", ck->nblocks);
    memcpy(name, p + 2, nl);
    name[nl] = '\0';
    p += 2 + nl;
    ps = get_le(p, 8);
    used = get_le(p + 8, 8);
    poff = get_le(p + 16, 8);
    per = get_le(p + 24, 8);
    n = get_le(p + 32, 8);
    p += 40;
    if (ps < 512 || (ps & (ps - 1)) || ps > (1ULL << 30) || used % ps ||
        per != mr_cksum_extent_pages(ps) || n != mr_cksum_nr_extents(used, ps))
        return mr_error_set(err, -EINVAL, "checksum trailer: block %s: page "
                            "size 0x%llx, length 0x%llx, %llu extents of %llu "
                            "pages do not agree", name, ULL(ps), ULL(used),
                            ULL(n), ULL(per));
    if (n > (len - (size_t)(p - buf)) / 4)
        return mr_error_set(err, -EINVAL, "checksum trailer: block %s: %llu "
                            "extents do not fit in the trailer", name, ULL(n));
    if (mr_cksum_add_block(ck, name, ps, used, poff, err))
        return err ? err->code : -EINVAL;
    b = &ck->blocks[ck->nblocks - 1];
    for (uint64_t e = 0; e < n; e++)
        b->crc[e] = (uint32_t)get_le(p + 4 * e, 4);
    *pos = (size_t)(p - buf) + 4 * n;
    return 0;
}

int mr_cksum_decode(const uint8_t *buf, size_t len, struct mr_cksum *ck,
                    struct mr_error *err)
{
    size_t pos = TRAILER_HEAD_BYTES;
    uint32_t version, nblocks;
    int rc;

    memset(ck, 0, sizeof(*ck));
    if (len < pos + 4 || memcmp(buf, MR_CKSUM_MAGIC, MR_CKSUM_MAGIC_BYTES))
        return mr_error_set(err, -EINVAL, "checksum trailer: expected magic "
                            "%s", MR_CKSUM_MAGIC);
    if (mr_crc32c(0, buf, len - 4) != (uint32_t)get_le(buf + len - 4, 4))
        return mr_error_set(err, -EINVAL, "checksum trailer: its own CRC32C "
                            "does not match (the trailer is corrupt)");
    version = (uint32_t)get_le(buf + MR_CKSUM_MAGIC_BYTES, 4);
    nblocks = (uint32_t)get_le(buf + MR_CKSUM_MAGIC_BYTES + 4, 4);
    ck->flags = (uint32_t)get_le(buf + MR_CKSUM_MAGIC_BYTES + 8, 4);
    ck->stream_crc = (uint32_t)get_le(buf + MR_CKSUM_MAGIC_BYTES + 12, 4);
    ck->stream_offset = get_le(buf + MR_CKSUM_MAGIC_BYTES + 16, 8);
    if (version != MR_CKSUM_VERSION)
        return mr_error_set(err, -EINVAL, "checksum trailer: version %u, "
                            "expected %d", version, MR_CKSUM_VERSION);
    if (nblocks > MR_CKSUM_MAX_BLOCKS)
        return mr_error_set(err, -EINVAL, "checksum trailer: %u blocks, "
                            "expected at most %d", nblocks,
                            MR_CKSUM_MAX_BLOCKS);
    len -= 4;
    for (uint32_t i = 0; i < nblocks; i++)
        if ((rc = decode_block(buf, len, &pos, ck, err))) {
            mr_cksum_free(ck);
            return rc;
        }
    if (pos != len) {
        mr_cksum_free(ck);
        return mr_error_set(err, -EINVAL, "checksum trailer: %zu unexpected "
                            "bytes after the last block", len - pos);
    }
    return 0;
}

/* ---- footer ------------------------------------------------------------- */

void mr_cksum_footer_encode(uint8_t out[MR_CKSUM_FOOTER_BYTES],
                            uint64_t trailer_offset, uint64_t trailer_len)
{
    memset(out, 0, MR_CKSUM_FOOTER_BYTES);
    memcpy(out, MR_CKSUM_FOOTER_MAGIC, MR_CKSUM_MAGIC_BYTES);
    put_le(out + 8, trailer_offset, 8);
    put_le(out + 16, trailer_len, 8);
    put_le(out + 24, mr_crc32c(0, out, 24), 4);
}

static int read_footer(const struct mr_source *src, uint64_t *off,
                       uint64_t *len, struct mr_error *err)
{
    uint8_t f[MR_CKSUM_FOOTER_BYTES];
    uint64_t end;

    if (src->size < MR_CKSUM_FOOTER_BYTES)
        return -ENOENT;
    end = src->size - MR_CKSUM_FOOTER_BYTES;
    if (mr_source_read(src, f, sizeof(f), end, err))
        return err ? err->code : -EIO;
    if (memcmp(f, MR_CKSUM_FOOTER_MAGIC, MR_CKSUM_MAGIC_BYTES))
        return -ENOENT;
    *off = get_le(f + 8, 8);
    *len = get_le(f + 16, 8);
    if (mr_crc32c(0, f, 24) != (uint32_t)get_le(f + 24, 4))
        return mr_error_set(err, -EINVAL, "checksum footer at 0x%llx: its "
                            "CRC32C does not match (the footer is corrupt)",
                            ULL(end));
    if (*len > MR_CKSUM_MAX_TRAILER_BYTES || *off > end || *len != end - *off)
        return mr_error_set(err, -EINVAL, "checksum footer at 0x%llx: trailer "
                            "of 0x%llx bytes at 0x%llx does not end at the "
                            "footer", ULL(end), ULL(*len), ULL(*off));
    return 0;
}

int mr_cksum_read(const struct mr_source *src, struct mr_cksum *ck,
                  uint64_t *trailer_offset, struct mr_error *err)
{
    uint64_t off = 0, len = 0;
    uint8_t *buf;
    int rc = read_footer(src, &off, &len, err);

    memset(ck, 0, sizeof(*ck));
    if (rc)
        return rc;
    buf = malloc(len ? (size_t)len : 1);
    if (!buf)
        return mr_error_set(err, -ENOMEM, "out of memory for the checksum "
                            "trailer");
    rc = mr_source_read(src, buf, (size_t)len, off, err);
    if (!rc)
        rc = mr_cksum_decode(buf, (size_t)len, ck, err);
    free(buf);
    if (!rc)
        *trailer_offset = off;
    return rc;
}

int mr_cksum_open(struct mr_source *src, struct mr_cksum *ck, bool *have,
                  struct mr_error *err)
{
    uint64_t off = 0;
    int rc = mr_cksum_read(src, ck, &off, err);

    *have = rc == 0;
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return rc;
    src->size = off;
    return 0;
}

/* ---- an unfinished trailer --------------------------------------------- */

#define SCAN_CHUNK (64u << 10)

/* Does the VMDESCRIPTION record end exactly at `at`? */
static bool vmdesc_ends_at(const struct mr_source *src, uint64_t min,
                           uint64_t at)
{
    struct mr_source cut = *src;
    struct mr_error err = MR_ERROR_INIT;
    uint64_t off;
    uint32_t len;

    cut.size = at;
    return mr_vmdesc_find(&cut, min, &off, &len, &err) == 0;
}

/* The trailer magic in buf (file offset base), last one first. */
static bool scan_chunk(const struct mr_source *src, uint64_t min,
                       const uint8_t *buf, size_t n, uint64_t base,
                       uint64_t *at)
{
    for (size_t i = n >= MR_CKSUM_MAGIC_BYTES ? n - MR_CKSUM_MAGIC_BYTES + 1
                                              : 0; i-- > 0;)
        if (buf[i] == 'M' && !memcmp(buf + i, MR_CKSUM_MAGIC,
                                     MR_CKSUM_MAGIC_BYTES) &&
            vmdesc_ends_at(src, min, base + i)) {
            *at = base + i;
            return true;
        }
    return false;
}

int mr_cksum_find_unfinished(const struct mr_source *src,
                             uint64_t stream_offset, uint64_t *at)
{
    uint64_t lo, end = src->size;
    uint8_t *buf;
    bool found = false;

    if (vmdesc_ends_at(src, stream_offset, src->size))
        return -ENOENT;
    lo = src->size > MR_CKSUM_MAX_TRAILER_BYTES + MR_CKSUM_FOOTER_BYTES ?
         src->size - MR_CKSUM_MAX_TRAILER_BYTES - MR_CKSUM_FOOTER_BYTES : 0;
    if (lo < stream_offset)
        lo = stream_offset;
    buf = malloc(SCAN_CHUNK + MR_CKSUM_MAGIC_BYTES);
    if (!buf)
        return -ENOMEM;
    /* Backwards in chunks that overlap by a magic's length. */
    while (!found && end > lo) {
        uint64_t start = end - lo > SCAN_CHUNK ? end - SCAN_CHUNK : lo;
        size_t n = (size_t)((end + MR_CKSUM_MAGIC_BYTES - 1 < src->size ?
                             end + MR_CKSUM_MAGIC_BYTES - 1 : src->size) -
                            start);

        if (mr_source_read(src, buf, n, start, NULL))
            break;
        found = scan_chunk(src, stream_offset, buf, n, start, at);
        end = start;
    }
    free(buf);
    return found ? 0 : -ENOENT;
}

/* ---- stream CRC -------------------------------------------------------- */

struct mr_cksum_write {
    uint64_t off;
    size_t len;
    uint8_t *data;
};

int mr_cksum_spans(const struct mr_cksum *ck, uint64_t start, uint64_t end,
                   struct mr_cksum_span *out)
{
    uint64_t at = start;
    uint32_t areas = 0;
    int n = 0;

    for (uint32_t i = 0; i < ck->nblocks; i++)
        areas += ck->blocks[i].used_length != 0;
    /* pages areas in file order: each step takes the lowest one at or
     * after `at`; an area that overlaps another is never taken */
    for (uint32_t k = 0; k < areas; k++) {
        const struct mr_cksum_block *next = NULL;

        for (uint32_t i = 0; i < ck->nblocks; i++) {
            const struct mr_cksum_block *b = &ck->blocks[i];

            if (b->used_length && b->pages_offset >= at &&
                (!next || b->pages_offset < next->pages_offset))
                next = b;
        }
        if (!next || next->used_length > end ||
            next->pages_offset > end - next->used_length)
            return -EINVAL;
        out[n].off = at;
        out[n++].len = next->pages_offset - at;
        at = next->pages_offset + next->used_length;
    }
    if (at > end)
        return -EINVAL;
    out[n].off = at;
    out[n++].len = end - at;
    return n;
}

static int spans_of(const struct mr_cksum *ck, uint64_t end,
                    struct mr_cksum_span **spans, struct mr_error *err)
{
    int n;

    *spans = calloc(ck->nblocks + 1, sizeof(**spans));
    if (!*spans)
        return mr_error_set(err, -ENOMEM, "out of memory");
    n = mr_cksum_spans(ck, ck->stream_offset, end, *spans);
    if (n < 0) {
        free(*spans);
        *spans = NULL;
        return mr_error_set(err, -EINVAL, "checksum trailer: pages areas "
                            "overlap or lie outside the stream");
    }
    return n;
}

int mr_cksum_stream_crc(const struct mr_source *src, const struct mr_cksum *ck,
                        uint64_t end, uint32_t *crc, struct mr_error *err)
{
    struct mr_cksum_span *spans;
    uint8_t *buf = malloc(64 << 10);
    int n = buf ? spans_of(ck, end, &spans, err) :
            mr_error_set(err, -ENOMEM, "out of memory");
    int rc = n < 0 ? n : 0;

    *crc = 0;
    for (int i = 0; !rc && i < n; i++) {
        for (uint64_t o = 0; !rc && o < spans[i].len; o += 64 << 10) {
            size_t len = spans[i].len - o < (64 << 10) ?
                         (size_t)(spans[i].len - o) : (64 << 10);

            rc = mr_source_read(src, buf, len, spans[i].off + o, err);
            *crc = mr_crc32c(*crc, buf, len);
        }
    }
    if (n >= 0)
        free(spans);
    free(buf);
    return rc;
}

int mr_cksum_check_stream(const struct mr_source *src,
                          const struct mr_cksum *ck, uint64_t stream_offset,
                          uint64_t end, struct mr_error *err)
{
    uint32_t crc;
    int rc;

    if (!(ck->flags & MR_CKSUM_F_STREAM_CRC))
        return 0;
    if (ck->stream_offset != stream_offset)
        return mr_error_set(err, -EINVAL, "checksum trailer: the stream "
                            "starts at 0x%" PRIx64 ", but is read from 0x%"
                            PRIx64, ck->stream_offset, stream_offset);
    rc = mr_cksum_stream_crc(src, ck, end, &crc, err);
    if (rc)
        return err && err->code ? err->code : rc;
    if (crc != ck->stream_crc)
        return mr_error_set(err, -EBADMSG, "stream checksum mismatch: the "
                            "stream records, bitmaps or device state differ "
                            "from what was saved (expected 0x%08x, computed "
                            "0x%08x)", ck->stream_crc, crc);
    return 0;
}

int mr_cksum_log_add(struct mr_cksum_log *log, const void *buf, size_t len,
                     uint64_t off)
{
    struct mr_cksum_write *w;

    if (log->bytes + len > MR_CKSUM_LOG_MAX_BYTES)
        return -EFBIG;
    if (log->n == log->cap) {
        size_t cap = log->cap ? log->cap * 2 : 64;

        w = realloc(log->w, cap * sizeof(*w));
        if (!w)
            return -ENOMEM;
        log->w = w;
        log->cap = cap;
    }
    w = &log->w[log->n];
    w->data = malloc(len ? len : 1);
    if (!w->data)
        return -ENOMEM;
    memcpy(w->data, buf, len);
    w->off = off;
    w->len = len;
    log->n++;
    log->bytes += len;
    return 0;
}

/* Rebuild one span from the log (later writes win) and CRC it. */
static uint32_t log_span_crc(const struct mr_cksum_log *log, uint32_t crc,
                             const struct mr_cksum_span *s, uint8_t *buf)
{
    memset(buf, 0, (size_t)s->len);
    for (size_t i = 0; i < log->n; i++) {
        const struct mr_cksum_write *w = &log->w[i];
        uint64_t a = w->off > s->off ? w->off : s->off;
        uint64_t z = w->off + w->len < s->off + s->len ? w->off + w->len
                                                       : s->off + s->len;

        if (a < z)
            memcpy(buf + (a - s->off), w->data + (a - w->off), (size_t)(z - a));
    }
    return mr_crc32c(crc, buf, (size_t)s->len);
}

int mr_cksum_log_crc(const struct mr_cksum_log *log, const struct mr_cksum *ck,
                     uint64_t end, uint32_t *crc, struct mr_error *err)
{
    struct mr_cksum_span *spans;
    int n = spans_of(ck, end, &spans, err);
    uint8_t *buf;

    *crc = 0;
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++) {
        if (spans[i].len > MR_CKSUM_LOG_MAX_BYTES) {
            free(spans);
            return mr_error_set(err, -EFBIG, "stream checksum: a span of "
                                "0x%llx bytes is too large", ULL(spans[i].len));
        }
        buf = malloc(spans[i].len ? (size_t)spans[i].len : 1);
        if (!buf) {
            free(spans);
            return mr_error_set(err, -ENOMEM, "out of memory");
        }
        *crc = log_span_crc(log, *crc, &spans[i], buf);
        free(buf);
    }
    free(spans);
    return 0;
}

void mr_cksum_log_free(struct mr_cksum_log *log)
{
    for (size_t i = 0; i < log->n; i++)
        free(log->w[i].data);
    free(log->w);
    memset(log, 0, sizeof(*log));
}
