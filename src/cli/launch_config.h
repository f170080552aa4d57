/*
 * The launch configuration recorded in a save file (docs/file-header.md,
 * "Launch metadata"): collected from the VM at save time, shown by
 * inspect, checked against the destination by restore, and replayed by
 * `restore --spawn` for a QEMU.  Nothing here exits.
 */
#ifndef MAPRAM_CLI_LAUNCH_CONFIG_H
#define MAPRAM_CLI_LAUNCH_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "mapram/error.h"
#include "mapram/format.h"
#include "mapram/qmp_client.h"
#include "spawn_vm.h"

/* What the VM reports about itself: kind, machine type, target, RAM,
 * devices, and with `with_argv` its process's command line (the QMP
 * peer's /proc/PID/cmdline).  Best effort: a query the VM does not know
 * leaves its key out.  Fails only when out of memory. */
int launch_config_collect(struct mr_qmp_client *c, const char *vm_version,
                          uint64_t ram_bytes, bool with_argv,
                          struct mr_launch_meta *m, struct mr_error *err);

/* The bytes to store in the header area; *out is malloc'd. */
int launch_config_encode(const struct mr_launch_meta *m, uint8_t **out,
                         size_t *len, struct mr_error *err);

/* Read and check (CRC) the metadata of an open save file; an old file
 * without any leaves `m` empty. */
int launch_config_read(int fd, const struct mr_file_header *h,
                       struct mr_launch_meta *m, struct mr_error *err);

/* Compare the VM behind `c` with what was saved; names every difference
 * (kind, target, machine type, devices).  The RAM size is restore's own
 * check, made before this one. */
int launch_config_check(struct mr_qmp_client *c,
                        const struct mr_launch_meta *saved,
                        struct mr_error *err);

/* inspect: text lines, and the "launch" member of --json (null if none). */
void launch_config_print(int fd, const struct mr_file_header *h);
json_t *launch_config_json(int fd, const struct mr_file_header *h);

/* restore --spawn: does `m` hold a QEMU command line to start again?  If
 * so, start it with -incoming defer and a private -qmp socket. */
bool launch_config_can_spawn(const struct mr_launch_meta *m);
int launch_config_spawn(struct spawned_vm *vm, const struct mr_launch_meta *m,
                        struct mr_error *err);

#endif
