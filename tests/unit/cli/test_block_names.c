/* Unit tests for extract --all's block-to-file names (src/cli/block_names.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "block_names.h"

static struct block_file_name out[64];

static void map(const char *const *ids, size_t n)
{
    struct mr_error err = MR_ERROR_INIT;

    memset(out, 0, sizeof(out));
    assert_int_equal(block_file_names(ids, n, out, &err), 0);
}

/* Every name distinct, a single component, within NAME_MAX. */
static void assert_injective(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_true(strlen(out[i].file) <= NAME_MAX);
        assert_null(strchr(out[i].file, '/'));
        assert_true(out[i].file[0] != '.');
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(out[i].file, out[j].file);
    }
}

static void test_plain_names_kept(void **state)
{
    const char *ids[] = { "pc.ram", "/rom@etc/acpi/tables", "pc.bios" };

    (void)state;
    map(ids, 3);
    assert_string_equal(out[0].file, "pc.ram.img");
    assert_string_equal(out[1].file, "rom@etc_acpi_tables.img");
    assert_string_equal(out[2].file, "pc.bios.img");
    for (int i = 0; i < 3; i++)
        assert_int_equal(out[i].kind, BLOCK_NAME_PLAIN);
}

static void test_collision_gets_suffix(void **state)
{
    const char *ids[] = { "a/b", "a_b" };
    const char *rev[] = { "a_b", "a/b" };
    char first[NAME_MAX + 1];

    (void)state;
    map(ids, 2);
    assert_injective(2);
    /* the block whose name needs no change keeps it */
    assert_string_equal(out[1].file, "a_b.img");
    assert_int_equal(out[0].kind, BLOCK_NAME_SUFFIXED);
    assert_int_equal(strncmp(out[0].file, "a_b~", 4), 0);
    snprintf(first, sizeof(first), "%s", out[0].file);
    /* stable: the same name whatever the order of the blocks */
    map(rev, 2);
    assert_string_equal(out[0].file, "a_b.img");
    assert_string_equal(out[1].file, first);
}

static void test_two_changed_names_collide(void **state)
{
    const char *ids[] = { "a/b", "a?b", "a b" };

    (void)state;
    map(ids, 3);
    assert_injective(3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(out[i].kind, BLOCK_NAME_SUFFIXED);
}

static void test_suffix_taken_by_a_literal_name(void **state)
{
    const char *ids[] = { "a/b", "a_b", "x" };
    char literal[NAME_MAX + 1];

    (void)state;
    map(ids, 2);
    /* a block literally named like a/b's suffixed file */
    snprintf(literal, sizeof(literal), "%.*s", (int)(strlen(out[0].file) - 4),
             out[0].file);
    ids[2] = literal;
    map(ids, 3);
    assert_injective(3);
    assert_string_equal(out[1].file, "a_b.img");
    assert_int_equal(strlen(out[2].file), strlen(literal) + 4);
}

static void test_duplicate_names(void **state)
{
    const char *ids[] = { "mem", "mem", "mem" };

    (void)state;
    map(ids, 3);
    assert_injective(3);
    assert_string_equal(out[0].file, "mem.img");
}

static void test_longest_name_fits(void **state)
{
    char a[256], b[256];
    const char *ids[] = { a, b };

    (void)state;
    memset(a, 'x', 255);
    a[255] = '\0';
    memcpy(b, a, sizeof(b));
    b[254] = 'y';               /* differs only past the cut */
    map(ids, 2);
    assert_injective(2);
    assert_int_equal(out[0].kind, BLOCK_NAME_SHORTENED);
    assert_int_equal(out[1].kind, BLOCK_NAME_SHORTENED);
    assert_int_equal(strlen(out[0].file), NAME_MAX);
}

static void test_exactly_name_max(void **state)
{
    char a[256];
    const char *ids[] = { a };

    (void)state;
    memset(a, 'x', NAME_MAX - 4);
    a[NAME_MAX - 4] = '\0';
    map(ids, 1);
    assert_int_equal(out[0].kind, BLOCK_NAME_PLAIN);
    assert_int_equal(strlen(out[0].file), NAME_MAX);
    a[NAME_MAX - 4] = 'x';
    a[NAME_MAX - 3] = '\0';
    map(ids, 1);
    assert_int_equal(out[0].kind, BLOCK_NAME_SHORTENED);
}

static void test_many_collisions(void **state)
{
    static char names[64][8];
    const char *ids[64];

    (void)state;
    for (int i = 0; i < 64; i++) {
        snprintf(names[i], sizeof(names[i]), "m%c", i < 32 ? 1 + i : 160 + i);
        ids[i] = names[i];      /* all sanitize to "m_" */
    }
    map(ids, 64);
    assert_injective(64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_names_kept),
        cmocka_unit_test(test_collision_gets_suffix),
        cmocka_unit_test(test_two_changed_names_collide),
        cmocka_unit_test(test_suffix_taken_by_a_literal_name),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_longest_name_fits),
        cmocka_unit_test(test_exactly_name_max),
        cmocka_unit_test(test_many_collisions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
