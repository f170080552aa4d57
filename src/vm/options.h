/*
 * mapram-vm's command line, parsed into a plain struct.
 *
 * Pure: no file is opened and nothing is allocated beyond the strings it
 * copies, so every rule (sizes, -object properties, -machine
 * memory-backend=, the test range) is unit-tested alone.  Messages follow
 * QEMU's where QEMU has one.
 */
#ifndef MAPRAM_VM_OPTIONS_H
#define MAPRAM_VM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mapram/error.h"

#define VM_RAM_MIN_BYTES (64ull << 20)
#define VM_RAM_MAX_BYTES (64ull << 30)
#define VM_RAM_DEFAULT_BYTES (128ull << 20)
#define VM_TEST_START_DEFAULT (1ull << 20)
#define VM_MAX_BACKENDS 8
#define VM_MAX_QMP 8
#define VM_MAX_ACCELS 4

enum vm_backend_kind {
    VM_BACKEND_RAM,
    VM_BACKEND_MEMFD,
    VM_BACKEND_FILE,
};

struct vm_backend_opts {
    enum vm_backend_kind kind;
    char *id;
    uint64_t size_bytes;
    char *mem_path;   /* file backend only */
    bool share;
    bool hugetlb;
    bool prealloc;    /* fault every page in at start (QEMU's prealloc=on) */
};

enum vm_accel {
    VM_ACCEL_KVM,
    VM_ACCEL_THREAD,
};

struct vm_config {
    uint64_t ram_bytes;
    bool ram_set;                 /* -m given */
    struct vm_backend_opts backends[VM_MAX_BACKENDS];
    size_t nr_backends;
    char *memory_backend;         /* -machine memory-backend=ID */
    char *qmp_paths[VM_MAX_QMP];  /* -qmp unix:PATH,... */
    size_t nr_qmp;
    char *serial_path;            /* -serial file:PATH */
    bool start_paused;            /* -S */
    char *incoming;               /* -incoming defer|URI */
    /* -accel, in order: the first usable one wins (QEMU's rule).  None
     * given means kvm, falling back to thread with a notice. */
    enum vm_accel accels[VM_MAX_ACCELS];
    size_t nr_accels;
    char *name;
    bool daemonize;
    char *pidfile;
    uint64_t test_start, test_end; /* end 0 = end of pc.ram */
    const struct vm_backend_opts *ram_backend; /* resolved, or NULL */
};

/* Parse a size: digits with an optional K/M/G/T suffix (binary units);
 * without a suffix the number is multiplied by `default_unit`. */
int vm_parse_size(const char *text, uint64_t default_unit, uint64_t *out);

/* Parse one -object value into `out` (strings allocated). */
int vm_parse_object(const char *text, struct vm_backend_opts *out,
                    struct mr_error *err);

/* Parse argv (argv[0] is skipped) and resolve the RAM backend and sizes.
 * On error `err` holds one line naming the option. */
int vm_options_parse(int argc, char *const *argv, struct vm_config *cfg,
                     struct mr_error *err);
void vm_config_free(struct vm_config *cfg);

#endif
