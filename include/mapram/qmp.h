/*
 * QMP monitor server (docs/qmp.md, docs/monitor.md): QEMU's protocol and
 * messages over UNIX sockets, command tables registered by the modules
 * that own what they control, HMP through human-monitor-command, events.
 * Handlers run one at a time on the monitor thread and must not block.
 */
#ifndef MAPRAM_QMP_H
#define MAPRAM_QMP_H

#include <jansson.h>
/* jansson's json_t stays in this API on purpose: QMP is JSON, and the
 * handlers build and read QMP values; mapram.pc requires jansson. */
#include <stdbool.h>
#include <stdio.h>

#include "mapram/error.h"

struct mr_qmp_server;
struct mr_qmp_call; /* one request being executed */

/* Argument types, checked before the handler runs (docs/qmp.md, "Wire protocol"). */
enum mr_qmp_type {
    MR_QMP_T_ANY,
    MR_QMP_T_STR,
    MR_QMP_T_STR_OR_NULL, /* tls-* parameters accept null */
    MR_QMP_T_BOOL,
    MR_QMP_T_INT,         /* int64 */
    MR_QMP_T_UINT8,
    MR_QMP_T_UINT16,
    MR_QMP_T_UINT32,
    MR_QMP_T_UINT64,      /* also QAPI 'size' */
    MR_QMP_T_NUMBER,
    MR_QMP_T_OBJECT,
    MR_QMP_T_ARRAY,
};

struct mr_qmp_arg {
    const char *name;
    enum mr_qmp_type type;
    bool optional;
};

/*
 * A command handler.  `args` is the validated "arguments" object (an empty
 * object when the request had none).  Return the value for "return" as a
 * new reference; returning NULL with `err` unset answers {"return": {}};
 * returning NULL with `err` set answers an error of class GenericError
 * unless the handler chose another with mr_qmp_call_set_error_class().
 */
typedef json_t *(*mr_qmp_handler)(struct mr_qmp_call *call, json_t *args,
                                  struct mr_error *err);

struct mr_qmp_command {
    const char *name;
    mr_qmp_handler handler;
    /* Argument rules, terminated by { NULL }; NULL means "no arguments". */
    const struct mr_qmp_arg *args;
};

/*
 * An HMP command (reached through human-monitor-command).  `name` may be
 * two words for info subcommands ("info status").  `args` is the rest of
 * the command line after the name, leading blanks removed.  The handler
 * prints to `out`; HMP errors are printed ("Error: ...\n"), not returned.
 */
typedef void (*mr_hmp_handler)(struct mr_qmp_call *call, const char *args,
                               FILE *out);

struct mr_hmp_command {
    const char *name;
    mr_hmp_handler handler;
};

struct mr_qmp_server_config {
    int version_major, version_minor, version_micro; /* greeting "qemu" */
    const char *package;                             /* greeting "package" */
};

/* Thread safety: mr_qmp_server_emit_event() and mr_qmp_server_quiesce()
 * may be called from any thread; everything else is for the owner
 * (registration before start) or for handlers (mr_qmp_call_*). */
struct mr_qmp_server *mr_qmp_server_new(const struct mr_qmp_server_config *cfg,
                                        struct mr_error *err);
/* Stops the monitor thread if running, closes every connection and socket. */
void mr_qmp_server_free(struct mr_qmp_server *srv);

/*
 * Shutdown, in two steps.  mr_qmp_server_quiesce() (any thread, also a
 * handler): from now on every command but qmp_capabilities, query-version
 * and query-commands answers MR_QMP_SHUTDOWN_DESC, so no client can start
 * work.  mr_qmp_server_stop() (the owner, never a handler): quiesce, send
 * what is queued if the socket takes it, join the monitor thread and close
 * every connection and listening socket.  Afterwards no handler runs and
 * events go nowhere, but the object stays valid (other threads may still
 * emit) until mr_qmp_server_free().
 */
#define MR_QMP_SHUTDOWN_DESC "The monitor is shutting down"
void mr_qmp_server_quiesce(struct mr_qmp_server *srv);
void mr_qmp_server_stop(struct mr_qmp_server *srv);

/* Listen on a UNIX socket (created mode 0600, a stale socket file replaced).
 * May be called several times for several sockets. */
int mr_qmp_server_listen_unix(struct mr_qmp_server *srv, const char *path,
                              struct mr_error *err);

/* Register commands before mr_qmp_server_start().  Tables end with {NULL};
 * they must outlive the server.  `opaque` is returned by
 * mr_qmp_call_opaque() inside these handlers. */
int mr_qmp_server_register(struct mr_qmp_server *srv,
                           const struct mr_qmp_command *cmds, void *opaque,
                           struct mr_error *err);
int mr_qmp_server_register_hmp(struct mr_qmp_server *srv,
                               const struct mr_hmp_command *cmds, void *opaque,
                               struct mr_error *err);

/* Called on the monitor thread whenever a connection closes (fdsets drop
 * empty sets then, docs/fdsets.md, "Lifecycle"). */
void mr_qmp_server_on_disconnect(struct mr_qmp_server *srv,
                                 void (*cb)(void *opaque), void *opaque);

/* Run the monitor on its own thread. */
int mr_qmp_server_start(struct mr_qmp_server *srv, struct mr_error *err);

/* Broadcast an event to every connection in command mode.  `data` is
 * stolen (NULL for events without members).  Any thread. */
void mr_qmp_server_emit_event(struct mr_qmp_server *srv, const char *name,
                              json_t *data);

/* --- inside a handler --- */
void *mr_qmp_call_opaque(struct mr_qmp_call *call);
struct mr_qmp_server *mr_qmp_call_server(struct mr_qmp_call *call);
/* Take the oldest descriptor received on this connection and not yet
 * claimed; the caller owns it.  -1 when there is none. */
int mr_qmp_call_take_fd(struct mr_qmp_call *call);
void mr_qmp_call_set_error_class(struct mr_qmp_call *call, const char *cls);

/*
 * Answer later, for work that takes long (it runs on the caller's own
 * thread): the handler takes its reply with mr_qmp_call_defer() and
 * returns NULL (its err is ignored).  That connection processes no other
 * request until mr_qmp_deferred_finish() (any thread) queues the reply,
 * with a handler's rules for `ret` (stolen) and `err`; every other
 * connection is served meanwhile.  The reply of a connection that closed
 * is dropped.  Finish every deferred reply before mr_qmp_server_free().
 */
struct mr_qmp_deferred;
struct mr_qmp_deferred *mr_qmp_call_defer(struct mr_qmp_call *call);
void mr_qmp_deferred_finish(struct mr_qmp_deferred *d, json_t *ret,
                            const struct mr_error *err);

#endif
