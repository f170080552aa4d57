/*
 * The request-processing core: a connection fed bytes and descriptors
 * queues its replies, without sockets or threads (unit-tested, fuzzed).
 * Per request: shape, negotiation and shutdown rules, lookup, argument
 * rules, the handler, the reply with `id`; unclaimed descriptors closed.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qmp/qmp_internal.h"

struct mr_qmp_conn *mr_qmp_conn_new(struct mr_qmp_server *srv, int fd)
{
    struct mr_qmp_conn *conn = calloc(1, sizeof(*conn));

    if (!conn)
        return NULL;
    conn->srv = srv;
    conn->fd = fd;
    mr_json_stream_init(&conn->in, MR_QMP_MAX_REQUEST_BYTES);
    return conn;
}

static void close_queued_fds(struct mr_qmp_conn *conn)
{
    while (conn->nr_fdq > 0)
        close(conn->fdq[--conn->nr_fdq]);
}

static void close_stash(struct mr_qmp_conn *conn);

/* With srv->lock held (or no other thread). */
void mr_qmp_conn_free(struct mr_qmp_conn *conn)
{
    if (!conn)
        return;
    if (conn->deferred)
        conn->deferred->conn = NULL; /* its reply will be dropped */
    close_queued_fds(conn);
    close_stash(conn);
    if (conn->fd >= 0)
        close(conn->fd);
    mr_json_stream_destroy(&conn->in);
    free(conn->out);
    free(conn);
}

void mr_qmp_conn_append_locked(struct mr_qmp_conn *conn, const char *line,
                               size_t len)
{
    size_t pending = conn->out_len - conn->out_off;

    if (conn->dead)
        return;
    if (pending + len > MR_QMP_MAX_OUTPUT_BYTES) {
        /* A client that does not read loses its connection, not our
         * memory. */
        conn->dead = true;
        return;
    }
    if (conn->out_off > 0) {
        memmove(conn->out, conn->out + conn->out_off, pending);
        conn->out_off = 0;
        conn->out_len = pending;
    }
    if (conn->out_len + len > conn->out_cap) {
        size_t cap = conn->out_cap ? conn->out_cap : 4096;
        char *p;

        while (cap < conn->out_len + len)
            cap *= 2;
        p = realloc(conn->out, cap);
        if (!p) {
            conn->dead = true;
            return;
        }
        conn->out = p;
        conn->out_cap = cap;
    }
    memcpy(conn->out + conn->out_len, line, len);
    conn->out_len += len;
}

void mr_qmp_conn_send(struct mr_qmp_conn *conn, json_t *msg)
{
    char *text = json_dumps(msg, JSON_ENSURE_ASCII);
    size_t len;

    json_decref(msg);
    if (!text) {
        conn->dead = true;
        return;
    }
    /* json_dumps output never contains a raw newline. */
    len = strlen(text);
    pthread_mutex_lock(&conn->srv->lock);
    mr_qmp_conn_append_locked(conn, text, len);
    mr_qmp_conn_append_locked(conn, "\r\n", 2);
    pthread_mutex_unlock(&conn->srv->lock);
    free(text);
}

char *mr_qmp_conn_take_output(struct mr_qmp_conn *conn, size_t *len)
{
    char *copy;

    pthread_mutex_lock(&conn->srv->lock);
    *len = conn->out_len - conn->out_off;
    copy = malloc(*len + 1);
    if (copy) {
        if (*len)
            memcpy(copy, conn->out + conn->out_off, *len);
        copy[*len] = '\0';
    }
    conn->out_off = conn->out_len = 0;
    pthread_mutex_unlock(&conn->srv->lock);
    return copy;
}

void mr_qmp_conn_greet(struct mr_qmp_conn *conn)
{
    const struct mr_qmp_server_config *cfg = &conn->srv->cfg;
    json_t *g;

    g = json_pack("{s:{s:{s:{s:i,s:i,s:i},s:s},s:[s]}}", "QMP", "version",
                  "qemu", "micro", cfg->version_micro, "minor",
                  cfg->version_minor, "major", cfg->version_major,
                  "package", conn->srv->package, "capabilities", "oob");
    if (g)
        mr_qmp_conn_send(conn, g);
    else
        conn->dead = true;
}

/*
 * A JSON string from C text that may not be valid UTF-8: an error message
 * cut at MR_ERROR_MSG_MAX can end inside a multibyte character, and a
 * handler may format raw bytes.  Trim a cut character, else mask.
 */
static json_t *text_string(const char *text)
{
    json_t *s = json_string(text);
    size_t len, i;
    char *copy;

    if (s || !(copy = strdup(text)))
        return s;
    len = strlen(copy);
    for (i = 0; i < 3 && len > 0 && (copy[len - 1] & 0x80); i++) {
        copy[--len] = '\0';
        if ((s = json_string(copy)))
            break;
    }
    if (!s) {
        for (i = 0; copy[i]; i++)
            if (copy[i] & 0x80)
                copy[i] = '?';
        s = json_string(copy);
    }
    free(copy);
    return s;
}

static json_t *error_reply(const char *cls, const char *desc)
{
    return json_pack("{s:{s:s,s:o}}", "error", "class",
                     cls ? cls : "GenericError", "desc", text_string(desc));
}

/* The request's shape (docs/monitor.md, "The protocol"); sets *name, *oob, *args. */
static int check_shape(json_t *req, const char **name, bool *oob,
                       json_t **args, struct mr_error *err)
{
    const char *exec_key = NULL, *key;
    json_t *v;

    *args = NULL;
    if (!json_is_object(req))
        return mr_error_set(err, -EINVAL, "QMP input must be a JSON object");
    json_object_foreach(req, key, v) {
        if (!strcmp(key, "execute") || !strcmp(key, "exec-oob")) {
            if (!json_is_string(v))
                return mr_error_set(err, -EINVAL,
                                    "QMP input member '%s' must be a string",
                                    key);
            if (exec_key)
                return mr_error_set(err, -EINVAL,
                                    "QMP input member '%s' clashes with '%s'",
                                    key, exec_key);
            exec_key = key;
            *name = json_string_value(v);
        } else if (!strcmp(key, "arguments")) {
            if (!json_is_object(v))
                return mr_error_set(err, -EINVAL,
                                    "QMP input member 'arguments' must be an object");
            *args = v;
        } else if (strcmp(key, "id") != 0) {
            return mr_error_set(err, -EINVAL,
                                "QMP input member '%s' is unexpected", key);
        }
    }
    if (!exec_key)
        return mr_error_set(err, -EINVAL, "QMP input lacks member 'execute'");
    *oob = !strcmp(exec_key, "exec-oob");
    return 0;
}

/* The built-ins that touch nothing but the connection and the server's
 * configuration: still served once the owner is shutting down. */
static bool serves_in_shutdown(const char *name)
{
    return !strcmp(name, "qmp_capabilities") ||
           !strcmp(name, "query-version") || !strcmp(name, "query-commands");
}

static json_t *run_command(struct mr_qmp_conn *conn, const char *name,
                           bool oob, json_t *args, json_t *id,
                           const char **cls, bool *deferred,
                           struct mr_error *err)
{
    const struct mr_qmp_command *cmd;
    struct mr_qmp_call call = { conn->srv, conn, NULL, NULL, id, NULL };
    json_t *ret;

    if (oob && !conn->oob) {
        mr_error_set(err, -EINVAL, "QMP input member 'exec-oob' is unexpected");
        return NULL;
    }
    if (!conn->negotiated && strcmp(name, "qmp_capabilities") != 0) {
        *cls = "CommandNotFound";
        mr_error_set(err, -ENOENT,
                     "Expecting capabilities negotiation with 'qmp_capabilities'");
        return NULL;
    }
    cmd = mr_qmp_find_command(conn->srv, name, &call.opaque);
    if (!cmd) {
        *cls = "CommandNotFound";
        mr_error_set(err, -ENOENT, "The command %s has not been found", name);
        return NULL;
    }
    if (oob) {
        mr_error_set(err, -EINVAL, "The command %s does not support OOB", name);
        return NULL;
    }
    if (atomic_load(&conn->srv->quiesced) && !serves_in_shutdown(name)) {
        mr_error_set(err, -ESHUTDOWN, MR_QMP_SHUTDOWN_DESC);
        return NULL;
    }
    if (mr_qmp_args_check(cmd->args, args, err) < 0)
        return NULL;
    ret = cmd->handler(&call, args, err);
    if (call.deferred) {
        json_decref(ret);
        mr_error_clear(err);
        *deferred = true;
        return NULL;
    }
    if (mr_error_is_set(err)) {
        json_decref(ret);
        *cls = call.error_class;
        return NULL;
    }
    return ret ? ret : json_object();
}

/* The reply object: {"return": ret} or the error, with `id`. */
static json_t *make_reply(json_t *ret, const char *cls,
                          const struct mr_error *err, json_t *id)
{
    json_t *reply;

    if (mr_error_is_set(err)) {
        json_decref(ret);
        reply = error_reply(cls, err->msg);
    } else {
        reply = json_pack("{s:o}", "return", ret ? ret : json_object());
    }
    if (reply && id)
        json_object_set(reply, "id", id);
    return reply;
}

/* NULL with *deferred set: the handler answers later. */
static json_t *dispatch(struct mr_qmp_conn *conn, json_t *req, bool *deferred)
{
    struct mr_error err = MR_ERROR_INIT;
    const char *name = NULL, *cls = NULL;
    json_t *args = NULL, *ret = NULL, *id;
    bool oob = false;

    id = json_is_object(req) ? json_object_get(req, "id") : NULL;
    if (check_shape(req, &name, &oob, &args, &err) == 0) {
        json_t *empty = args ? NULL : json_object();

        ret = run_command(conn, name, oob, args ? args : empty, id, &cls,
                          deferred, &err);
        json_decref(empty);
        if (*deferred)
            return NULL;
    }
    return make_reply(ret, cls, &err, id);
}

static void queue_fds(struct mr_qmp_conn *conn, const int *fds, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (conn->nr_fdq < MR_QMP_MAX_QUEUED_FDS)
            conn->fdq[conn->nr_fdq++] = fds[i];
        else
            close(fds[i]); /* a flood of descriptors is capped, not kept */
    }
}

static bool only_space(const char *p, size_t n)
{
    for (; n > 0; p++, n--)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return false;
    return true;
}

static void handle_item(struct mr_qmp_conn *conn, struct mr_json_item *item)
{
    bool deferred = false;
    json_t *reply;

    if (item->kind == MR_JSON_VALUE) {
        reply = dispatch(conn, item->value, &deferred);
        json_decref(item->value);
    } else {
        reply = error_reply(NULL, item->error);
    }
    if (reply)
        mr_qmp_conn_send(conn, reply);
    else if (!deferred)
        conn->dead = true;
    /* Descriptors that came with this request and were not claimed. */
    close_queued_fds(conn);
}

/* A deferred reply is outstanding, or (before EOF) too much output is
 * unread: further input waits. */
static bool must_wait(struct mr_qmp_conn *conn)
{
    bool wait;

    pthread_mutex_lock(&conn->srv->lock);
    wait = conn->deferred || (!conn->eof && conn->out_len - conn->out_off >=
                                                MR_QMP_OUTPUT_PAUSE_BYTES);
    pthread_mutex_unlock(&conn->srv->lock);
    return wait;
}

static void close_stash(struct mr_qmp_conn *conn)
{
    while (conn->nr_stash_fds > 0)
        close(conn->stash_fds[--conn->nr_stash_fds]);
    free(conn->stash);
    conn->stash = NULL;
    conn->stash_len = 0;
}

/* Keep unprocessed bytes (and the descriptors that go with them) until
 * the client has read its backlog of replies. */
static void stash(struct mr_qmp_conn *conn, const char *data, size_t len,
                  const int *fds, size_t nr_fds)
{
    char *p = realloc(conn->stash, conn->stash_len + len);
    size_t i;

    for (i = 0; i < nr_fds; i++) {
        if (conn->nr_stash_fds < MR_QMP_MAX_QUEUED_FDS)
            conn->stash_fds[conn->nr_stash_fds++] = fds[i];
        else
            close(fds[i]);
    }
    if (!p) {
        conn->dead = true;
        return;
    }
    memcpy(p + conn->stash_len, data, len);
    conn->stash = p;
    conn->stash_len += len;
}

/*
 * The kernel returns descriptors with the read that ends at the message
 * they were sent with, so they belong to the last request that ends in
 * this chunk with only blanks after it, or else to the request still in
 * progress at its end.  Past MR_QMP_OUTPUT_PAUSE_BYTES of unread output
 * the rest of the chunk waits in the stash: a client that pipelines
 * requests faster than it reads replies is slowed down, not dropped.
 */
static void feed_chunk(struct mr_qmp_conn *conn, const char *data, size_t len,
                       const int *fds, size_t nr_fds)
{
    bool fds_queued = nr_fds == 0;
    struct mr_json_item item;
    size_t off = 0;

    while (off < len && !conn->dead) {
        if (must_wait(conn)) {
            stash(conn, data + off, len - off, fds_queued ? NULL : fds,
                  fds_queued ? 0 : nr_fds);
            return;
        }
        off += mr_json_stream_feed(&conn->in, data + off, len - off, &item);
        if (item.kind == MR_JSON_NONE)
            break;
        if (!fds_queued && only_space(data + off, len - off)) {
            queue_fds(conn, fds, nr_fds);
            fds_queued = true;
        }
        handle_item(conn, &item);
    }
    if (!fds_queued)
        queue_fds(conn, fds, nr_fds);
}

static void resume_stash(struct mr_qmp_conn *conn)
{
    int fds[MR_QMP_MAX_QUEUED_FDS];
    size_t len = conn->stash_len, n = conn->nr_stash_fds;
    char *data = conn->stash;

    if (!data)
        return;
    memcpy(fds, conn->stash_fds, n * sizeof(int));
    conn->stash = NULL;
    conn->stash_len = conn->nr_stash_fds = 0;
    feed_chunk(conn, data, len, fds, n);
    free(data);
}

/* After EOF, once everything before it ran: a pending scalar, then drop
 * what is queued. */
static void finish_input(struct mr_qmp_conn *conn)
{
    struct mr_json_item item;

    conn->eof_done = true;
    mr_json_stream_finish(&conn->in, &item);
    if (item.kind != MR_JSON_NONE && !conn->dead)
        handle_item(conn, &item);
    close_queued_fds(conn);
    close_stash(conn);
}

void mr_qmp_conn_resume(struct mr_qmp_conn *conn)
{
    resume_stash(conn);
    if (conn->eof && !conn->eof_done && !conn->stash && !must_wait(conn))
        finish_input(conn);
}

bool mr_qmp_conn_can_resume(struct mr_qmp_conn *conn)
{
    bool pending_input = conn->stash || (conn->eof && !conn->eof_done);

    return pending_input && !conn->dead && !must_wait(conn);
}

bool mr_qmp_conn_finished(struct mr_qmp_conn *conn)
{
    return conn->dead || (conn->eof_done && !conn->deferred &&
                          conn->out_len == conn->out_off);
}

void mr_qmp_conn_feed(struct mr_qmp_conn *conn, const char *data, size_t len,
                      const int *fds, size_t nr_fds)
{
    if (conn->stash) {
        /* The server does not read while it holds a stash; other drivers
         * (tests, fuzzing) get their bytes queued behind it. */
        stash(conn, data, len, fds, nr_fds);
        mr_qmp_conn_resume(conn);
        return;
    }
    feed_chunk(conn, data, len, fds, nr_fds);
}

void mr_qmp_conn_feed_eof(struct mr_qmp_conn *conn)
{
    conn->eof = true; /* from here on, process without pausing */
    mr_qmp_conn_resume(conn);
}

void mr_qmp_server_wake(struct mr_qmp_server *srv)
{
    uint64_t one = 1;

    if (write(srv->wake_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is already non-zero, the thread will wake. */
    }
}

/* --- deferred replies --- */

struct mr_qmp_deferred *mr_qmp_call_defer(struct mr_qmp_call *call)
{
    struct mr_qmp_deferred *d = calloc(1, sizeof(*d));

    if (!d || call->deferred || !call->conn) {
        free(d);
        return NULL;
    }
    d->srv = call->srv;
    d->conn = call->conn;
    d->id = json_incref(call->id);
    pthread_mutex_lock(&call->srv->lock);
    call->conn->deferred = d;
    pthread_mutex_unlock(&call->srv->lock);
    call->deferred = d;
    return d;
}

void mr_qmp_deferred_finish(struct mr_qmp_deferred *d, json_t *ret,
                            const struct mr_error *err)
{
    struct mr_error none = MR_ERROR_INIT;
    json_t *reply = make_reply(ret, NULL, err ? err : &none, d->id);
    char *text = reply ? json_dumps(reply, JSON_ENSURE_ASCII) : NULL;

    json_decref(reply);
    pthread_mutex_lock(&d->srv->lock);
    if (d->conn) {
        if (text) {
            mr_qmp_conn_append_locked(d->conn, text, strlen(text));
            mr_qmp_conn_append_locked(d->conn, "\r\n", 2);
        } else {
            d->conn->dead = true;
        }
        d->conn->deferred = NULL;
    }
    pthread_mutex_unlock(&d->srv->lock);
    mr_qmp_server_wake(d->srv);
    free(text);
    json_decref(d->id);
    free(d);
}

json_t *mr_qmp_event_new(const char *name, json_t *data)
{
    struct timespec ts;
    json_t *ev;

    clock_gettime(CLOCK_REALTIME, &ts);
    ev = json_pack("{s:s,s:{s:I,s:I}}", "event", name, "timestamp",
                   "seconds", (json_int_t)ts.tv_sec, "microseconds",
                   (json_int_t)(ts.tv_nsec / 1000));
    if (ev && data)
        json_object_set_new(ev, "data", data);
    else
        json_decref(data);
    return ev;
}
