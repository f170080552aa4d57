/* Unit tests for the streaming JSON scanner (src/lib/qmp/json_stream.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qmp/json_stream.h"

#define MAX_ITEMS 16

struct collected {
    int n;
    char *text[MAX_ITEMS]; /* compact dump of each value, or the error */
};

static void collect_free(struct collected *c)
{
    int i;

    for (i = 0; i < c->n; i++)
        free(c->text[i]);
    c->n = 0;
}

static void add_item(struct collected *c, struct mr_json_item *item)
{
    assert_true(c->n < MAX_ITEMS);
    if (item->kind == MR_JSON_VALUE) {
        c->text[c->n++] = json_dumps(item->value, JSON_COMPACT |
                                     JSON_ENCODE_ANY);
        json_decref(item->value);
    } else {
        c->text[c->n++] = strdup(item->error);
    }
}

/* Feed `data` in pieces of `piece` bytes. */
static void feed(struct mr_json_stream *st, const char *data, size_t len,
                 size_t piece, struct collected *c)
{
    struct mr_json_item item;
    size_t off = 0;

    while (off < len) {
        size_t n = len - off < piece ? len - off : piece, used = 0;

        while (used < n) {
            used += mr_json_stream_feed(st, data + off + used, n - used, &item);
            if (item.kind != MR_JSON_NONE)
                add_item(c, &item);
        }
        off += n;
    }
}

static void several_objects_per_line(void **state)
{
    const char *in = "{\"a\":1} {\"b\":[1,2]}{\"c\":\"}\"}\n";
    struct mr_json_stream st;
    struct collected c = { 0 };

    (void)state;
    mr_json_stream_init(&st, 0);
    feed(&st, in, strlen(in), strlen(in), &c);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.text[0], "{\"a\":1}");
    assert_string_equal(c.text[1], "{\"b\":[1,2]}");
    assert_string_equal(c.text[2], "{\"c\":\"}\"}");
    assert_true(mr_json_stream_idle(&st));
    collect_free(&c);
    mr_json_stream_destroy(&st);
}

static void objects_split_at_every_byte(void **state)
{
    const char *in = "{\"execute\": \"x\\\"{[\", \"arguments\": {\"k\": [1, "
                     "{\"z\": null}]}}\r\n{\"id\": 2}";
    struct mr_json_stream st;
    struct collected c = { 0 };

    (void)state;
    mr_json_stream_init(&st, 0);
    feed(&st, in, strlen(in), 1, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.text[0], "{\"execute\":\"x\\\"{[\",\"arguments\":"
                                   "{\"k\":[1,{\"z\":null}]}}");
    assert_string_equal(c.text[1], "{\"id\":2}");
    collect_free(&c);
    mr_json_stream_destroy(&st);
}

static void single_quotes_are_rewritten(void **state)
{
    const char *in = "{'execute': 'it\\'s \"q\"', \"x\": \"a\\'b\"}";
    struct mr_json_stream st;
    struct collected c = { 0 };

    (void)state;
    mr_json_stream_init(&st, 0);
    feed(&st, in, strlen(in), 3, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.text[0],
                        "{\"execute\":\"it's \\\"q\\\"\",\"x\":\"a'b\"}");
    collect_free(&c);
    mr_json_stream_destroy(&st);
}

static void scalars_and_garbage(void **state)
{
    const char *in = "42 garbage}\"s\" {\"ok\":true}";
    struct mr_json_stream st;
    struct collected c = { 0 };

    (void)state;
    mr_json_stream_init(&st, 0);
    feed(&st, in, strlen(in), strlen(in), &c);
    assert_int_equal(c.n, 5);
    assert_string_equal(c.text[0], "42");
    assert_string_equal(c.text[1],
                        "JSON parse error, invalid token near 'garbage'");
    assert_memory_equal(c.text[2], "JSON parse error, ", 18);
    assert_string_equal(c.text[3], "\"s\"");
    assert_string_equal(c.text[4], "{\"ok\":true}");
    collect_free(&c);
    mr_json_stream_destroy(&st);
}

static void invalid_utf8_is_a_parse_error(void **state)
{
    const char in[] = "{\"a\": \"\xff\xfe\"} {\"b\": 1}";
    struct mr_json_stream st;
    struct collected c = { 0 };

    (void)state;
    mr_json_stream_init(&st, 0);
    feed(&st, in, sizeof(in) - 1, 5, &c);
    assert_int_equal(c.n, 2);
    assert_memory_equal(c.text[0], "JSON parse error, ", 18);
    assert_string_equal(c.text[1], "{\"b\":1}");
    collect_free(&c);
    mr_json_stream_destroy(&st);
}

static void oversize_value_resyncs_at_newline(void **state)
{
    size_t big = 5000;
    char *in = malloc(big + 64);
    struct mr_json_stream st;
    struct collected c = { 0 };
    size_t n;

    (void)state;
    memcpy(in, "{\"a\": \"", 7);
    memset(in + 7, 'x', big);
    n = 7 + big;
    n += (size_t)sprintf(in + n, "\"}} ]\n{\"b\": 2}");
    mr_json_stream_init(&st, 1024);
    feed(&st, in, n, 100, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.text[0],
                        "JSON token size limit exceeded");
    assert_string_equal(c.text[1], "{\"b\":2}");
    assert_true(st.cap <= 1024);
    collect_free(&c);
    mr_json_stream_destroy(&st);
    free(in);
}

static void huge_line_without_newline_stays_bounded(void **state)
{
    char chunk[65536];
    struct mr_json_stream st;
    struct collected c = { 0 };
    int i;

    (void)state;
    memset(chunk, 'a', sizeof(chunk));
    mr_json_stream_init(&st, 1u << 20);
    for (i = 0; i < 64; i++) /* 4 MiB of one token */
        feed(&st, chunk, sizeof(chunk), sizeof(chunk), &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.text[0],
                        "JSON token size limit exceeded");
    assert_true(st.cap <= (1u << 20));
    feed(&st, "\n[1]", 4, 4, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.text[1], "[1]");
    collect_free(&c);
    mr_json_stream_destroy(&st);
}

static void deep_nesting_is_refused(void **state)
{
    size_t depth = MR_JSON_MAX_DEPTH + 10, i;
    char *in = malloc(depth * 2 + 16);
    struct mr_json_stream st;
    struct collected c = { 0 };
    size_t n = 0;

    (void)state;
    for (i = 0; i < depth; i++)
        in[n++] = '[';
    for (i = 0; i < depth; i++)
        in[n++] = ']';
    n += (size_t)sprintf(in + n, "\n{}");
    mr_json_stream_init(&st, 0);
    feed(&st, in, n, 7, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.text[0],
                        "JSON nesting depth limit exceeded");
    assert_string_equal(c.text[1], "{}");
    collect_free(&c);
    mr_json_stream_destroy(&st);
    free(in);
}

static void finish_completes_scalar_or_reports(void **state)
{
    struct mr_json_stream st;
    struct collected c = { 0 };
    struct mr_json_item item;

    (void)state;
    mr_json_stream_init(&st, 0);
    feed(&st, "17", 2, 2, &c);
    assert_int_equal(c.n, 0);
    assert_false(mr_json_stream_idle(&st));
    mr_json_stream_finish(&st, &item);
    add_item(&c, &item);
    assert_string_equal(c.text[0], "17");
    feed(&st, "{\"a\":", 5, 5, &c);
    mr_json_stream_finish(&st, &item);
    add_item(&c, &item);
    assert_string_equal(c.text[1], "JSON parse error, premature end of input");
    assert_true(mr_json_stream_idle(&st));
    collect_free(&c);
    mr_json_stream_destroy(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(several_objects_per_line),
        cmocka_unit_test(objects_split_at_every_byte),
        cmocka_unit_test(single_quotes_are_rewritten),
        cmocka_unit_test(scalars_and_garbage),
        cmocka_unit_test(invalid_utf8_is_a_parse_error),
        cmocka_unit_test(oversize_value_resyncs_at_newline),
        cmocka_unit_test(huge_line_without_newline_stays_bounded),
        cmocka_unit_test(deep_nesting_is_refused),
        cmocka_unit_test(finish_completes_scalar_or_reports),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
