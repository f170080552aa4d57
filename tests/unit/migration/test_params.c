/* Unit tests: capabilities and parameters (docs/qmp.md, "Capabilities", "Parameters" and "HMP"). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migration/params.h"

static void test_cap_names(void **state)
{
    (void)state;
    assert_string_equal(mr_cap_name(MR_CAP_XBZRLE), "xbzrle");
    assert_string_equal(mr_cap_name(MR_CAP_MAPPED_RAM), "mapped-ram");
    assert_int_equal(MR_CAP__MAX, 22);
    assert_int_equal(mr_cap_from_name("multifd"), MR_CAP_MULTIFD);
    assert_int_equal(mr_cap_from_name("x-ignore-shared"), 14);
    assert_int_equal(mr_cap_from_name("nope"), -1);
}

static const char *caps_msg(const char *const *on, bool running)
{
    static struct mr_error err;
    struct mr_caps old = { { 0 } }, n = { { 0 } };
    struct mr_params p;

    mr_params_init(&p);
    for (int i = 0; on[i]; i++)
        n.on[mr_cap_from_name(on[i])] = true;
    mr_error_clear(&err);
    if (mr_caps_check(&old, &n, &p, running, false, &err) == 0)
        return "";
    return err.msg;
}

#define CAPS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void test_caps_check(void **state)
{
    (void)state;
    assert_string_equal(caps_msg(CAPS("mapped-ram", "multifd", "events"),
                                 false), "");
    assert_string_equal(caps_msg(CAPS("events"), true),
                        "There's a migration process in progress");
    assert_string_equal(caps_msg(CAPS("multifd", "xbzrle"), false),
                        "Multifd is not compatible with xbzrle");
    assert_string_equal(caps_msg(CAPS("mapped-ram", "xbzrle"), false),
                        "Mapped-ram migration is incompatible with xbzrle");
    assert_string_equal(caps_msg(CAPS("mapped-ram", "postcopy-ram"), false),
                        "Mapped-ram migration is incompatible with postcopy");
    assert_string_equal(caps_msg(CAPS("postcopy-ram", "multifd"), false),
                        "Postcopy is not yet compatible with multifd");
    assert_string_equal(caps_msg(CAPS("postcopy-ram", "x-ignore-shared"),
                                 false),
                        "Postcopy is not compatible with ignore-shared");
    assert_string_equal(caps_msg(CAPS("postcopy-preempt"), false),
                        "Postcopy preempt requires postcopy-ram");
    assert_string_equal(caps_msg(CAPS("switchover-ack"), false),
                        "Capability 'switchover-ack' requires capability "
                        "'return-path'");
    assert_string_equal(caps_msg(CAPS("zero-copy-send"), false),
                        "Zero copy only available for non-compressed non-TLS "
                        "multifd migration");
    assert_string_equal(caps_msg(CAPS("dirty-limit", "auto-converge"), false),
                        "dirty-limit conflicts with auto-converge either of "
                        "then available currently");
    assert_string_equal(caps_msg(CAPS("x-colo"), false),
                        "QEMU compiled without replication module can't "
                        "enable COLO");
}

static const char *params_msg(const char *json, bool mapped)
{
    static struct mr_error err;
    struct mr_params old, n;
    struct mr_caps caps = { { 0 } };
    json_t *o = json_loads(json, 0, NULL);
    int rc;

    assert_non_null(o);
    caps.on[MR_CAP_MAPPED_RAM] = mapped;
    mr_params_init(&old);
    mr_params_init(&n);
    mr_error_clear(&err);
    rc = mr_params_apply_json(&n, o, &err);
    if (!rc)
        rc = mr_params_check(&old, &n, &caps, &err);
    json_decref(o);
    mr_params_release(&n);
    return rc ? err.msg : "";
}

static void test_params_check(void **state)
{
    (void)state;
    assert_string_equal(params_msg("{\"multifd-channels\": 4}", false), "");
    assert_string_equal(params_msg("{\"multifd-channels\": 0}", false),
                        "Parameter 'multifd_channels' expects a value "
                        "between 1 and 255");
    assert_string_equal(params_msg("{\"throttle-trigger-threshold\": 0}", false),
                        "Parameter 'throttle_trigger_threshold' expects an "
                        "integer in the range of 1 to 100");
    assert_string_equal(params_msg("{\"downtime-limit\": 2000001}", false),
                        "Parameter 'downtime_limit' expects an integer in the "
                        "range of 0 to (2000 * 1000) ms");
    assert_string_equal(params_msg("{\"xbzrle-cache-size\": 5000}", false),
                        "Parameter 'xbzrle_cache_size' expects a power of two "
                        "no less than the target page size");
    assert_string_equal(params_msg("{\"max-cpu-throttle\": 10}", false),
                        "Parameter 'max_cpu_throttle' expects an integer in "
                        "the range of cpu_throttle_initial to 99");
    assert_string_equal(params_msg("{\"announce-step\": 0}", false),
                        "Parameter 'announce_step' expects a value between 0 "
                        "and 10000");
    assert_string_equal(params_msg("{\"vcpu-dirty-limit\": 0}", false),
                        "Parameter 'vcpu_dirty_limit' must be greater than "
                        "1 MB/s");
    assert_string_equal(params_msg("{\"x-vcpu-dirty-limit-period\": 0}", false),
                        "Parameter 'x-vcpu-dirty-limit-period' expects a value "
                        "between 1 and 1000");
    assert_string_equal(params_msg("{\"multifd-compression\": \"lz4\"}", false),
                        "Parameter 'multifd-compression' does not accept "
                        "value 'lz4'");
    /* Check 19 looks at the applied values, so this is accepted. */
    assert_string_equal(params_msg("{\"multifd-compression\": \"zstd\"}", true),
                        "");
    assert_string_equal(params_msg("{\"direct-io\": true, \"tls-creds\": null}",
                                   true), "");
    assert_string_equal(params_msg("{\"x-io-engine\": \"aio\"}", true),
                        "Parameter 'x-io-engine' does not accept value 'aio'");
    assert_string_equal(params_msg("{\"x-io-engine\": \"io_uring\"}", true),
                        "");
    assert_string_equal(params_msg("{\"x-lazy-granule\": 262144}", true), "");
    assert_string_equal(params_msg("{\"x-lazy-granule\": 2097152}", true), "");
    assert_string_equal(params_msg("{\"x-lazy-granule\": 65536}", true), "");
    assert_string_equal(params_msg("{\"x-lazy-granule\": 32768}", true),
                        "Parameter 'x-lazy-granule' expects a power of two "
                        "between 64 KiB and 2 MiB");
    assert_string_equal(params_msg("{\"x-lazy-granule\": 4194304}", true),
                        "Parameter 'x-lazy-granule' expects a power of two "
                        "between 64 KiB and 2 MiB");
    assert_string_equal(params_msg("{\"x-lazy-granule\": 196608}", true),
                        "Parameter 'x-lazy-granule' expects a power of two "
                        "between 64 KiB and 2 MiB");
    assert_string_equal(params_msg("{\"x-lazy-fill-cap\": 500}", true), "");
}

static void test_mapped_ram_compression_applied(void **state)
{
    struct mr_params old, n;
    struct mr_caps caps = { { 0 } };
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    caps.on[MR_CAP_MAPPED_RAM] = true;
    mr_params_init(&old);
    old.multifd_compression = MR_COMP_ZSTD;
    mr_params_init(&n);
    assert_int_not_equal(mr_params_check(&old, &n, &caps, &err), 0);
    assert_string_equal(err.msg, "Mapped-ram only available for "
                        "non-compressed non-TLS multifd migration");
}

static void test_defaults_json(void **state)
{
    struct mr_params p;
    json_t *o;

    (void)state;
    mr_params_init(&p);
    o = mr_params_to_json(&p);
    assert_int_equal(json_integer_value(json_object_get(o, "max-bandwidth")),
                     134217728);
    assert_int_equal(json_integer_value(json_object_get(o, "multifd-channels")),
                     2);
    assert_string_equal(json_string_value(json_object_get(o,
                        "zero-page-detection")), "multifd");
    assert_true(json_is_false(json_object_get(o, "direct-io")));
    assert_string_equal(json_string_value(json_object_get(o, "x-io-engine")),
                        "auto");
    assert_null(json_object_get(o, "block-bitmap-mapping"));
    assert_int_equal(json_integer_value(json_object_get(o, "x-lazy-granule")),
                     1 << 20);
    assert_int_equal(json_object_size(o), 32);
    json_decref(o);
}

static void test_print(void **state)
{
    struct mr_params p;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    (void)state;
    mr_params_init(&p);
    mr_params_print(&p, f);
    fclose(f);
    assert_string_equal(buf,
        "announce-initial: 50 ms\nannounce-max: 550 ms\nannounce-rounds: 5\n"
        "announce-step: 100 ms\nthrottle-trigger-threshold: 50\n"
        "cpu-throttle-initial: 20\ncpu-throttle-increment: 10\n"
        "cpu-throttle-tailslow: off\nmax-cpu-throttle: 99\ntls-creds: ''\n"
        "tls-hostname: ''\nmax-bandwidth: 134217728 bytes/second\n"
        "avail-switchover-bandwidth: 0 bytes/second\ndowntime-limit: 300 ms\n"
        "x-checkpoint-delay: 20000 ms\nmultifd-channels: 2\n"
        "multifd-compression: none\nzero-page-detection: multifd\n"
        "xbzrle-cache-size: 67108864 bytes\nmax-postcopy-bandwidth: 0\n"
        "tls-authz: ''\nx-vcpu-dirty-limit-period: 1000 ms\n"
        "vcpu-dirty-limit: 1 MB/s\nmode: normal\ndirect-io: off\n"
        "x-io-engine: auto\nx-lazy-granule: 1048576 bytes\n"
        "x-lazy-fill-cap: 0 MB/s\nx-lazy-working-set: on\n");
    free(buf);
}

static const char *hmp(const char *name, const char *value, json_int_t *iv)
{
    static struct mr_error err;
    json_t *v;

    mr_error_clear(&err);
    v = mr_params_hmp_value(name, value, &err);
    if (!v)
        return err.msg;
    if (iv)
        *iv = json_is_integer(v) ? json_integer_value(v) : json_is_true(v);
    json_decref(v);
    return "";
}

static void test_hmp_values(void **state)
{
    json_int_t v = 0;

    (void)state;
    assert_string_equal(hmp("max-bandwidth", "1", &v), "");
    assert_int_equal(v, 1 << 20);
    assert_string_equal(hmp("max-bandwidth", "1G", &v), "");
    assert_int_equal(v, 1 << 30);
    assert_string_equal(hmp("max-bandwidth", "x", NULL), "Invalid size x");
    assert_string_equal(hmp("downtime-limit", "500", &v), "");
    assert_int_equal(v, 500);
    assert_string_equal(hmp("multifd-channels", "0x10", &v), "");
    assert_int_equal(v, 16);
    assert_string_equal(hmp("multifd-channels", "010", &v), "");
    assert_int_equal(v, 8);
    assert_string_equal(hmp("multifd-channels", "256", NULL),
                        "Parameter 'multifd-channels' expects uint8_t");
    assert_string_equal(hmp("multifd-channels", "4x", NULL),
                        "Parameter 'multifd-channels' expects uint64");
    assert_string_equal(hmp("direct-io", "yes", &v), "");
    assert_int_equal(v, 1);
    assert_string_equal(hmp("direct-io", "maybe", NULL),
                        "Parameter 'direct-io' expects 'on' or 'off'");
    assert_string_equal(hmp("bogus", "1", NULL),
                        "invalid parameter value: bogus");
    assert_string_equal(hmp("block-bitmap-mapping", "x", NULL),
                        "The block-bitmap-mapping parameter can only be set "
                        "through QMP");
}

static int size_rc(const char *s, uint64_t *v)
{
    return mr_parse_size(s, 1, v);
}

static void test_sizes(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(size_rc("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(size_rc("0x1000", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(size_rc("4k", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(size_rc("1.5M", &v), 0);
    assert_int_equal(v, 3 << 19);
    assert_int_equal(size_rc("2B", &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(size_rc("0x20M", &v), -EINVAL);
    assert_int_equal(size_rc("-1", &v), -EINVAL);
    assert_int_equal(size_rc("12abc", &v), -EINVAL);
    assert_int_equal(size_rc("", &v), -EINVAL);
    assert_int_equal(size_rc("1.5", &v), -EINVAL);
    assert_int_equal(size_rc("16E", &v), -ERANGE);
    assert_int_equal(size_rc("99999999999999999999", &v), -ERANGE);
}

static void test_direct_io_effective(void **state)
{
    struct mr_caps c = { { 0 } };
    struct mr_params p;

    (void)state;
    mr_params_init(&p);
    p.direct_io = true;
    assert_false(mr_direct_io_effective(&c, &p));
    c.on[MR_CAP_MAPPED_RAM] = true;
    assert_false(mr_direct_io_effective(&c, &p));
    c.on[MR_CAP_MULTIFD] = true;
    assert_true(mr_direct_io_effective(&c, &p));
    p.direct_io = false;
    assert_false(mr_direct_io_effective(&c, &p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_names),
        cmocka_unit_test(test_caps_check),
        cmocka_unit_test(test_params_check),
        cmocka_unit_test(test_mapped_ram_compression_applied),
        cmocka_unit_test(test_defaults_json),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_hmp_values),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_direct_io_effective),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
