/* Unit tests for mapram-vm's command line (src/vm/options.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "options.h"

#define ARGV(...) ((char *const[]){ "mapram-vm", __VA_ARGS__ })
#define NARGS(...) (int)(sizeof(ARGV(__VA_ARGS__)) / sizeof(char *))
#define PARSE(cfg, err, ...) \
    vm_options_parse(NARGS(__VA_ARGS__), ARGV(__VA_ARGS__), cfg, err)

static void sizes(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(vm_parse_size("150", 1 << 20, &v), 0);
    assert_int_equal(v, 150ull << 20);
    assert_int_equal(vm_parse_size("4G", 1 << 20, &v), 0);
    assert_int_equal(v, 4ull << 30);
    assert_int_equal(vm_parse_size("64k", 1, &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(vm_parse_size("4096", 1, &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(vm_parse_size("1T", 1, &v), 0);
    assert_int_equal(v, 1ull << 40);
    assert_int_equal(vm_parse_size("", 1, &v), -EINVAL);
    assert_int_equal(vm_parse_size("12x", 1, &v), -EINVAL);
    assert_int_equal(vm_parse_size("1GG", 1, &v), -EINVAL);
    assert_int_equal(vm_parse_size("-1", 1, &v), -EINVAL);
    assert_int_equal(vm_parse_size("99999999999999999999", 1, &v), -ERANGE);
    assert_int_equal(vm_parse_size("17179869184G", 1, &v), -ERANGE);
}

static void objects(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct vm_backend_opts o;

    (void)state;
    assert_int_equal(vm_parse_object("memory-backend-file,id=m,size=1G,"
                                     "mem-path=/tmp/x,share=on", &o, &err), 0);
    assert_int_equal(o.kind, VM_BACKEND_FILE);
    assert_string_equal(o.id, "m");
    assert_string_equal(o.mem_path, "/tmp/x");
    assert_int_equal(o.size_bytes, 1ull << 30);
    assert_true(o.share);
    assert_false(o.prealloc);
    free(o.id);
    free(o.mem_path);

    assert_int_equal(vm_parse_object("memory-backend-file,id=m,size=1G,"
                                     "mem-path=/tmp/x,prealloc=on", &o, &err),
                     0);
    assert_true(o.prealloc);
    free(o.id);
    free(o.mem_path);
    assert_int_equal(vm_parse_object("memory-backend-ram,id=r,size=1G,"
                                     "prealloc=maybe", &o, &err), -EINVAL);
    assert_string_equal(err.msg, "Parameter 'prealloc' expects 'on' or 'off'");
    free(o.id);
    mr_error_clear(&err);

    assert_int_equal(vm_parse_object("memory-backend-memfd,id=a,size=64M",
                                     &o, &err), 0);
    assert_true(o.share); /* QEMU's memfd default */
    free(o.id);
    assert_int_equal(vm_parse_object("memory-backend-ram,size=64M,id=r",
                                     &o, &err), 0);
    assert_false(o.share);
    free(o.id);
}

static void check_object_error(const char *text, const char *msg)
{
    struct mr_error err = MR_ERROR_INIT;
    struct vm_backend_opts o;

    assert_int_equal(vm_parse_object(text, &o, &err), -EINVAL);
    assert_string_equal(err.msg, msg);
}

static void object_errors(void **state)
{
    (void)state;
    check_object_error("memory-backend-foo,id=x,size=1M",
                       "invalid object type: memory-backend-foo");
    check_object_error("memory-backend-ram,size=1M", "Parameter 'id' is missing");
    check_object_error("memory-backend-ram,id=x,size=1Q",
                       "Parameter 'size' expects a non-negative number "
                       "below 2^64");
    check_object_error("memory-backend-ram,id=x,size=1M,share=maybe",
                       "Parameter 'share' expects 'on' or 'off'");
    check_object_error("memory-backend-ram,id=x,size=1M,mem-path=/x",
                       "Property 'memory-backend-ram.mem-path' not found");
    check_object_error("memory-backend-file,id=x,size=1M",
                       "mem-path property not set");
    check_object_error("memory-backend-ram,id=x",
                       "can't create backend with size 0");
    check_object_error("memory-backend-ram,id=x,size", "Parameter 'size' "
                       "expects a value (key=value)");
}

static void full_command_line(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct vm_config cfg;

    (void)state;
    assert_int_equal(PARSE(&cfg, &err, "-m", "256M", "-object",
                           "memory-backend-memfd,id=mem,size=256M",
                           "-machine", "q35,memory-backend=mem", "-qmp",
                           "unix:/tmp/a.sock,server=on,wait=off", "-qmp",
                           "unix:/tmp/b.sock,server,nowait", "-serial",
                           "file:/tmp/s", "-S", "-incoming", "defer",
                           "-accel", "thread", "-name",
                           "source,debug-threads=on", "-daemonize",
                           "-pidfile", "/tmp/p", "-test-range", "1M,100M",
                           "-nographic", "-display", "none"), 0);
    assert_int_equal(cfg.ram_bytes, 256ull << 20);
    assert_non_null(cfg.ram_backend);
    assert_string_equal(cfg.ram_backend->id, "mem");
    assert_int_equal(cfg.nr_qmp, 2);
    assert_string_equal(cfg.qmp_paths[0], "/tmp/a.sock");
    assert_string_equal(cfg.qmp_paths[1], "/tmp/b.sock");
    assert_string_equal(cfg.serial_path, "/tmp/s");
    assert_true(cfg.start_paused);
    assert_string_equal(cfg.incoming, "defer");
    assert_int_equal(cfg.nr_accels, 1);
    assert_int_equal(cfg.accels[0], VM_ACCEL_THREAD);
    assert_string_equal(cfg.name, "source");
    assert_true(cfg.daemonize);
    assert_string_equal(cfg.pidfile, "/tmp/p");
    assert_int_equal(cfg.test_start, 1ull << 20);
    assert_int_equal(cfg.test_end, 100ull << 20);
    vm_config_free(&cfg);
}

static void accelerator_order(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct vm_config cfg;

    (void)state;
    /* QEMU's migration tests pass "-accel kvm -accel tcg" */
    assert_int_equal(PARSE(&cfg, &err, "-accel", "kvm", "-accel", "tcg"), 0);
    assert_int_equal(cfg.nr_accels, 2);
    assert_int_equal(cfg.accels[0], VM_ACCEL_KVM);
    assert_int_equal(cfg.accels[1], VM_ACCEL_THREAD);
    vm_config_free(&cfg);
}

static void defaults(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct vm_config cfg;

    (void)state;
    assert_int_equal(PARSE(&cfg, &err, "-m", "4G"), 0);
    assert_int_equal(cfg.ram_bytes, 4ull << 30);
    assert_null(cfg.ram_backend);
    assert_int_equal(cfg.nr_accels, 0);
    assert_false(cfg.start_paused);
    assert_null(cfg.incoming);
    assert_int_equal(cfg.test_start, 1ull << 20);
    assert_int_equal(cfg.test_end, 4ull << 30);
    vm_config_free(&cfg);
    /* the backend alone decides the size */
    assert_int_equal(PARSE(&cfg, &err, "-object",
                           "memory-backend-ram,id=r,size=96M", "-M",
                           "memory-backend=r"), 0);
    assert_int_equal(cfg.ram_bytes, 96ull << 20);
    assert_int_equal(cfg.test_end, 96ull << 20);
    vm_config_free(&cfg);
}

#define CHECK_ERROR(expected, ...)                                        \
    do {                                                               \
        struct mr_error err = MR_ERROR_INIT;                           \
        struct vm_config cfg;                                          \
        assert_true(PARSE(&cfg, &err, __VA_ARGS__) < 0);               \
        assert_string_equal(err.msg, expected);                        \
        vm_config_free(&cfg);                                          \
    } while (0)

static void command_line_errors(void **state)
{
    (void)state;
    CHECK_ERROR("-bogus: invalid option", "-bogus");
    CHECK_ERROR("-m: requires an argument", "-m");
    CHECK_ERROR("-m 12x: Parameter 'size' expects a non-negative number "
                "below 2^64", "-m", "12x");
    CHECK_ERROR("-m 32M: RAM size must be between 64M and 64G", "-m", "32M");
    CHECK_ERROR("-m 65G: RAM size must be between 64M and 64G", "-m", "65G");
    CHECK_ERROR("-m 65M: RAM size must be a multiple of 2M", "-m", "65M");
    CHECK_ERROR("Memory backend 'nope' not found", "-machine",
                "memory-backend=nope");
    CHECK_ERROR("Machine memory size does not match the size of the memory "
                "backend", "-m", "128M", "-object",
                "memory-backend-ram,id=r,size=256M", "-machine",
                "memory-backend=r");
    CHECK_ERROR("-accel hvf: invalid accelerator hvf", "-accel", "hvf");
    CHECK_ERROR("-serial stdio: only 'file:PATH', 'null' and 'none' are "
                "supported", "-serial", "stdio");
    CHECK_ERROR("-test-range 1M: expected START,END", "-test-range", "1M");
    CHECK_ERROR("-test-range 1M,100: START and END must be multiples of "
                "4096", "-test-range", "1M,100");
    CHECK_ERROR("-test-range 4K,1M: expected 1M <= START < END",
                "-test-range", "4K,1M");
    CHECK_ERROR("-test-range: END 0x10000000 is beyond the end of RAM "
                "(0x8000000)", "-test-range", "1M,256M");
    CHECK_ERROR("-object memory-backend-ram,id=r,size=64M: attempt to add "
                "duplicate property 'r' to object (type 'container')",
                "-object", "memory-backend-ram,id=r,size=64M", "-object",
                "memory-backend-ram,id=r,size=64M");
    CHECK_ERROR("-qmp tcp:1: only 'unix:PATH[,server=on][,wait=off]' is "
                "supported", "-qmp", "tcp:1");
    CHECK_ERROR("-name a,b=c: Invalid parameter 'b=c'", "-name", "a,b=c");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes),
        cmocka_unit_test(objects),
        cmocka_unit_test(object_errors),
        cmocka_unit_test(full_command_line),
        cmocka_unit_test(defaults),
        cmocka_unit_test(accelerator_order),
        cmocka_unit_test(command_line_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
