/* Unit tests for the VMDESCRIPTION scanner and one-entry-at-a-time
 * device lookup (src/lib/format/vmdesc.c), on JSON texts in memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "format/vmdesc.h"

static struct mr_source src;

static int open_text(const char *text, struct mr_vmdesc *d,
                     struct mr_error *err)
{
    mr_source_init_mem(&src, text, strlen(text));
    mr_error_clear(err);
    return mr_vmdesc_open(&src, 0, (uint32_t)strlen(text), d, err);
}

static void keys_and_devices(void **state)
{
    struct mr_vmdesc d;
    struct mr_error err;

    (void)state;
    assert_int_equal(open_text(" {\"page_size\": 4096, \"devices\": [ 1, "
                               "{\"name\":\"b\",\"instance_id\":0}, \"x\", "
                               "{\"name\":\"a\",\"instance_id\":1}],"
                               "\"ch\\u0065cksums\": {\"x\": [true, null]}} ",
                               &d, &err), 0);
    assert_int_equal(d.nr_devices, 4);
    assert_true(mr_vmdesc_has_key(&d, "page_size"));
    assert_true(mr_vmdesc_has_key(&d, "checksums"));    /* escape decoded */
    assert_false(mr_vmdesc_has_key(&d, "x"));           /* not top-level */
    mr_vmdesc_close(&d);
    assert_false(mr_vmdesc_has_key(&d, "page_size"));   /* closed */
}

static void devices_in_order(void **state)
{
    struct mr_vmdesc d;
    struct mr_error err;
    json_t *dev;

    (void)state;
    assert_int_equal(open_text("{\"devices\":[{\"name\":\"a\",\"instance_id\""
                               ":0},{\"name\":\"b\",\"instance_id\":0},"
                               "{\"name\":\"a\",\"instance_id\":1,\"f\":7}]}",
                               &d, &err), 0);
    dev = mr_vmdesc_next_device(&d, "a", 1, &err);      /* passes a0, b0 */
    assert_non_null(dev);
    assert_int_equal(json_integer_value(json_object_get(dev, "f")), 7);
    json_decref(dev);
    assert_null(mr_vmdesc_next_device(&d, "b", 0, &err));
    assert_false(mr_error_is_set(&err));
    mr_vmdesc_close(&d);
    assert_int_equal(open_text("{\"page_size\":1}", &d, &err), 0);
    assert_int_equal(d.nr_devices, 0);
    assert_null(mr_vmdesc_next_device(&d, "a", 0, &err));
    mr_vmdesc_close(&d);
}

static void expect_invalid(const char *text, const char *why)
{
    struct mr_vmdesc d;
    struct mr_error err;

    assert_int_equal(open_text(text, &d, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "expected VMDESCRIPTION JSON at offset "
                           "0x0, found invalid JSON at byte "));
    if (!strstr(err.msg, why))
        fail_msg("'%s': %s", text, err.msg);
    assert_null(d.text);
}

static void invalid_texts(void **state)
{
    struct mr_vmdesc d;
    struct mr_error err;
    char *deep = malloc(9001);

    (void)state;
    expect_invalid("{\"devices\": [this is not json", "invalid token");
    expect_invalid("{} x", "end of file expected");
    expect_invalid("{\"devices\":[],\"devices\":[]}", "duplicate object key");
    expect_invalid("{\"a\":\"\\u00zz\"}", "invalid \\u escape");
    expect_invalid("{\"a\":\"\\q\"}", "invalid escape");
    expect_invalid("{\"a\":\"x\ny\"}", "control character in a string");
    expect_invalid("{\"a\":01}", "',' or '}' expected");
    expect_invalid("{\"a\":-}", "invalid token");
    expect_invalid("{\"a\":1.}", "invalid number");
    expect_invalid("{\"a\":1e}", "invalid number");
    expect_invalid("{\"a\":[1,]}", "invalid token");
    expect_invalid("{\"a\" 1}", "':' expected");
    expect_invalid("{1:2}", "string or '}' expected");
    expect_invalid("{\"a\":\"abc", "unterminated string");
    expect_invalid("", "unexpected end of input");
    memset(deep, '[', 9000);
    deep[0] = '{';
    deep[9000] = '\0';
    deep[1] = '"';
    deep[2] = 'a';
    deep[3] = '"';
    deep[4] = ':';
    expect_invalid(deep, "maximum parsing depth reached");
    free(deep);
    assert_int_equal(open_text("[1, 2]", &d, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "expected a VMDESCRIPTION JSON object "
                           "at offset 0x0, found another JSON value"));
}

/* A device entry is parsed alone and may not be arbitrarily large. */
static void big_device_refused(void **state)
{
    size_t n = MR_VMDESC_DEVICE_MAX_VALUES, len = 64 + n * 4;
    char *text = malloc(len);
    struct mr_vmdesc d;
    struct mr_error err;
    size_t at;

    (void)state;
    at = (size_t)sprintf(text, "{\"devices\":[{\"name\":\"a\",\"instance_id\""
                         ":0,\"v\":[");
    for (size_t i = 0; i < n; i++)
        at += (size_t)sprintf(text + at, "%s0", i ? "," : "");
    strcpy(text + at, "]}]}");
    assert_int_equal(open_text(text, &d, &err), 0);
    assert_null(mr_vmdesc_next_device(&d, "a", 0, &err));
    assert_int_equal(err.code, -E2BIG);
    assert_non_null(strstr(err.msg, "VMDESCRIPTION device entry at offset "
                           "0xc holds 65540 JSON values, more than the 65536 "
                           "one device may have"));
    mr_vmdesc_close(&d);
    free(text);
}

/* Entries the scanner accepts but jansson refuses are reported. */
static void entry_jansson_refuses(void **state)
{
    struct mr_vmdesc d;
    struct mr_error err;

    (void)state;
    assert_int_equal(open_text("{\"devices\":[{\"name\":\"a\",\"name\":\"b\"}]}",
                               &d, &err), 0);
    assert_null(mr_vmdesc_next_device(&d, "a", 0, &err));
    assert_int_equal(err.code, -EINVAL);
    assert_non_null(strstr(err.msg, "found invalid JSON at byte"));
    mr_vmdesc_close(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_and_devices),
        cmocka_unit_test(devices_in_order),
        cmocka_unit_test(invalid_texts),
        cmocka_unit_test(big_device_refused),
        cmocka_unit_test(entry_jansson_refuses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
