/*
 * Engine tests without a VM host: a fake VM (fake_vm.c) saved to a file in
 * the build directory and loaded into fresh blocks, compared byte for byte
 * with the source memory at switchover.  Cases are named by path like
 * QEMU's file-tests.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_vm.h"
#include "scratch.h"
#include "image/extract.h"
#include "format/source.h"
#include "image/stream_walk.h"
#include "mapram/migration.h"

#define PAGES0 2048 /* 8 MiB */
#define PAGES1 64   /* 256 KiB */

static char tmpdir[256];
static bool have_odirect;

struct events {
    int n;
    char names[64][32];
    char status[64][32];
};

static void on_event(void *opaque, const char *name, json_t *data)
{
    struct events *e = opaque;
    json_t *st = json_object_get(data, "status");

    if (e->n >= 64)
        return;
    snprintf(e->names[e->n], sizeof(e->names[0]), "%s", name);
    snprintf(e->status[e->n], sizeof(e->status[0]), "%s",
             st ? json_string_value(st) : "");
    e->n++;
}

static bool saw(const struct events *e, const char *status)
{
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->status[i], status) == 0)
            return true;
    return false;
}

struct scenario {
    bool mapped, multifd, dio, live;
    int channels;
    uint64_t offset;
    const char *zpd;
};

static void set_cap(struct mr_migration *m, const char *name, bool on)
{
    struct mr_error err = MR_ERROR_INIT;

    assert_int_equal(mr_migration_set_capability(m, name, on, &err), 0);
}

static void set_params(struct mr_migration *m, const char *json)
{
    struct mr_error err = MR_ERROR_INIT;
    json_t *o = json_loads(json, 0, NULL);

    assert_non_null(o);
    if (mr_migration_set_parameters(m, o, &err))
        fail_msg("set parameters %s: %s", json, err.msg);
    json_decref(o);
}

static void configure(struct mr_migration *m, const struct scenario *s)
{
    char buf[256];

    set_cap(m, "events", true);
    if (s->mapped)
        set_cap(m, "mapped-ram", true);
    snprintf(buf, sizeof(buf), "{\"multifd-channels\": %d, \"direct-io\": %s,"
             " \"max-bandwidth\": 0, \"zero-page-detection\": \"%s\"}",
             s->channels ? s->channels : 2, s->dio ? "true" : "false",
             s->zpd ? s->zpd : "multifd");
    set_params(m, buf);
    if (s->multifd)
        set_cap(m, "multifd", true);
}

static void make_uri(char *uri, size_t n, const char *file, uint64_t offset)
{
    if (offset)
        snprintf(uri, n, "file:%s/%s,offset=%llu", tmpdir, file,
                 (unsigned long long)offset);
    else
        snprintf(uri, n, "file:%s/%s", tmpdir, file);
}

static void write_header(const char *file, uint64_t bytes)
{
    char path[512];
    char *hdr = malloc(bytes);
    int fd;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, file);
    fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    memset(hdr, 'X', bytes);
    assert_int_equal(write(fd, hdr, bytes), (ssize_t)bytes);
    close(fd);
    free(hdr);
}

static void check_header(const char *file, uint64_t bytes)
{
    char path[512];
    uint8_t *buf = malloc(bytes + 8);
    int fd;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, file);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, bytes + 8, 0), (ssize_t)(bytes + 8));
    for (uint64_t i = 0; i < bytes; i++)
        assert_int_equal(buf[i], 'X');
    assert_memory_equal(buf + bytes, "QEVM", 4);
    close(fd);
    free(buf);
}

/* Save `src` to `file`; returns the completed source migration. */
static struct mr_migration *save(struct fake_vm *src, const struct scenario *s,
                                 const char *file, struct events *ev)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_migration *m;
    char uri[600];

    m = mr_migration_new(&fake_vm_ops, src, src->blocks, FAKE_NBLOCKS, NULL,
                         &err);
    assert_non_null(m);
    mr_migration_on_event(m, on_event, ev);
    configure(m, s);
    make_uri(uri, sizeof(uri), file, s->offset);
    if (mr_migration_start(m, uri, &err))
        fail_msg("migrate %s: %s", uri, err.msg);
    mr_migration_join(m, true);
    return m;
}

static struct mr_migration *load(struct fake_vm *dst, const struct scenario *s,
                                 const char *file, struct mr_error *err)
{
    struct mr_migration *m;
    char uri[600];

    m = mr_migration_new(&fake_vm_ops, dst, dst->blocks, FAKE_NBLOCKS, NULL,
                         err);
    assert_non_null(m);
    configure(m, s);
    make_uri(uri, sizeof(uri), file, s->offset);
    if (mr_migration_start_incoming(m, uri, false, err) == 0)
        mr_migration_join(m, false);
    return m;
}

static void compare_memory(const struct fake_vm *src, const struct fake_vm *dst)
{
    for (int b = 0; b < FAKE_NBLOCKS; b++) {
        const uint8_t *want = src->snapshot[b];
        const uint8_t *got = dst->blocks[b].host;

        for (uint64_t off = 0; off < src->blocks[b].used_length; off += 4096)
            if (memcmp(want + off, got + off, 4096))
                fail_msg("block %s page %llu differs", src->blocks[b].name,
                         (unsigned long long)(off / 4096));
    }
}

static int mem_sink(void *opaque, const void *buf, size_t len, uint64_t off,
                    struct mr_error *err)
{
    (void)err;
    memcpy((uint8_t *)opaque + off, buf, len);
    return 0;
}

/* The reader (inspect/extract) agrees with what was saved. */
static void check_with_reader(const struct fake_vm *src,
                              const struct scenario *s, const char *file)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_source in;
    struct mr_walk w;
    char path[512];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, file);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(mr_source_init_fd(&in, fd, &err), 0);
    if (mr_walk_file(&in, (int64_t)s->offset, &w, &err))
        fail_msg("walk: %s", err.msg);
    assert_true(w.complete);
    assert_int_equal(w.nr_problems, 0);
    assert_int_equal(w.mapped_ram, s->mapped);
    assert_string_equal(w.config.machine, "mapram-test-1.0");
    assert_int_equal(w.nr_blocks, FAKE_NBLOCKS);
    assert_true(w.vmdesc_present);
    for (int b = 0; b < FAKE_NBLOCKS; b++) {
        uint64_t len = src->blocks[b].used_length;
        uint8_t *img = calloc(1, len);
        struct mr_sink sink = { mem_sink, img };
        int i = mr_walk_find_block(&w, src->blocks[b].name);

        assert_true(i >= 0);
        assert_int_equal(w.blocks[i].entry.used_length, len);
        if (mr_extract_block(&in, &w, (size_t)i, &sink, &err))
            fail_msg("extract %s: %s", src->blocks[b].name, err.msg);
        if (memcmp(img, src->snapshot[b], len))
            fail_msg("extract of %s differs from the saved memory",
                     src->blocks[b].name);
        free(img);
    }
    mr_walk_free(&w);
    close(fd);
}

static void run_round_trip(const struct scenario *s, const char *file)
{
    struct fake_vm src, dst;
    struct events ev = { 0 };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_migration *ms, *md;
    json_t *q;

    fake_vm_init(&src, PAGES0, PAGES1, true,
                 s->live ? MR_RUN_RUNNING : MR_RUN_PAUSED);
    memcpy(src.dev_state, "device-state-123", 16);
    if (s->live)
        fake_vm_start_dirtier(&src);
    if (s->offset)
        write_header(file, s->offset);
    ms = save(&src, s, file, &ev);
    mr_migration_last_error(ms, &err);
    assert_string_equal(err.msg, "");
    assert_int_equal(mr_migration_state(ms), MR_MIG_COMPLETED);
    assert_int_equal(src.run, MR_RUN_POSTMIGRATE);
    assert_true(saw(&ev, "setup") && saw(&ev, "active") &&
                saw(&ev, "device") && saw(&ev, "completed"));
    assert_string_equal(ev.names[1], "MIGRATION_PASS");
    q = mr_migration_query(ms);
    assert_string_equal(json_string_value(json_object_get(q, "status")),
                        "completed");
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(q, "ram"), "total")), (PAGES0 + PAGES1) * 4096);
    json_decref(q);
    if (s->offset)
        check_header(file, s->offset);
    check_with_reader(&src, s, file);

    fake_vm_init(&dst, PAGES0, PAGES1, false, MR_RUN_INMIGRATE);
    md = load(&dst, s, file, &err);
    if (err.code)
        fail_msg("load: %s", err.msg);
    mr_migration_last_error(md, &err);
    assert_string_equal(err.msg, "");
    assert_int_equal(mr_migration_incoming_state(md), MR_MIG_COMPLETED);
    compare_memory(&src, &dst);
    assert_true(dst.dev_loaded);
    assert_memory_equal(dst.dev_state, "device-state-123", 16);
    assert_int_equal(dst.run, s->live ? MR_RUN_RUNNING : MR_RUN_PAUSED);
    mr_migration_free(md);
    mr_migration_free(ms);
    fake_vm_destroy(&dst);
    fake_vm_destroy(&src);
}

#define CASE(fn, ...) \
    static void fn(void **state) \
    { \
        const struct scenario s = { __VA_ARGS__ }; \
        (void)state; \
        run_round_trip(&s, #fn); \
    }

CASE(mapped_ram_multifd_1, .mapped = true, .multifd = true, .channels = 1)
CASE(mapped_ram_multifd_2, .mapped = true, .multifd = true, .channels = 2)
CASE(mapped_ram_multifd_4, .mapped = true, .multifd = true, .channels = 4)
CASE(mapped_ram_no_multifd, .mapped = true)
CASE(mapped_ram_zpd_none, .mapped = true, .multifd = true, .channels = 2,
     .zpd = "none")
CASE(mapped_ram_zpd_legacy, .mapped = true, .multifd = true, .channels = 2,
     .zpd = "legacy")
CASE(legacy, .mapped = false)
CASE(legacy_live, .mapped = false, .live = true)
CASE(mapped_ram_live, .mapped = true, .multifd = true, .channels = 2,
     .live = true)
CASE(mapped_ram_offset_4k, .mapped = true, .multifd = true, .channels = 4,
     .offset = 4096)

static void mapped_ram_dio(void **state)
{
    const struct scenario s = { .mapped = true, .multifd = true,
                                .channels = 4, .dio = true, .live = true };

    (void)state;
    if (!have_odirect)
        skip();
    run_round_trip(&s, "mapped_ram_dio");
}

/* A truncated file: refused before guest RAM changes, guest never runs. */
static void truncated_file(void **state)
{
    const struct scenario s = { .mapped = true, .multifd = true,
                                .channels = 2 };
    struct fake_vm src, dst;
    struct events ev = { 0 };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_migration *ms, *md;
    char path[512];

    (void)state;
    fake_vm_init(&src, PAGES0, PAGES1, true, MR_RUN_PAUSED);
    ms = save(&src, &s, "truncated", &ev);
    assert_int_equal(mr_migration_state(ms), MR_MIG_COMPLETED);
    snprintf(path, sizeof(path), "%s/truncated", tmpdir);
    assert_int_equal(truncate(path, 0x500000), 0);

    fake_vm_init(&dst, PAGES0, PAGES1, false, MR_RUN_INMIGRATE);
    md = load(&dst, &s, "truncated", &err);
    assert_int_equal(err.code, 0);
    assert_int_equal(mr_migration_incoming_state(md), MR_MIG_FAILED);
    mr_migration_last_error(md, &err);
    assert_string_equal(err.msg, "truncated: expected 0x800000 bytes of pages "
                        "for 'pc.ram' at offset 0x100000, found the end of "
                        "the file at 0x500000");
    for (int b = 0; b < FAKE_NBLOCKS; b++)
        for (uint64_t i = 0; i < dst.blocks[b].used_length; i++)
            if (dst.blocks[b].host[i])
                fail_msg("destination RAM was modified");
    assert_int_equal(dst.starts, 0);
    assert_int_equal(dst.run, MR_RUN_INMIGRATE);
    assert_false(dst.dev_loaded);
    mr_migration_free(md);
    mr_migration_free(ms);
    fake_vm_destroy(&dst);
    fake_vm_destroy(&src);
}

static void capability_mismatch(void **state)
{
    const struct scenario s = { .mapped = true, .multifd = true,
                                .channels = 2 };
    const struct scenario d = { .mapped = false };
    struct fake_vm src, dst;
    struct events ev = { 0 };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_migration *ms, *md;

    (void)state;
    fake_vm_init(&src, PAGES0, PAGES1, true, MR_RUN_PAUSED);
    ms = save(&src, &s, "mismatch", &ev);
    fake_vm_init(&dst, PAGES0, PAGES1, false, MR_RUN_INMIGRATE);
    md = load(&dst, &d, "mismatch", &err);
    assert_int_equal(mr_migration_incoming_state(md), MR_MIG_FAILED);
    mr_migration_last_error(md, &err);
    assert_string_equal(err.msg, "Capability mapped-ram is off, but received "
                        "capability is on");
    assert_int_equal(dst.starts, 0);
    assert_int_equal(dst.run, MR_RUN_INMIGRATE);
    mr_migration_free(md);
    mr_migration_free(ms);
    fake_vm_destroy(&dst);
    fake_vm_destroy(&src);
}

/* Load `file` into a VM built with `ops`/`rename`; returns error-desc. */
static const char *load_error(const struct mr_vm_ops *ops, const char *rename,
                              const char *file)
{
    static struct mr_error err;
    const struct scenario s = { .mapped = true, .multifd = true,
                                .channels = 2 };
    struct fake_vm dst;
    struct mr_migration *m;
    char uri[600];

    mr_error_clear(&err);
    fake_vm_init(&dst, PAGES0, PAGES1, false, MR_RUN_INMIGRATE);
    if (rename)
        dst.blocks[0].name = rename;
    m = mr_migration_new(ops, &dst, dst.blocks, FAKE_NBLOCKS, NULL, &err);
    configure(m, &s);
    make_uri(uri, sizeof(uri), file, 0);
    assert_int_equal(mr_migration_start_incoming(m, uri, false, &err), 0);
    mr_migration_join(m, false);
    assert_int_equal(mr_migration_incoming_state(m), MR_MIG_FAILED);
    assert_int_equal(dst.starts, 0);
    mr_migration_last_error(m, &err);
    mr_migration_free(m);
    fake_vm_destroy(&dst);
    return err.msg;
}

static void config_mismatches(void **state)
{
    const struct scenario s = { .mapped = true, .multifd = true,
                                .channels = 2 };
    struct mr_vm_ops other = fake_vm_ops;
    struct fake_vm src;
    struct events ev = { 0 };
    struct mr_migration *ms;

    (void)state;
    fake_vm_init(&src, PAGES0, PAGES1, true, MR_RUN_PAUSED);
    ms = save(&src, &s, "config", &ev);
    other.machine_type = "mapram-vm-1.0";
    assert_string_equal(load_error(&other, NULL, "config"),
                        "Machine type received is 'mapram-test-1.0' and local "
                        "is 'mapram-vm-1.0'");
    assert_string_equal(load_error(&fake_vm_ops, "other.ram", "config"),
                        "Unknown ramblock \"pc.ram\", cannot accept "
                        "migration");
    mr_migration_free(ms);
    fake_vm_destroy(&src);
}

static void open_failures(void **state)
{
    struct fake_vm vm;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_migration *m;

    (void)state;
    fake_vm_init(&vm, 16, 16, true, MR_RUN_RUNNING);
    m = mr_migration_new(&fake_vm_ops, &vm, vm.blocks, FAKE_NBLOCKS, NULL,
                         &err);
    assert_int_not_equal(mr_migration_start(m, "file:/nonexistent/dir/f",
                                            &err), 0);
    assert_string_equal(err.msg, "Could not create '/nonexistent/dir/f': No "
                        "such file or directory");
    assert_int_equal(mr_migration_state(m), MR_MIG_FAILED);
    mr_migration_last_error(m, &err);
    assert_string_equal(err.msg, "Could not create '/nonexistent/dir/f': No "
                        "such file or directory");
    assert_int_equal(vm.run, MR_RUN_RUNNING);
    mr_error_clear(&err);
    assert_int_not_equal(mr_migration_start_incoming(m, "file:/x", false,
                                                     &err), 0);
    assert_string_equal(err.msg, "'-incoming' was not specified on the "
                        "command line");
    vm.run = MR_RUN_INMIGRATE;
    mr_error_clear(&err);
    assert_int_not_equal(mr_migration_start_incoming(m, "file:/nonexistent/f",
                                                     false, &err), 0);
    assert_string_equal(err.msg, "Could not open '/nonexistent/f': No such "
                        "file or directory");
    assert_int_equal(mr_migration_incoming_state(m), MR_MIG_SETUP);
    mr_error_clear(&err);
    assert_int_not_equal(mr_migration_start_incoming(m, "file:/nonexistent/f",
                                                     false, &err), 0);
    assert_string_equal(err.msg, "Illegal migration incoming state: setup");
    mr_migration_free(m);
    fake_vm_destroy(&vm);
}

/* migrate_cancel during a rate-limited live save: cancelled, VM running. */
static void cancel_live(void **state)
{
    struct fake_vm vm;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_migration *m;
    struct events ev = { 0 };
    char uri[600];

    (void)state;
    fake_vm_init(&vm, PAGES0, PAGES1, true, MR_RUN_RUNNING);
    fake_vm_start_dirtier(&vm);
    m = mr_migration_new(&fake_vm_ops, &vm, vm.blocks, FAKE_NBLOCKS, NULL,
                         &err);
    mr_migration_on_event(m, on_event, &ev);
    set_cap(m, "events", true);
    set_cap(m, "mapped-ram", true);
    set_cap(m, "multifd", true);
    set_params(m, "{\"max-bandwidth\": 1000000}");
    make_uri(uri, sizeof(uri), "cancelled", 0);
    assert_int_equal(mr_migration_start(m, uri, &err), 0);
    while (mr_migration_state(m) == MR_MIG_SETUP)
        usleep(1000);
    mr_migration_cancel(m);
    mr_migration_join(m, true);
    assert_int_equal(mr_migration_state(m), MR_MIG_CANCELLED);
    assert_true(saw(&ev, "cancelling") && saw(&ev, "cancelled"));
    assert_int_equal(vm.run, MR_RUN_RUNNING);
    /* a new migrate after the cancel is accepted */
    set_params(m, "{\"max-bandwidth\": 0}");
    assert_int_equal(mr_migration_start(m, uri, &err), 0);
    mr_migration_join(m, true);
    assert_int_equal(mr_migration_state(m), MR_MIG_COMPLETED);
    mr_migration_free(m);
    fake_vm_destroy(&vm);
}

/* pause-before-switchover: the save waits in pre-switchover with the VM
 * stopped until migrate-continue. */
static void pre_switchover(void **state)
{
    struct fake_vm vm;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_migration *m;
    struct events ev = { 0 };
    char uri[600];

    (void)state;
    fake_vm_init(&vm, PAGES0, PAGES1, true, MR_RUN_RUNNING);
    m = mr_migration_new(&fake_vm_ops, &vm, vm.blocks, FAKE_NBLOCKS, NULL,
                         &err);
    mr_migration_on_event(m, on_event, &ev);
    set_cap(m, "events", true);
    set_cap(m, "pause-before-switchover", true);
    set_params(m, "{\"max-bandwidth\": 0}");
    make_uri(uri, sizeof(uri), "pre-switchover", 0);
    assert_int_not_equal(mr_migration_continue(m, &err), 0);
    assert_string_equal(err.msg, "Migration not in expected state: none");
    mr_error_clear(&err);
    assert_int_equal(mr_migration_start(m, uri, &err), 0);
    while (mr_migration_state(m) != MR_MIG_PRE_SWITCHOVER)
        usleep(1000);
    assert_int_equal(vm.run, MR_RUN_FINISH_MIGRATE);
    assert_int_equal(mr_migration_continue(m, &err), 0);
    mr_migration_join(m, true);
    assert_int_equal(mr_migration_state(m), MR_MIG_COMPLETED);
    assert_true(saw(&ev, "pre-switchover") && saw(&ev, "device"));
    assert_int_equal(vm.run, MR_RUN_POSTMIGRATE);
    mr_migration_free(m);
    fake_vm_destroy(&vm);
}

static int cleanup(void **state)
{
    (void)state;
    return scratch_dir_remove(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mapped_ram_multifd_1),
        cmocka_unit_test(mapped_ram_multifd_2),
        cmocka_unit_test(mapped_ram_multifd_4),
        cmocka_unit_test(mapped_ram_no_multifd),
        cmocka_unit_test(mapped_ram_zpd_none),
        cmocka_unit_test(mapped_ram_zpd_legacy),
        cmocka_unit_test(legacy),
        cmocka_unit_test(legacy_live),
        cmocka_unit_test(mapped_ram_live),
        cmocka_unit_test(mapped_ram_offset_4k),
        cmocka_unit_test(mapped_ram_dio),
        cmocka_unit_test(truncated_file),
        cmocka_unit_test(capability_mismatch),
        cmocka_unit_test(config_mismatches),
        cmocka_unit_test(open_failures),
        cmocka_unit_test(cancel_live),
        cmocka_unit_test(pre_switchover),
    };

    if (scratch_dir_make(tmpdir, sizeof(tmpdir), "mr-engine-"))
        return 1;
    have_odirect = scratch_probe_odirect(tmpdir);
    return cmocka_run_group_tests(tests, NULL, cleanup);
}
