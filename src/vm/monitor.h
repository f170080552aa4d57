/*
 * mapram-vm's monitor: the QMP server (src/lib/qmp) with the VM's own
 * commands (query-status, query-name, stop, cont, quit, pmemsave,
 * memsave, and HMP info status / info name / stop / cont / quit) and a
 * per-VM fdset registry (add-fd, remove-fd, query-fdsets).
 */
#ifndef MAPRAM_VM_MONITOR_H
#define MAPRAM_VM_MONITOR_H

#include <signal.h>

#include "mapram/error.h"
#include "vmhost.h"

/* `quit` asks main() to shut down by sending this signal to the process. */
#define MONITOR_QUIT_SIGNAL SIGUSR1

struct monitor;

/* Create the server, listen on every -qmp socket, register commands and
 * wire STOP/RESUME events to the VM.  Nothing runs until monitor_start. */
struct monitor *monitor_new(struct vm *vm, struct mr_error *err);
int monitor_start(struct monitor *mon, struct mr_error *err);
/* The first step of teardown: refuse new commands, emit SHUTDOWN (QEMU's
 * reasons: host-qmp-quit, host-signal; NULL: none) as far as the sockets
 * take it, then stop and join the monitor thread and close every
 * connection.  After it no handler runs, so the migration object the
 * commands use may be freed; events emitted later go nowhere. */
void monitor_shutdown(struct monitor *mon, const char *reason);
/* After monitor_shutdown() and after everything that emits (migration). */
void monitor_free(struct monitor *mon);

/* For the migration engine's registration (main.c). */
struct mr_qmp_server *monitor_server(struct monitor *mon);
struct mr_fdset_registry *monitor_fdsets(struct monitor *mon);

#endif
