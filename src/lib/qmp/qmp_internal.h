/*
 * Internals of the QMP monitor shared by its files, the unit tests and the
 * fuzz target.  The request-processing core (a connection fed bytes, its
 * replies collected in an output buffer) works without sockets or threads:
 * mr_qmp_conn_new(srv, -1) gives a connection to drive by hand.
 */
#ifndef MAPRAM_QMP_INTERNAL_H
#define MAPRAM_QMP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "mapram/qmp.h"
#include "qmp/json_stream.h"

/* Limits on what a client controls. */
#define MR_QMP_MAX_REQUEST_BYTES (16u << 20) /* one JSON value */
#define MR_QMP_MAX_OUTPUT_BYTES (16u << 20)  /* unread replies+events: drop */
#define MR_QMP_OUTPUT_PAUSE_BYTES (1u << 20) /* stop processing requests */
#define MR_QMP_MAX_QUEUED_FDS 16             /* received, not yet claimed */
#define MR_QMP_MAX_CONNECTIONS 256
#define MR_QMP_MAX_LISTENERS 8

struct mr_qmp_table {
    const struct mr_qmp_command *cmds;
    void *opaque;
};

struct mr_hmp_table {
    const struct mr_hmp_command *cmds;
    void *opaque;
};

struct mr_qmp_disconnect_cb {
    void (*cb)(void *opaque);
    void *opaque;
};

struct mr_qmp_conn {
    struct mr_qmp_server *srv;
    struct mr_qmp_conn *next;  /* server's list, under srv->lock */
    int fd;                    /* -1 for a socketless connection */
    struct mr_json_stream in;
    bool negotiated;           /* command mode; written under srv->lock */
    bool oob;                  /* "oob" enabled by qmp_capabilities */
    bool eof;                  /* peer shut down its writing side */
    bool eof_done;             /* ... and everything before it processed */
    /* A deferred reply not yet finished: no other request runs.  Under
     * srv->lock (the finishing thread clears it). */
    struct mr_qmp_deferred *deferred;
    _Atomic bool dead;         /* close as soon as possible; any thread */
    int fdq[MR_QMP_MAX_QUEUED_FDS];
    size_t nr_fdq;
    /* Received, not yet processed: waits while the output backlog is
     * above MR_QMP_OUTPUT_PAUSE_BYTES (at most one read's worth). */
    char *stash;
    size_t stash_len;
    int stash_fds[MR_QMP_MAX_QUEUED_FDS];
    size_t nr_stash_fds;
    /* Output, under srv->lock: bytes [out_off, out_len) are unsent. */
    char *out;
    size_t out_off, out_len, out_cap;
};

struct mr_qmp_call {
    struct mr_qmp_server *srv;
    struct mr_qmp_conn *conn;
    void *opaque;
    const char *error_class; /* NULL: GenericError */
    json_t *id;              /* the request's, borrowed */
    struct mr_qmp_deferred *deferred;
};

struct mr_qmp_deferred {
    struct mr_qmp_server *srv;
    struct mr_qmp_conn *conn;  /* under srv->lock; NULL once it closed */
    json_t *id;                /* own reference, or NULL */
};

struct mr_qmp_server {
    struct mr_qmp_server_config cfg;
    char *package;
    struct mr_qmp_table *tables;
    size_t nr_tables;
    struct mr_hmp_table *hmp_tables;
    size_t nr_hmp_tables;
    struct mr_qmp_disconnect_cb *disc;
    size_t nr_disc;

    pthread_mutex_t lock;      /* conns list and output buffers */
    struct mr_qmp_conn *conns;
    size_t nr_conns;

    int listen_fds[MR_QMP_MAX_LISTENERS];
    char *listen_paths[MR_QMP_MAX_LISTENERS];
    size_t nr_listen;
    int wake_fd;               /* eventfd: events queued, or stop */
    pthread_t thread;
    bool running;
    bool stopping;             /* under lock */
    _Atomic bool quiesced;     /* refuse commands that could start work */
    bool accept_backoff;       /* out of descriptors: pause accepting */
};

/*
 * Calls go one way: server.c -> dispatch.c -> the tables (registry.c) and
 * the built-in handlers (commands.c, hmp.c) -> the helpers (call.c,
 * args.c, json_stream.c).  Nothing below calls up.
 */

/* --- connections (dispatch.c; called by server.c, tests, fuzzing) --- */
struct mr_qmp_conn *mr_qmp_conn_new(struct mr_qmp_server *srv, int fd);
/* Closes queued descriptors and the socket; not linked in the list.  With
 * srv->lock held (or no other thread): a deferred reply is detached. */
void mr_qmp_conn_free(struct mr_qmp_conn *conn);
/* Queue the greeting. */
void mr_qmp_conn_greet(struct mr_qmp_conn *conn);
/* Bytes received with the descriptors that came with them (taken over). */
void mr_qmp_conn_feed(struct mr_qmp_conn *conn, const char *data, size_t len,
                      const int *fds, size_t nr_fds);
/* Process stashed input and a pending EOF (the output backlog went down,
 * or a deferred reply was finished). */
void mr_qmp_conn_resume(struct mr_qmp_conn *conn);
/* Whether mr_qmp_conn_resume() has work it may do now. */
bool mr_qmp_conn_can_resume(struct mr_qmp_conn *conn);
/* Dead, or nothing left to process or send after EOF (srv->lock held). */
bool mr_qmp_conn_finished(struct mr_qmp_conn *conn);
/* Wake the monitor thread (its eventfd). */
void mr_qmp_server_wake(struct mr_qmp_server *srv);
/* The peer closed its side: process the stash, finish a pending scalar,
 * drop queued fds. */
void mr_qmp_conn_feed_eof(struct mr_qmp_conn *conn);
/* Serialise `msg` (stolen) as one line + "\r\n" into the output buffer;
 * past MR_QMP_MAX_OUTPUT_BYTES the connection is marked dead instead. */
void mr_qmp_conn_send(struct mr_qmp_conn *conn, json_t *msg);
/* Same, with srv->lock already held. */
void mr_qmp_conn_append_locked(struct mr_qmp_conn *conn, const char *line,
                               size_t len);
/* Copy out and clear the pending output (tests, fuzzing). */
char *mr_qmp_conn_take_output(struct mr_qmp_conn *conn, size_t *len);
/* A timestamped event object (new reference); `data` stolen. */
json_t *mr_qmp_event_new(const char *name, json_t *data);

/* --- the tables (registry.c; data only) --- */
const struct mr_qmp_command *mr_qmp_find_command(struct mr_qmp_server *srv,
                                                 const char *name,
                                                 void **opaque);
const struct mr_hmp_command *mr_hmp_find_command(struct mr_qmp_server *srv,
                                                 const char *name,
                                                 void **opaque);

/* --- built-in handlers (commands.c, hmp.c) --- */
extern const struct mr_qmp_command mr_qmp_builtin_commands[];
/* human-monitor-command */
json_t *mr_qmp_hmp_command(struct mr_qmp_call *call, json_t *args,
                           struct mr_error *err);

/* --- helpers (call.c: beside the public mr_qmp_call_* accessors) --- */
bool mr_qmp_call_negotiated(struct mr_qmp_call *call);
/* Command mode from now on, "oob" as negotiated. */
void mr_qmp_call_negotiate(struct mr_qmp_call *call, bool oob);

/* --- argument rules (args.c, pure) --- */
int mr_qmp_args_check(const struct mr_qmp_arg *rules, json_t *args,
                      struct mr_error *err);

#endif
