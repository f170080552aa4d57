/*
 * Bounded byte sources and the buffered big-endian cursor (source.h).
 * The size bound is enforced here, once, so decoders above never read
 * beyond the end of a file whatever its contents claim.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/source.h"

static int64_t fd_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
    int fd = (int)(intptr_t)opaque;
    ssize_t n;

    do {
        n = pread(fd, buf, len, (off_t)off);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : (int64_t)n;
}

int mr_source_init_fd(struct mr_source *src, int fd, struct mr_error *err)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return mr_error_set(err, -errno, "cannot stat file: %s",
                            strerror(errno));
    src->pread = fd_pread;
    src->opaque = (void *)(intptr_t)fd;
    src->size = st.st_size < 0 ? 0 : (uint64_t)st.st_size;
    src->stream = false;
    return 0;
}

static int64_t mem_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
    /* mr_source_read has already bounded [off, off + len) by the size. */
    memcpy(buf, (const uint8_t *)opaque + off, len);
    return (int64_t)len;
}

void mr_source_init_mem(struct mr_source *src, const void *buf, size_t len)
{
    src->pread = mem_pread;
    src->opaque = (void *)(uintptr_t)buf;
    src->size = len;
    src->stream = false;
}

int mr_source_read(const struct mr_source *src, void *buf, size_t len,
                   uint64_t off, struct mr_error *err)
{
    uint8_t *p = buf;

    if (off > src->size || len > src->size - off)
        return mr_error_set(err, -EIO,
                            "truncated: needed %zu bytes at offset 0x%" PRIx64
                            ", file ends at 0x%" PRIx64, len, off, src->size);
    while (len > 0) {
        int64_t n = src->pread(src->opaque, p, len, off);

        if (n < 0)
            return mr_error_set(err, (int)n, "read error at offset 0x%" PRIx64
                                ": %s", off, strerror((int)-n));
        if (n == 0)
            return mr_error_set(err, -EIO, "truncated: file ended early at "
                                "offset 0x%" PRIx64 " (expected 0x%" PRIx64
                                " bytes)", off, src->size);
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* A stream: at least `min` and at most `max` bytes at off, as many as
 * have arrived; the count read goes to *got. */
static int source_read_upto(const struct mr_source *src, uint8_t *p,
                            size_t min, size_t max, uint64_t off, size_t *got,
                            struct mr_error *err)
{
    size_t done = 0;

    while (done < min) {
        int64_t n = src->pread(src->opaque, p + done, max - done, off + done);

        if (n < 0)
            return mr_error_set(err, (int)n, "read error at offset 0x%" PRIx64
                                ": %s", off + done, strerror((int)-n));
        if (n == 0)
            return mr_error_set(err, -EIO, "truncated: the stream ended "
                                "early at offset 0x%" PRIx64, off + done);
        done += (size_t)n;
    }
    *got = done;
    return 0;
}

void mr_cursor_init(struct mr_cursor *c, const struct mr_source *src,
                    uint64_t pos)
{
    c->src = src;
    c->pos = pos;
    c->buf_off = 0;
    c->buf_len = 0;
    c->ext_buf = NULL;
    c->ext_cap = 0;
    mr_error_clear(&c->err);
}

void mr_cursor_set_buffer(struct mr_cursor *c, void *buf, size_t cap)
{
    c->ext_buf = buf && cap > sizeof(c->buf) ? buf : NULL;
    c->ext_cap = c->ext_buf ? cap : 0;
    c->buf_len = 0;             /* what the old buffer held is gone */
}

static uint8_t *cursor_buf(struct mr_cursor *c, size_t *cap)
{
    *cap = c->ext_buf ? c->ext_cap : sizeof(c->buf);
    return c->ext_buf ? c->ext_buf : c->buf;
}

const uint8_t *mr_cursor_peek(const struct mr_cursor *c, uint64_t off,
                              size_t len)
{
    const uint8_t *b = c->ext_buf ? c->ext_buf : c->buf;

    if (off < c->buf_off || off - c->buf_off > c->buf_len ||
        len > c->buf_len - (off - c->buf_off))
        return NULL;
    return b + (off - c->buf_off);
}

int mr_cursor_fail(struct mr_cursor *c, int code, const char *fmt, ...)
{
    va_list ap;
    char msg[MR_ERROR_MSG_MAX];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return mr_error_set(&c->err, code, "%s", msg);
}

int mr_cursor_expected(struct mr_cursor *c, uint64_t off, const char *expected,
                       const char *found_fmt, ...)
{
    va_list ap;
    char found[MR_ERROR_MSG_MAX];

    va_start(ap, found_fmt);
    vsnprintf(found, sizeof(found), found_fmt, ap);
    va_end(ap);
    return mr_error_set(&c->err, -EINVAL, "expected %s at offset 0x%" PRIx64
                        ", found %s", expected, off, found);
}

/* Make [pos, pos + len) available in buf (len <= buffer size). */
static const uint8_t *cursor_need(struct mr_cursor *c, size_t len,
                                  const char *what)
{
    uint64_t size = c->src->size;
    size_t fill;
    uint8_t *b = cursor_buf(c, &fill);

    if (!mr_cursor_ok(c))
        return NULL;
    if (c->pos > size || len > size - c->pos) {
        mr_error_set(&c->err, -EIO, "truncated: needed %zu bytes for %s at "
                     "offset 0x%" PRIx64 ", file ends at 0x%" PRIx64,
                     len, what, c->pos, size);
        return NULL;
    }
    if (c->pos >= c->buf_off && c->pos + len <= c->buf_off + c->buf_len)
        return b + (c->pos - c->buf_off);
    if (fill > size - c->pos)
        fill = (size_t)(size - c->pos);
    if (c->src->stream ?
        source_read_upto(c->src, b, len, fill, c->pos, &fill, &c->err) < 0 :
        mr_source_read(c->src, b, fill, c->pos, &c->err) < 0) {
        c->buf_len = 0;
        return NULL;
    }
    c->buf_off = c->pos;
    c->buf_len = fill;
    return b;
}

uint8_t mr_cursor_u8(struct mr_cursor *c, const char *what)
{
    const uint8_t *p = cursor_need(c, 1, what);

    if (!p)
        return 0;
    c->pos += 1;
    return p[0];
}

uint16_t mr_cursor_be16(struct mr_cursor *c, const char *what)
{
    const uint8_t *p = cursor_need(c, 2, what);

    if (!p)
        return 0;
    c->pos += 2;
    return (uint16_t)(p[0] << 8 | p[1]);
}

uint32_t mr_cursor_be32(struct mr_cursor *c, const char *what)
{
    const uint8_t *p = cursor_need(c, 4, what);

    if (!p)
        return 0;
    c->pos += 4;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

uint64_t mr_cursor_be64(struct mr_cursor *c, const char *what)
{
    uint64_t hi = mr_cursor_be32(c, what);
    uint64_t lo = mr_cursor_be32(c, what);

    return mr_cursor_ok(c) ? hi << 32 | lo : 0;
}

bool mr_cursor_bytes(struct mr_cursor *c, void *out, size_t len,
                     const char *what)
{
    uint8_t *dst = out;
    size_t cap;

    cursor_buf(c, &cap);
    while (len > 0) {
        size_t chunk = len < cap ? len : cap;
        const uint8_t *p = cursor_need(c, chunk, what);

        if (!p)
            return false;
        memcpy(dst, p, chunk);
        c->pos += chunk;
        dst += chunk;
        len -= chunk;
    }
    return mr_cursor_ok(c);
}

bool mr_cursor_string(struct mr_cursor *c, char out[256], const char *what)
{
    uint64_t start = c->pos;
    uint8_t len = mr_cursor_u8(c, what);
    const void *nul;

    out[0] = '\0';
    if (!mr_cursor_bytes(c, out, len, what))
        return false;
    out[len] = '\0';
    nul = memchr(out, '\0', len);
    if (nul) {
        mr_cursor_expected(c, start, what, "a NUL byte inside the %u-byte "
                           "name at offset 0x%" PRIx64, len,
                           start + 1 + (uint64_t)((const char *)nul - out));
        out[0] = '\0';
        return false;
    }
    return true;
}

bool mr_cursor_at_end(struct mr_cursor *c)
{
    uint8_t byte;

    if (!mr_cursor_ok(c))
        return false;
    if (!c->src->stream)
        return c->pos >= c->src->size;
    if (mr_cursor_peek(c, c->pos, 1))
        return false;
    return c->src->pread(c->src->opaque, &byte, 1, c->pos) == 0;
}

bool mr_cursor_seek(struct mr_cursor *c, uint64_t pos, const char *what)
{
    if (!mr_cursor_ok(c))
        return false;
    if (pos > c->src->size) {
        mr_error_set(&c->err, -EIO, "truncated: %s at offset 0x%" PRIx64
                     " is beyond the end of the file at 0x%" PRIx64,
                     what, pos, c->src->size);
        return false;
    }
    c->pos = pos;
    return true;
}

bool mr_cursor_skip(struct mr_cursor *c, uint64_t len, const char *what)
{
    uint64_t size = c->src->size;

    if (!mr_cursor_ok(c))
        return false;
    if (c->pos > size || len > size - c->pos) {
        mr_error_set(&c->err, -EIO, "truncated: needed %" PRIu64 " bytes for "
                     "%s at offset 0x%" PRIx64 ", file ends at 0x%" PRIx64,
                     len, what, c->pos, size);
        return false;
    }
    c->pos += len;
    return true;
}
