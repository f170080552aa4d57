/* Unit tests: the stream encoder, byte-exact with docs/stream-format.md, "Layout at a glance" and "Worked example". */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "format/stream_defs.h"
#include "format/stream_write.h"

/* A sparse temporary file as the sink, like the real save. */
static int file_pwrite(void *opaque, const void *buf, size_t len, uint64_t off,
                       struct mr_error *err)
{
    int fd = *(int *)opaque;

    if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
        return mr_error_set(err, -EIO, "short write");
    return 0;
}

static int open_tmp(void)
{
    char path[] = "/tmp/mr-sw-XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

static void expect_bytes(int fd, uint64_t off, const char *hex)
{
    uint8_t want[64], got[64];
    size_t n = 0;

    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        sscanf(p, "%2x", &v);
        want[n++] = (uint8_t)v;
        p += 2;
    }
    assert_int_equal(pread(fd, got, n, (off_t)off), (ssize_t)n);
    assert_memory_equal(got, want, n);
}

static void expect_text(int fd, uint64_t off, const char *text)
{
    char got[64];
    size_t n = strlen(text);

    assert_int_equal(pread(fd, got, n, (off_t)off), (ssize_t)n);
    assert_memory_equal(got, text, n);
}

static void write_example(int fd, uint64_t start, struct mr_sw_ram_block *b)
{
    struct mr_stream_sink sink = { file_pwrite, &fd };
    struct mr_stream_writer w;
    const char *caps[] = { "mapped-ram" };
    struct mr_error err = MR_ERROR_INIT;

    assert_int_equal(mr_sw_init(&w, &sink, start, &err), 0);
    mr_sw_header(&w);
    mr_sw_configuration(&w, "pc-q35-10.0", caps, 1);
    mr_sw_section_header(&w, QEMU_VM_SECTION_START, 1, "ram", 0, 4);
    mr_sw_ram_setup(&w, b, 2, true, false);
    mr_sw_ram_eos(&w);
    mr_sw_section_footer(&w, 1);
    mr_sw_section_short(&w, QEMU_VM_SECTION_PART, 1);
    mr_sw_ram_eos(&w);
    mr_sw_section_footer(&w, 1);
    mr_sw_command(&w, MIG_CMD_SWITCHOVER_START, NULL, 0);
    mr_sw_section_short(&w, QEMU_VM_SECTION_END, 1);
    mr_sw_ram_eos(&w);
    mr_sw_section_footer(&w, 1);
    mr_sw_eof(&w);
    json_t *d = json_pack("{s:i}", "page_size", 4096);
    mr_sw_vmdesc(&w, d);
    json_decref(d);
    assert_int_equal(mr_sw_flush(&w), 0);
    mr_sw_destroy(&w);
}

static void test_worked_example(void **state)
{
    struct mr_sw_ram_block b[2] = {
        { .name = "pc.ram", .used_length = 0x8000000, .page_size = 4096 },
        { .name = "pc.bios", .used_length = 0x40000, .page_size = 4096 },
    };
    int fd = open_tmp();

    (void)state;
    write_example(fd, 0, b);
    expect_bytes(fd, 0x00, "51 45 56 4d 00 00 00 03 07 00 00 00 0b");
    expect_text(fd, 0x0D, "pc-q35-10.0");
    expect_bytes(fd, 0x18, "05 1a");
    expect_text(fd, 0x1A, "configuration/capabilities");
    expect_bytes(fd, 0x34, "00 00 00 01 00 00 00 01 0a");
    expect_text(fd, 0x3D, "mapped-ram");
    expect_bytes(fd, 0x47, "01 00 00 00 01 03 72 61 6d 00 00 00 00 00 00 00 04");
    expect_bytes(fd, 0x58, "00 00 00 00 08 04 00 04 06");
    expect_text(fd, 0x61, "pc.ram");
    expect_bytes(fd, 0x67, "00 00 00 00 08 00 00 00");
    expect_bytes(fd, 0x6F, "00000001 0000000000001000 000000000000008B "
                           "0000000000100000");
    assert_int_equal(b[0].bitmap_offset, 0x8B);
    assert_int_equal(b[0].pages_offset, 0x100000);
    expect_bytes(fd, 0x8100000, "07");
    expect_text(fd, 0x8100001, "pc.bios");
    expect_bytes(fd, 0x8100008, "00 00 00 00 00 04 00 00 00000001 "
                 "0000000000001000 000000000810002C 0000000008200000");
    assert_int_equal(b[1].pages_offset, 0x8200000);
    expect_bytes(fd, 0x8240000, "00 00 00 00 00 00 00 10 7e 00 00 00 01");
    expect_bytes(fd, 0x824000D, "02 00000001 0000000000000010 7e 00000001");
    expect_bytes(fd, 0x824001F, "08 00 0b 00 00 03 00000001 0000000000000010 "
                 "7e 00000001 00 06 00 00 00 12");
    expect_text(fd, 0x824003C, "{\"page_size\":4096}");
    close(fd);
}

static void test_offset_4k(void **state)
{
    struct mr_sw_ram_block b[2] = {
        { .name = "pc.ram", .used_length = 0x8000000, .page_size = 4096 },
        { .name = "pc.bios", .used_length = 0x40000, .page_size = 4096 },
    };
    int fd = open_tmp();

    (void)state;
    write_example(fd, 0x1000, b);
    expect_bytes(fd, 0x1000, "51 45 56 4d");
    expect_bytes(fd, 0x106F, "00000001 0000000000001000 000000000000108B "
                             "0000000000100000");
    expect_bytes(fd, 0x8100000, "07");
    /* nothing before the offset was touched */
    expect_bytes(fd, 0, "00 00 00 00");
    close(fd);
}

static void test_legacy_records(void **state)
{
    int fd = open_tmp();
    struct mr_stream_sink sink = { file_pwrite, &fd };
    struct mr_stream_writer w;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t page[4096];
    struct mr_sw_ram_block b = { .name = "pc.ram", .used_length = 0x2000,
                                 .page_size = 4096 };

    (void)state;
    memset(page, 0xab, sizeof(page));
    assert_int_equal(mr_sw_init(&w, &sink, 0, &err), 0);
    mr_sw_ram_setup(&w, &b, 1, false, false);
    mr_sw_ram_page(&w, "pc.ram", 0, page, 4096);
    mr_sw_ram_zero(&w, NULL, 0x1000);
    mr_sw_ram_eos(&w);
    assert_int_equal(mr_sw_flush(&w), 0);
    expect_bytes(fd, 0, "0000000000002004 06");
    expect_text(fd, 9, "pc.ram");
    expect_bytes(fd, 15, "0000000000002000 0000000000000008 06");
    expect_bytes(fd, 38 + 4096, "0000000000001022 00 0000000000000010");
    expect_bytes(fd, 38, "ab ab ab ab");
    mr_sw_destroy(&w);
    close(fd);
}

static int failing_pwrite(void *opaque, const void *buf, size_t len,
                          uint64_t off, struct mr_error *err)
{
    (void)opaque, (void)buf, (void)len, (void)off;
    return mr_error_set(err, -ENOSPC, "Unable to write to file: %s",
                        strerror(ENOSPC));
}

static void test_sticky_error(void **state)
{
    struct mr_stream_sink sink = { failing_pwrite, NULL };
    struct mr_stream_writer w;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    assert_int_equal(mr_sw_init(&w, &sink, 0, &err), 0);
    mr_sw_header(&w);
    assert_int_equal(mr_sw_flush(&w), -ENOSPC);
    mr_sw_put_be64(&w, 1);
    assert_int_equal(w.len, 8); /* dropped, not appended */
    assert_int_equal(mr_sw_flush(&w), -ENOSPC);
    assert_string_equal(w.err.msg, "Unable to write to file: No space left on "
                        "device");
    mr_sw_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_offset_4k),
        cmocka_unit_test(test_legacy_records),
        cmocka_unit_test(test_sticky_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
