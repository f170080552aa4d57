/*
 * The loader's memory stays bounded over crafted legacy streams of many
 * small records (issue 16, defect 13): a million device sections of one
 * known device, a million empty RAM sections, a million sections of an
 * unknown device (refused when seen).  Peak RSS growth (getrusage) < 64 MiB.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_vm.h"
#include "scratch.h"
#include "format/stream_defs.h"
#include "format/stream_write.h"
#include "mapram/migration.h"

#define RECORDS (1u << 20)
#define BOUND_KIB (64u << 10)

static char tmpdir[256];

static int file_sink(void *opaque, const void *buf, size_t len, uint64_t off,
                     struct mr_error *err)
{
    FILE *f = opaque;

    if (fseeko(f, (off_t)off, SEEK_SET) || fwrite(buf, 1, len, f) != len)
        return mr_error_set(err, -5, "cannot write the crafted stream");
    return 0;
}

static void put_sections(struct mr_stream_writer *w, const char *dev,
                         unsigned ndev, unsigned nram)
{
    static const uint8_t state[16];
    uint32_t sid = 2;

    for (unsigned i = 0; i < nram; i++) {
        mr_sw_section_short(w, QEMU_VM_SECTION_PART, 1);
        mr_sw_ram_eos(w);
        mr_sw_section_footer(w, 1);
    }
    for (unsigned i = 0; i < ndev; i++, sid++) {
        mr_sw_section_header(w, QEMU_VM_SECTION_FULL, sid, dev, 0, 1);
        mr_sw_put_be32(w, sizeof(state));
        mr_sw_put_bytes(w, state, sizeof(state));
        mr_sw_section_footer(w, sid);
    }
}

/* Header, configuration, START ram (legacy block list), the sections. */
static void craft(const char *path, const struct fake_vm *vm, const char *dev,
                  unsigned ndev, unsigned nram)
{
    FILE *f = fopen(path, "w");
    struct mr_stream_sink sink = { file_sink, f };
    struct mr_sw_ram_block swb[FAKE_NBLOCKS] = { 0 };
    struct mr_stream_writer w;
    struct mr_error err = MR_ERROR_INIT;

    assert_non_null(f);
    assert_int_equal(mr_sw_init(&w, &sink, 0, &err), 0);
    for (int b = 0; b < FAKE_NBLOCKS; b++) {
        swb[b].name = vm->blocks[b].name;
        swb[b].used_length = vm->blocks[b].used_length;
        swb[b].page_size = vm->blocks[b].page_size;
    }
    mr_sw_header(&w);
    mr_sw_configuration(&w, fake_vm_ops.machine_type, NULL, 0);
    mr_sw_section_header(&w, QEMU_VM_SECTION_START, 1, RAM_SECTION_IDSTR, 0,
                         RAM_SECTION_VERSION);
    mr_sw_ram_setup(&w, swb, FAKE_NBLOCKS, false, false);
    mr_sw_ram_eos(&w);
    mr_sw_section_footer(&w, 1);
    put_sections(&w, dev, ndev, nram);
    mr_sw_eof(&w);
    assert_int_equal(mr_sw_flush(&w), 0);
    mr_sw_destroy(&w);
    assert_int_equal(fclose(f), 0);
}

static long peak_kib(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Load `path` into a fresh fake VM; returns the final incoming state and
 * the peak RSS growth during the load. */
static enum mr_mig_status load(const char *path, long *grew_kib,
                               struct mr_error *last)
{
    struct fake_vm vm;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_migration *m;
    char uri[600];
    enum mr_mig_status st;
    long before;

    fake_vm_init(&vm, 16, 16, false, MR_RUN_INMIGRATE);
    m = mr_migration_new(&fake_vm_ops, &vm, vm.blocks, FAKE_NBLOCKS, NULL,
                         &err);
    assert_non_null(m);
    mr_migration_set_autostart(m, false);
    snprintf(uri, sizeof(uri), "file:%s", path);
    before = peak_kib();
    assert_int_equal(mr_migration_start_incoming(m, uri, false, &err), 0);
    mr_migration_join(m, false);
    *grew_kib = peak_kib() - before;
    st = mr_migration_incoming_state(m);
    mr_migration_last_error(m, last);
    mr_migration_free(m);
    fake_vm_destroy(&vm);
    return st;
}

/* In a child of its own, so that its peak RSS is its own. */
static int load_in_child(const char *path, enum mr_mig_status want,
                         const char *msg, const char *name)
{
    struct mr_error e = MR_ERROR_INIT;
    enum mr_mig_status st;
    long grew;

    st = load(path, &grew, &e);
    printf("%s: %s, peak RSS grew by %ld KiB (%s)\n", name,
           mr_mig_status_name(st), grew, e.code ? e.msg : "no error");
    fflush(stdout);
    if (st != want || (msg && !strstr(e.msg, msg)))
        return 1;
    return grew < (long)BOUND_KIB ? 0 : 2;
}

static void check(const char *name, const char *dev, unsigned ndev,
                  unsigned nram, enum mr_mig_status want, const char *msg)
{
    char path[512];
    struct fake_vm vm;
    int status;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/%s.sav", tmpdir, name);
    fake_vm_init(&vm, 16, 16, false, MR_RUN_INMIGRATE);
    craft(path, &vm, dev, ndev, nram);
    fake_vm_destroy(&vm);
    fflush(stdout);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(load_in_child(path, want, msg, name));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    remove(path);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void many_known_devices(void **state)
{
    (void)state;
    check("known", "fake-dev", RECORDS, 0, MR_MIG_COMPLETED, NULL);
}

static void many_empty_ram_sections(void **state)
{
    (void)state;
    check("ram", "fake-dev", 1, RECORDS, MR_MIG_COMPLETED, NULL);
}

static void many_unknown_devices(void **state)
{
    (void)state;
    check("unknown", "bogus-dev", RECORDS, 0, MR_MIG_FAILED,
          "Unknown savevm section or instance 'bogus-dev' 0");
}

static int setup(void **state)
{
    (void)state;
    return scratch_dir_make(tmpdir, sizeof(tmpdir), "loader-bounds-");
}

static int cleanup(void **state)
{
    (void)state;
    return scratch_dir_remove(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_known_devices),
        cmocka_unit_test(many_empty_ram_sections),
        cmocka_unit_test(many_unknown_devices),
    };

    return cmocka_run_group_tests(tests, setup, cleanup);
}
