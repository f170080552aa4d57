/* Unit tests for byte sources and the cursor (src/lib/format/source.c). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "format/source.h"

static const uint8_t data[] = {
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
    0x03, 'a', 'b', 'c', 0x02, 'x', 0x00,
};

static void integers_are_big_endian(void **state)
{
    struct mr_source src;
    struct mr_cursor c;

    (void)state;
    mr_source_init_mem(&src, data, sizeof(data));
    mr_cursor_init(&c, &src, 0);
    assert_int_equal(mr_cursor_u8(&c, "a"), 0x01);
    assert_int_equal(mr_cursor_be16(&c, "b"), 0x0203);
    assert_int_equal(mr_cursor_be32(&c, "c"), 0x04050607);
    assert_true(mr_cursor_be64(&c, "d") == 0x08090a0b0c0d0e0fULL);
    assert_true(mr_cursor_ok(&c));
    assert_int_equal(c.pos, 15);
}

static void counted_string_and_embedded_nul(void **state)
{
    struct mr_source src;
    struct mr_cursor c;
    char s[256];

    (void)state;
    mr_source_init_mem(&src, data, sizeof(data));
    mr_cursor_init(&c, &src, 16);
    assert_true(mr_cursor_string(&c, s, "name"));
    assert_string_equal(s, "abc");
    assert_false(mr_cursor_string(&c, s, "block name"));
    assert_string_equal(c.err.msg, "expected block name at offset 0x14, found "
                        "a NUL byte inside the 2-byte name at offset 0x16");
}

static void truncation_is_an_error_with_offsets(void **state)
{
    struct mr_source src;
    struct mr_cursor c;

    (void)state;
    mr_source_init_mem(&src, data, sizeof(data));
    mr_cursor_init(&c, &src, 20);
    assert_int_equal(mr_cursor_be64(&c, "RAM record"), 0);
    assert_false(mr_cursor_ok(&c));
    assert_int_equal(c.err.code, -EIO);
    assert_string_equal(c.err.msg, "truncated: needed 4 bytes for RAM record "
                        "at offset 0x14, file ends at 0x17");
    /* Sticky: later reads do nothing and keep the first message. */
    assert_int_equal(mr_cursor_u8(&c, "x"), 0);
    assert_int_equal(c.pos, 20);
    assert_string_equal(c.err.msg, "truncated: needed 4 bytes for RAM record "
                        "at offset 0x14, file ends at 0x17");
}

static void skip_and_seek_are_bounded(void **state)
{
    struct mr_source src;
    struct mr_cursor c;

    (void)state;
    mr_source_init_mem(&src, data, sizeof(data));
    mr_cursor_init(&c, &src, 0);
    assert_true(mr_cursor_skip(&c, sizeof(data), "all"));
    assert_true(mr_cursor_seek(&c, 3, "back"));
    assert_false(mr_cursor_skip(&c, UINT64_MAX, "pages"));
    assert_string_equal(c.err.msg, "truncated: needed 18446744073709551615 "
                        "bytes for pages at offset 0x3, file ends at 0x17");
    mr_cursor_init(&c, &src, 0);
    assert_false(mr_cursor_seek(&c, 24, "next block"));
    assert_string_equal(c.err.msg, "truncated: next block at offset 0x18 is "
                        "beyond the end of the file at 0x17");
}

static void expected_message_format(void **state)
{
    struct mr_source src;
    struct mr_cursor c;

    (void)state;
    mr_source_init_mem(&src, data, sizeof(data));
    mr_cursor_init(&c, &src, 0);
    assert_int_equal(mr_cursor_expected(&c, 0x8240008, "section footer 0x7e "
                                        "for 'ram'", "0x%02x", 2), -EINVAL);
    assert_string_equal(c.err.msg, "expected section footer 0x7e for 'ram' at "
                        "offset 0x8240008, found 0x02");
}

static void source_read_bounds(void **state)
{
    struct mr_source src;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t out[8];

    (void)state;
    mr_source_init_mem(&src, data, sizeof(data));
    assert_int_equal(mr_source_read(&src, out, 3, 20, &err), 0);
    assert_memory_equal(out, data + 20, 3);
    assert_int_equal(mr_source_read(&src, out, 4, 20, &err), -EIO);
    assert_string_equal(err.msg, "truncated: needed 4 bytes at offset 0x14, "
                        "file ends at 0x17");
    mr_error_clear(&err);
    assert_int_equal(mr_source_read(&src, out, 1, UINT64_MAX, &err), -EIO);
}

static void fd_source_reads_a_file(void **state)
{
    char path[] = "/tmp/mapram-test-source-XXXXXX";
    int fd = mkostemp(path, O_CLOEXEC);
    struct mr_source src;
    struct mr_cursor c;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t big[10000];

    (void)state;
    assert_true(fd >= 0);
    unlink(path);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    assert_int_equal(write(fd, big, sizeof(big)), (ssize_t)sizeof(big));
    assert_int_equal(mr_source_init_fd(&src, fd, &err), 0);
    assert_int_equal(src.size, sizeof(big));
    /* Reads that straddle the cursor's buffer boundary. */
    mr_cursor_init(&c, &src, MR_CURSOR_BUF_BYTES - 2);
    assert_int_equal(mr_cursor_be32(&c, "x"),
                     (uint32_t)big[4094] << 24 | (uint32_t)big[4095] << 16 |
                     (uint32_t)big[4096] << 8 | big[4097]);
    {
        uint8_t copy[9000];

        mr_cursor_init(&c, &src, 100);
        assert_true(mr_cursor_bytes(&c, copy, sizeof(copy), "bulk"));
        assert_memory_equal(copy, big + 100, sizeof(copy));
    }
    close(fd);
}

/* A counting source: how many reads a cursor issues, and of what size. */
struct counted {
    const uint8_t *data;
    size_t len;
    unsigned reads;
};

static int64_t counted_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
    struct counted *c = opaque;

    c->reads++;
    if (off >= c->len)
        return 0;
    if (len > c->len - off)
        len = c->len - off;
    memcpy(buf, c->data + off, len);
    return (int64_t)len;
}

/* Page records (8-byte header + 4 KiB) read through a caller's 64 KiB
 * buffer: one read per 64 KiB, the pages peeked out of the buffer, a page
 * straddling the buffer's end not peekable, bytes() across refills. */
static void larger_buffer_and_peek(void **state)
{
    enum { PAGES = 40, REC = 8 + 4096 };
    static uint8_t file[PAGES * REC], ahead[64 << 10], page[4096];
    struct counted cnt = { file, sizeof(file), 0 };
    struct mr_source src = { counted_pread, &cnt, sizeof(file) };
    struct mr_cursor c;
    unsigned peeked = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(file); i++)
        file[i] = (uint8_t)(i * 7 + i / REC);
    mr_cursor_init(&c, &src, 0);
    mr_cursor_set_buffer(&c, ahead, sizeof(ahead));
    for (unsigned p = 0; p < PAGES; p++) {
        uint64_t data_off = (uint64_t)p * REC + 8;
        const uint8_t *d;

        assert_int_equal(mr_cursor_be64(&c, "header"),
                         (uint64_t)file[p * REC] << 56 |
                         (uint64_t)file[p * REC + 1] << 48 |
                         (uint64_t)file[p * REC + 2] << 40 |
                         (uint64_t)file[p * REC + 3] << 32 |
                         (uint64_t)file[p * REC + 4] << 24 |
                         (uint64_t)file[p * REC + 5] << 16 |
                         (uint64_t)file[p * REC + 6] << 8 | file[p * REC + 7]);
        d = mr_cursor_peek(&c, data_off, 4096);
        if (d) {
            assert_memory_equal(d, file + data_off, 4096);
            peeked++;
        }
        assert_true(mr_cursor_skip(&c, 4096, "page"));
    }
    /* 40 records = 160 KiB: three 64 KiB reads, at most one page per
     * refill straddles an edge and must be read by the caller. */
    assert_int_equal(cnt.reads, 3);
    assert_true(peeked >= PAGES - 3);
    assert_null(mr_cursor_peek(&c, 0, 16));          /* long gone */
    /* bytes() larger than the buffer, from the start again */
    assert_true(mr_cursor_seek(&c, 100, "start"));
    mr_cursor_set_buffer(&c, NULL, 0);
    assert_true(mr_cursor_bytes(&c, page, sizeof(page), "page"));
    assert_memory_equal(page, file + 100, sizeof(page));
    assert_true(mr_cursor_ok(&c));
}

/* A sender that hands out 1..7 bytes per read, then closes. */
struct dribble {
    const uint8_t *data;
    size_t len, pos;
    unsigned calls;
};

static int64_t dribble_read(void *opaque, void *buf, size_t len)
{
    struct dribble *d = opaque;
    size_t n = 1 + d->calls++ % 7;

    if (n > len)
        n = len;
    if (n > d->len - d->pos)
        n = d->len - d->pos;
    memcpy(buf, d->data + d->pos, n);
    d->pos += n;
    return (int64_t)n;
}

static void stream_source_reads_forward(void **state)
{
    enum { N = 9 << 20 };  /* more than two windows */
    uint8_t *bytes = malloc(N), *big = malloc(1 << 20), out[16];
    struct dribble d = { bytes, N, 0, 0 };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_stream_in in;
    struct mr_source src;
    struct mr_cursor c;

    (void)state;
    for (size_t i = 0; i < N; i++)
        bytes[i] = (uint8_t)(i * 7 + (i >> 16));
    assert_int_equal(mr_source_init_stream(&src, &in, dribble_read, &d, 0,
                                           &err), 0);
    assert_true(src.stream);
    mr_cursor_init(&c, &src, 0);
    mr_cursor_set_buffer(&c, big, 1 << 20);
    /* Small reads never wait for a whole buffer: 1 byte arrives, 1 is used. */
    assert_int_equal(mr_cursor_u8(&c, "first"), bytes[0]);
    assert_int_equal(mr_cursor_be32(&c, "next"),
                     (uint32_t)bytes[1] << 24 | bytes[2] << 16 | bytes[3] << 8 |
                     bytes[4]);
    /* Stepping back a little (a subsection probe) is served. */
    assert_true(mr_cursor_seek(&c, 1, "back"));
    assert_int_equal(mr_cursor_u8(&c, "again"), bytes[1]);
    /* A far skip reads through; the bytes there are the sender's. */
    assert_true(mr_cursor_skip(&c, (6 << 20) - 2, "skip"));
    assert_true(mr_cursor_bytes(&c, out, sizeof(out), "after"));
    assert_memory_equal(out, bytes + (6 << 20), sizeof(out));
    /* Direct reads just behind the newest byte work; far behind do not. */
    assert_int_equal(mr_source_read(&src, out, 8, (6 << 20) + 4, &err), 0);
    assert_memory_equal(out, bytes + (6 << 20) + 4, 8);
    assert_int_equal(mr_source_read(&src, out, 8, 10, &err), -ESPIPE);
    mr_error_clear(&err);
    assert_false(mr_cursor_at_end(&c));
    assert_true(mr_cursor_skip(&c, N - c.pos, "to the end"));
    assert_true(mr_cursor_at_end(&c));
    /* Past the end: the stream's own message. */
    mr_cursor_u8(&c, "beyond");
    assert_false(mr_cursor_ok(&c));
    assert_non_null(strstr(c.err.msg, "truncated: the stream ended early"));
    mr_stream_in_free(&in);
    free(big);
    free(bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(integers_are_big_endian),
        cmocka_unit_test(counted_string_and_embedded_nul),
        cmocka_unit_test(truncation_is_an_error_with_offsets),
        cmocka_unit_test(skip_and_seek_are_bounded),
        cmocka_unit_test(expected_message_format),
        cmocka_unit_test(source_read_bounds),
        cmocka_unit_test(fd_source_reads_a_file),
        cmocka_unit_test(larger_buffer_and_peek),
        cmocka_unit_test(stream_source_reads_forward),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
