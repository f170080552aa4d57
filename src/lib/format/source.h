/*
 * Bounded byte sources and a buffered big-endian cursor.
 */
#ifndef MAPRAM_FORMAT_SOURCE_H
#define MAPRAM_FORMAT_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mapram/error.h"

/*
 * Everything that decodes a save file reads through a `struct mr_source`
 * (a file descriptor or a memory buffer, so the fuzzer and the unit tests
 * drive the same code as `inspect`).  A source knows its size; no read ever
 * goes past it.  The cursor adds buffering, big-endian integers, counted
 * strings and a sticky error that records what was expected, what was
 * found and the absolute file offset, so the first problem is the one
 * reported and decoders can check once per item instead of per field.
 */

struct mr_source {
    /* Reads up to len bytes at off; returns bytes read, 0 at end, or -errno.
     * Callers (mr_source_read) never ask for bytes at or past `size`. */
    int64_t (*pread)(void *opaque, void *buf, size_t len, uint64_t off);
    void *opaque;
    uint64_t size;
    /* Forward only (a socket, mr_source_init_stream): the size is unknown
     * (UINT64_MAX), pread returns what has arrived (at least one byte, 0
     * at the end), and only a window behind the newest byte can be read
     * again.  Nothing may look for a trailer at its end. */
    bool stream;
};

/* A source over an open descriptor; the size comes from fstat.  The
 * descriptor stays owned by the caller. */
int mr_source_init_fd(struct mr_source *src, int fd, struct mr_error *err);

/* A source over `len` bytes at `buf`; the buffer must outlive the source. */
void mr_source_init_mem(struct mr_source *src, const void *buf, size_t len);

/*
 * A forward-only source over `read` (at least one byte per call, 0 at the
 * end, -errno), keeping the last `window` bytes (at least 4 MiB: more than
 * any cursor buffer plus a page) so that the cursor and the loaders may
 * read a little behind the newest byte.  `in` must outlive the source;
 * release it with mr_stream_in_free.
 */
struct mr_stream_in {
    int64_t (*read)(void *opaque, void *buf, size_t len);
    void *opaque;
    uint8_t *buf;
    size_t cap, len;            /* window: buf[0 .. len) */
    uint64_t base;              /* stream offset of buf[0] */
};

int mr_source_init_stream(struct mr_source *src, struct mr_stream_in *in,
                          int64_t (*read)(void *opaque, void *buf, size_t len),
                          void *opaque, size_t window, struct mr_error *err);
void mr_stream_in_free(struct mr_stream_in *in);

/* Read exactly len bytes at off.  Past the end: -EIO with "truncated:
 * needed N bytes at offset 0x.., file ends at 0x..". */
int mr_source_read(const struct mr_source *src, void *buf, size_t len,
                   uint64_t off, struct mr_error *err);

#define MR_CURSOR_BUF_BYTES 4096

/*
 * Sequential reader.  Invariants: `pos` is the absolute offset of the next
 * byte; once `err` is set every read returns 0 / false and changes nothing,
 * so a decoder may read several fields and check mr_cursor_ok() once.
 */
struct mr_cursor {
    const struct mr_source *src;
    uint64_t pos;
    uint64_t buf_off;           /* file offset of buf[0] */
    size_t buf_len;             /* valid bytes in buf */
    struct mr_error err;
    uint8_t *ext_buf;           /* the caller's larger buffer, or NULL */
    size_t ext_cap;
    uint8_t buf[MR_CURSOR_BUF_BYTES];
};

void mr_cursor_init(struct mr_cursor *c, const struct mr_source *src,
                    uint64_t pos);

/* Read ahead `cap` bytes at a time into the caller's `buf` instead of the
 * built-in 4 KiB: for long runs of small items such as a legacy RAM
 * section, where 4 KiB would mean a read per page.  `buf` must stay valid
 * while the cursor reads; NULL goes back to the built-in buffer. */
void mr_cursor_set_buffer(struct mr_cursor *c, void *buf, size_t cap);

/* Bytes [off, off + len) if the cursor's buffer already holds them (e.g.
 * the page data behind a record header just read), else NULL. */
const uint8_t *mr_cursor_peek(const struct mr_cursor *c, uint64_t off,
                              size_t len);

static inline bool mr_cursor_ok(const struct mr_cursor *c)
{
    return !mr_error_is_set(&c->err);
}

/* Each read names the field (`what`) for the error message. */
uint8_t mr_cursor_u8(struct mr_cursor *c, const char *what);
uint16_t mr_cursor_be16(struct mr_cursor *c, const char *what);
uint32_t mr_cursor_be32(struct mr_cursor *c, const char *what);
uint64_t mr_cursor_be64(struct mr_cursor *c, const char *what);
bool mr_cursor_bytes(struct mr_cursor *c, void *out, size_t len,
                     const char *what);

/* A counted string (u8 length, bytes, no NUL).  `out` receives it
 * NUL-terminated and must hold 256 bytes.  An embedded NUL is an error. */
bool mr_cursor_string(struct mr_cursor *c, char out[256], const char *what);

/* True when no byte follows the cursor: at the size, or (a stream) when
 * the sender has closed.  May wait for the next byte of a stream. */
bool mr_cursor_at_end(struct mr_cursor *c);

/* Move to an absolute offset (allowed up to and including the end). */
bool mr_cursor_seek(struct mr_cursor *c, uint64_t pos, const char *what);
bool mr_cursor_skip(struct mr_cursor *c, uint64_t len, const char *what);

/* Record "expected <expected> at offset 0x<off>, found <found...>" (or the
 * first error if one is already recorded).  Returns the error code. */
int mr_cursor_expected(struct mr_cursor *c, uint64_t off, const char *expected,
                       const char *found_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Record a free-form error (e.g. one of QEMU's messages) and return it. */
int mr_cursor_fail(struct mr_cursor *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
