/* Unit tests for the mapped-ram layout rules (src/lib/format/layout.c):
 * one entry at a time, each rule broken on its own. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "format/layout.h"

#define PS 4096ULL
#define MIB (1ULL << 20)
#define FILE_SIZE (64 * MIB)

/* A block as QEMU lays it out: name at `at`, header after the name and
 * length, bitmap right after the header, pages at the next MiB. */
static struct mr_ram_block_entry qemu_block(const char *name, uint64_t at,
                                            uint64_t pages)
{
    struct mr_ram_block_entry e = { 0 };

    strcpy(e.idstr, name);
    e.offset = at;
    e.used_length = pages * PS;
    e.header_offset = at + 1 + strlen(name) + 8;
    e.page_size = PS;
    e.bitmap_offset = e.header_offset + 28;
    e.pages_offset = (e.bitmap_offset + (pages + 63) / 64 * 8 + MIB - 1) /
                     MIB * MIB;
    return e;
}

static int add(struct mr_layout *l, const struct mr_ram_block_entry *e,
               struct mr_error *err)
{
    mr_error_clear(err);
    return mr_layout_add(l, e, FILE_SIZE, err);
}

static void qemu_layout_passes(void **state)
{
    struct mr_layout l = { 0 };
    struct mr_error err;
    struct mr_ram_block_entry a = qemu_block("pc.ram", 0x60, 2048);
    struct mr_ram_block_entry b = qemu_block("pc.rom", a.pages_offset +
                                             a.used_length, 32);

    (void)state;
    assert_int_equal(add(&l, &a, &err), 0);
    assert_int_equal(add(&l, &b, &err), 0);
    assert_int_equal(l.nr, 2);
    mr_layout_free(&l);
}

static void bitmap_inside_own_pages(void **state)
{
    struct mr_layout l = { 0 };
    struct mr_error err;
    struct mr_ram_block_entry a = qemu_block("pc.ram", 0x60, 2048);

    (void)state;
    a.bitmap_offset = a.pages_offset + 0x10000;
    assert_int_equal(add(&l, &a, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "expected page regions that do not "
                           "overlap at offset 0x"));
    assert_non_null(strstr(err.msg, "found pages of 'pc.ram' [0x100000, "
                           "0x900000) overlapping the bitmap of 'pc.ram' "
                           "[0x110000, 0x110100)"));
    assert_int_equal(l.nr, 0);
    mr_layout_free(&l);
}

static void pages_before_own_header(void **state)
{
    struct mr_layout l = { 0 };
    struct mr_error err;
    struct mr_ram_block_entry a = qemu_block("a", 2 * MIB, 1);

    (void)state;
    a.pages_offset = MIB;       /* in front of the name, overlapping none */
    assert_int_equal(add(&l, &a, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "expected the pages of 'a' after its "
                           "header and bitmap (at or after 0x20002e)"));
    assert_non_null(strstr(err.msg, "found 0x100000"));
    mr_layout_free(&l);
}

static void pages_over_another_block(void **state)
{
    struct mr_layout l = { 0 };
    struct mr_error err;
    struct mr_ram_block_entry a = qemu_block("a", 0x60, 256);
    struct mr_ram_block_entry b = qemu_block("b", a.pages_offset +
                                             a.used_length, 1);
    struct mr_ram_block_entry c;

    (void)state;
    assert_int_equal(add(&l, &a, &err), 0);
    c = b;
    c.bitmap_offset = a.pages_offset + PS;  /* b's bitmap in a's pages */
    assert_int_equal(add(&l, &c, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "found pages of 'a' [0x100000, "
                           "0x200000) overlapping the bitmap of 'b'"));
    c = b;
    c.pages_offset = a.pages_offset;        /* b's pages on a's */
    assert_int_equal(add(&l, &c, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "found pages of 'b'"));
    assert_non_null(strstr(err.msg, "overlapping the pages of 'a'"));
    assert_int_equal(add(&l, &b, &err), 0);
    mr_layout_free(&l);
}

static void outside_the_file(void **state)
{
    struct mr_layout l = { 0 };
    struct mr_error err;
    struct mr_ram_block_entry a = qemu_block("a", 0x60, 16);

    (void)state;
    a.bitmap_offset = FILE_SIZE - 4;
    assert_int_equal(add(&l, &a, &err), -EINVAL);
    assert_string_equal(err.msg, "RAM block a: bitmap of 0x8 bytes at "
                        "0x3fffffc lies beyond the end of the file "
                        "(0x4000000)");
    a = qemu_block("a", 0x60, 16);
    a.pages_offset = UINT64_MAX - PS;
    assert_int_equal(add(&l, &a, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "RAM block a: pages of 0x10000 bytes"));
    mr_layout_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(qemu_layout_passes),
        cmocka_unit_test(bitmap_inside_own_pages),
        cmocka_unit_test(pages_before_own_header),
        cmocka_unit_test(pages_over_another_block),
        cmocka_unit_test(outside_the_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
