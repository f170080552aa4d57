/* Unit tests for the progress formatting (src/cli/progress.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "progress.h"

static void test_humanise(void **state)
{
    char b[32];

    (void)state;
    progress_humanise_bytes(b, sizeof(b), 0);
    assert_string_equal(b, "0 B");
    progress_humanise_bytes(b, sizeof(b), 1023);
    assert_string_equal(b, "1023 B");
    progress_humanise_bytes(b, sizeof(b), 4096);
    assert_string_equal(b, "4.00 KiB");
    progress_humanise_bytes(b, sizeof(b), 3ull << 29);
    assert_string_equal(b, "1.50 GiB");
    progress_humanise_bytes(b, sizeof(b), 700ull << 20);
    assert_string_equal(b, "700.0 MiB");
}

static void test_eta(void **state)
{
    char b[16];

    (void)state;
    progress_format_eta(b, sizeof(b), -1);
    assert_string_equal(b, "?");
    progress_format_eta(b, sizeof(b), 7.4);
    assert_string_equal(b, "0:07");
    progress_format_eta(b, sizeof(b), 3723);
    assert_string_equal(b, "1:02:03");
}

static const struct progress_sample half = {
    .op = "save", .status = "active", .total_bytes = 4ull << 30,
    .remaining_bytes = 2ull << 30, .written_bytes = 1ull << 30,
    .elapsed_s = 2.0,
};

static void test_math(void **state)
{
    struct progress_sample s = half;

    (void)state;
    assert_int_equal(progress_percent(&s), 50);
    assert_true(progress_rate(&s) == (double)(1ull << 29));
    assert_true(progress_eta_s(&s) == 2.0);
    s.status = "completed";
    assert_int_equal(progress_percent(&s), 100);
    s.total_bytes = 0;                           /* destination: no counts */
    assert_int_equal(progress_percent(&s), -1);
    assert_true(progress_eta_s(&s) < 0);
    s = half;
    s.remaining_bytes = s.total_bytes + 1;       /* nothing done yet */
    assert_int_equal(progress_percent(&s), 0);
    assert_true(progress_eta_s(&s) < 0);
    s.elapsed_s = 0;
    assert_true(progress_rate(&s) == 0);
}

static void test_renderings(void **state)
{
    struct progress_sample s = half;
    char b[256];
    char *json;

    (void)state;
    progress_format_bar(b, sizeof(b), &s, 10);
    assert_string_equal(b, "save [#####.....]  50% 1.00 GiB 512.0 MiB/s ETA 0:02");
    progress_format_plain(b, sizeof(b), &s);
    assert_string_equal(b, "save: active 50% of 4.00 GiB RAM, 1.00 GiB written, "
                        "512.0 MiB/s, ETA 0:02");
    json = progress_format_json(&s);
    assert_non_null(json);
    assert_string_equal(json, "{\"event\":\"progress\",\"op\":\"save\","
                        "\"status\":\"active\",\"elapsed_s\":2.0,"
                        "\"total_bytes\":4294967296,\"remaining_bytes\":2147483648,"
                        "\"written_bytes\":1073741824,\"rate_bps\":536870912.0,"
                        "\"percent\":50,\"eta_s\":2.0}");
    free(json);
    s.op = "restore";
    s.total_bytes = 0;
    progress_format_plain(b, sizeof(b), &s);
    assert_string_equal(b, "restore: active after 2.0 s");
}

static void test_report_throttles_plain_lines(void **state)
{
    struct progress p;
    struct progress_sample s = half;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    (void)state;
    progress_init(&p, PROGRESS_PLAIN, out);
    progress_report(&p, &s, false);              /* printed */
    s.elapsed_s = 2.5;
    progress_report(&p, &s, false);              /* too soon: skipped */
    s.status = "completed";
    progress_report(&p, &s, true);               /* final: always */
    fclose(out);
    assert_non_null(strstr(buf, "save: active 50%"));
    assert_non_null(strstr(buf, "save: completed 100%"));
    assert_int_equal(strchr(strchr(buf, '\n') + 1, '\n') - buf + 1, (long)len);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_humanise),
        cmocka_unit_test(test_eta),
        cmocka_unit_test(test_math),
        cmocka_unit_test(test_renderings),
        cmocka_unit_test(test_report_throttles_plain_lines),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
