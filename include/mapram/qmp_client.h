/*
 * A small QMP client: connect to a monitor socket (mapram-vm or QEMU),
 * negotiate, run commands (optionally passing descriptors by SCM_RIGHTS),
 * and wait for events.  Events that arrive while waiting for a reply are
 * queued, so none is lost.  Used by the mapram tool and by the tests.
 * Not thread-safe: one client per thread.
 */
#ifndef MAPRAM_QMP_CLIENT_H
#define MAPRAM_QMP_CLIENT_H

#include <jansson.h>
/* jansson's json_t stays here on purpose: QMP replies and events are
 * JSON values handed to the caller as they are. */
#include <stddef.h>

#include "mapram/error.h"

struct mr_qmp_client;

/* Connect, read the greeting and run qmp_capabilities.  timeout_ms < 0
 * waits forever. */
struct mr_qmp_client *mr_qmp_client_connect(const char *socket_path,
                                            int timeout_ms,
                                            struct mr_error *err);
void mr_qmp_client_close(struct mr_qmp_client *c);

/* The greeting object as received (borrowed). */
json_t *mr_qmp_client_greeting(struct mr_qmp_client *c);

/*
 * Run `command` with `args` (stolen; NULL for none), sending `fds` with the
 * request.  Returns the "return" value (new reference), or NULL with `err`
 * holding the server's "desc" (class in mr_qmp_client_error_class()), or a
 * transport error / timeout.  A signal does not abandon a command once it
 * is being sent: the reply is waited for until the timeout (only
 * mr_qmp_client_wait_event returns -EINTR, so a caller can check flags).
 */
json_t *mr_qmp_client_execute(struct mr_qmp_client *c, const char *command,
                              json_t *args, const int *fds, size_t nfds,
                              int timeout_ms, struct mr_error *err);
/* The pid of the monitor's process (SO_PEERCRED), or -1 if unknown. */
int mr_qmp_client_peer_pid(struct mr_qmp_client *c);
/* Class of the last error reply ("GenericError", ...), "" if none. */
const char *mr_qmp_client_error_class(struct mr_qmp_client *c);

/* Wait for the next event named `name` (any event if NULL), looking at the
 * queue first.  Returns the whole event object (new reference). */
json_t *mr_qmp_client_wait_event(struct mr_qmp_client *c, const char *name,
                                 int timeout_ms, struct mr_error *err);
/* Next queued or already-readable event without blocking, or NULL. */
json_t *mr_qmp_client_poll_event(struct mr_qmp_client *c);

#endif
