/* Unit tests for QMP argument rules (src/lib/qmp/args.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "qmp/qmp_internal.h"

static const struct mr_qmp_arg rules[] = {
    { "name", MR_QMP_T_STR, false },
    { "tls", MR_QMP_T_STR_OR_NULL, true },
    { "flag", MR_QMP_T_BOOL, true },
    { "count", MR_QMP_T_INT, true },
    { "u8", MR_QMP_T_UINT8, true },
    { "u16", MR_QMP_T_UINT16, true },
    { "u32", MR_QMP_T_UINT32, true },
    { "u64", MR_QMP_T_UINT64, true },
    { "num", MR_QMP_T_NUMBER, true },
    { "obj", MR_QMP_T_OBJECT, true },
    { "arr", MR_QMP_T_ARRAY, true },
    { "any", MR_QMP_T_ANY, true },
    { NULL },
};

/* The message for `json` against `rules`, or "" when accepted. */
static const char *check(const struct mr_qmp_arg *r, const char *json)
{
    static struct mr_error err;
    json_t *args = json_loads(json, 0, NULL);
    int rc;

    assert_non_null(args);
    mr_error_clear(&err);
    rc = mr_qmp_args_check(r, args, &err);
    json_decref(args);
    assert_int_equal(rc < 0, mr_error_is_set(&err));
    return err.msg;
}

static void accepts_valid_arguments(void **state)
{
    (void)state;
    assert_string_equal(check(rules, "{\"name\": \"x\"}"), "");
    assert_string_equal(check(rules,
        "{\"name\": \"x\", \"tls\": null, \"flag\": false, \"count\": -5,"
        " \"u8\": 255, \"u16\": 65535, \"u32\": 4294967295,"
        " \"u64\": 9223372036854775807, \"num\": 1.5, \"obj\": {},"
        " \"arr\": [], \"any\": [1]}"), "");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"num\": 3}"), "");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"tls\": \"t\"}"), "");
}

static void missing_and_unexpected(void **state)
{
    (void)state;
    assert_string_equal(check(rules, "{}"), "Parameter 'name' is missing");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"bogus\": 1}"),
                        "Parameter 'bogus' is unexpected");
    /* Members are checked before unknown keys, in table order. */
    assert_string_equal(check(rules, "{\"bogus\": 1, \"count\": \"x\","
                                     " \"name\": \"n\"}"),
                        "Invalid parameter type for 'count', expected: integer");
    assert_string_equal(check(NULL, "{\"a\": 1}"), "Parameter 'a' is unexpected");
    assert_string_equal(check(NULL, "{}"), "");
}

static void type_messages(void **state)
{
    (void)state;
    assert_string_equal(check(rules, "{\"name\": 1}"),
                        "Invalid parameter type for 'name', expected: string");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"flag\": 1}"),
                        "Invalid parameter type for 'flag', expected: boolean");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"count\": 1.5}"),
                        "Invalid parameter type for 'count', expected: integer");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"num\": \"1\"}"),
                        "Invalid parameter type for 'num', expected: number");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"obj\": []}"),
                        "Invalid parameter type for 'obj', expected: object");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"arr\": {}}"),
                        "Invalid parameter type for 'arr', expected: array");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"tls\": 3}"),
                        "Invalid parameter type for 'tls', expected: StrOrNull");
    assert_string_equal(check(rules, "{\"name\": null}"),
                        "Invalid parameter type for 'name', expected: string");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"u8\": true}"),
                        "Invalid parameter type for 'u8', expected: integer");
}

static void range_messages(void **state)
{
    (void)state;
    assert_string_equal(check(rules, "{\"name\": \"x\", \"u8\": 256}"),
                        "Parameter 'u8' expects uint8_t");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"u16\": 65536}"),
                        "Parameter 'u16' expects uint16_t");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"u32\": 4294967296}"),
                        "Parameter 'u32' expects uint32_t");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"u8\": -1}"),
                        "Parameter 'u8' expects uint64");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"u64\": -1}"),
                        "Parameter 'u64' expects uint64");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"u64\": \"12\"}"),
                        "Parameter 'u64' expects uint64");
    assert_string_equal(check(rules, "{\"name\": \"x\", \"u32\": 0.5}"),
                        "Parameter 'u32' expects uint64");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_valid_arguments),
        cmocka_unit_test(missing_and_unexpected),
        cmocka_unit_test(type_messages),
        cmocka_unit_test(range_messages),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
