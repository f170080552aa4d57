/*
 * `mapram restore --spawn`: start a mapram-vm of the right size, waiting
 * with `-incoming defer` on a private QMP socket, for the common case of
 * "bring this save file back to life".  The VM runs in its own session so
 * it outlives the tool; on a failed restore the tool kills it again.
 */
#ifndef MAPRAM_CLI_SPAWN_VM_H
#define MAPRAM_CLI_SPAWN_VM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mapram/error.h"

struct spawned_vm {
    pid_t pid;                 /* 0 when none was started */
    char dir[64];              /* private temp dir holding the socket */
    char socket_path[128];
    char log_path[128];
    bool keep_log;             /* the VM failed to start: leave its log */
    char name[32];             /* "mapram-vm" or "QEMU", for messages */
};

void spawn_vm_init(struct spawned_vm *vm);
/* The mapram-vm next to this binary (build tree) or the one in PATH. */
int spawn_vm_find_binary(char *buf, size_t buf_bytes, struct mr_error *err);
int spawn_vm_start(struct spawned_vm *vm, uint64_t ram_bytes,
                   struct mr_error *err);
/* For another VM binary (launch_config.c): make the private dir and the
 * socket/log paths, then start `argv` (which names socket_path) and wait
 * for its monitor socket. */
int spawn_vm_prepare(struct spawned_vm *vm, const char *name,
                     struct mr_error *err);
int spawn_vm_run(struct spawned_vm *vm, const char *bin, char *const argv[],
                 struct mr_error *err);
/* Kill and reap a VM we started (no-op otherwise). */
void spawn_vm_kill(struct spawned_vm *vm);

#endif
