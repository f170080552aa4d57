/*
 * A small QMP client (include/mapram/qmp_client.h): connects, negotiates,
 * runs commands with an id of its own and matches replies by it, passes
 * descriptors by SCM_RIGHTS with the request bytes, and queues events that
 * arrive while it waits, so none is lost.  Input goes through the same
 * bounded streaming scanner as the server's.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mapram/qmp_client.h"
#include "qmp/json_stream.h"

#define CLIENT_READ_BYTES (64u << 10)
#define CLIENT_MAX_EVENTS 4096
#define CLIENT_MAX_FDS 64

struct mr_qmp_client {
    int fd;
    struct mr_json_stream in;
    json_t *greeting;
    json_t *events;          /* queued events, oldest first */
    char error_class[64];
    unsigned long next_id;
    char *rbuf;              /* bytes read, [roff, rlen) not yet scanned */
    size_t roff, rlen;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* Milliseconds left for poll(): -1 forever, 0 when past. */
static int remaining(int64_t deadline)
{
    int64_t left;

    if (deadline < 0)
        return -1;
    left = deadline - now_ms();
    return left < 0 ? 0 : (left > INT32_MAX ? INT32_MAX : (int)left);
}

/* A signal cuts a wait for an event short so the caller can look at its
 * flags (the mapram tool installs its handlers without SA_RESTART); a
 * command already sent (`through_signals`) is waited for to its reply,
 * or a half-sent line would corrupt the stream and the VM would act on a
 * command its caller took for failed. */
static int wait_fd(int fd, short events, int64_t deadline,
                   bool through_signals, struct mr_error *err)
{
    struct pollfd p = { fd, events, 0 };
    int rc;

    do
        rc = poll(&p, 1, remaining(deadline));
    while (rc < 0 && errno == EINTR && through_signals);
    if (rc < 0 && errno == EINTR)
        return mr_error_set(err, -EINTR, "interrupted");
    if (rc < 0)
        return mr_error_set(err, -errno, "poll failed: %s", strerror(errno));
    if (rc == 0)
        return mr_error_set(err, -ETIMEDOUT,
                            "timed out waiting for the monitor");
    return 0;
}

static void queue_event(struct mr_qmp_client *c, json_t *ev)
{
    if (json_array_size(c->events) >= CLIENT_MAX_EVENTS)
        json_array_remove(c->events, 0);
    json_array_append_new(c->events, ev);
}

/* Next message from the server; `deadline` < 0 waits forever, 0 never. */
static json_t *next_message(struct mr_qmp_client *c, int64_t deadline,
                            bool through_signals, struct mr_error *err)
{
    struct mr_json_item item;
    ssize_t n;

    for (;;) {
        while (c->roff < c->rlen) {
            c->roff += mr_json_stream_feed(&c->in, c->rbuf + c->roff,
                                           c->rlen - c->roff, &item);
            if (item.kind == MR_JSON_VALUE && json_is_object(item.value))
                return item.value;
            if (item.kind != MR_JSON_NONE) {
                /* e.g. an SSH banner: whatever this is, it is not QMP. */
                json_decref(item.value);
                mr_error_set(err, -EPROTO,
                             "not a QMP monitor (unexpected data)");
                return NULL;
            }
        }
        if (wait_fd(c->fd, POLLIN, deadline, through_signals, err) < 0)
            return NULL;
        n = recv(c->fd, c->rbuf, CLIENT_READ_BYTES, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            mr_error_set(err, n < 0 ? -errno : -ECONNRESET,
                         "the monitor closed the connection");
            return NULL;
        }
        c->roff = 0;
        c->rlen = (size_t)n;
    }
}

static int send_all(struct mr_qmp_client *c, const char *buf, size_t len,
                    const int *fds, size_t nfds, int64_t deadline,
                    struct mr_error *err)
{
    union {
        char space[CMSG_SPACE(CLIENT_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    ssize_t n;

    if (nfds > CLIENT_MAX_FDS)
        return mr_error_set(err, -EINVAL, "Too many descriptors (%zu, max %d)",
                            nfds, CLIENT_MAX_FDS);
    while (len > 0) {
        struct iovec iov = { (void *)buf, len };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (nfds) {
            struct cmsghdr *cm;

            msg.msg_control = ctl.space;
            msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
            cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
            memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
        }
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(c->fd, POLLOUT, deadline, true, err) < 0)
                return err ? err->code : -ETIMEDOUT;
            continue;
        }
        if (n < 0)
            return mr_error_set(err, -errno, "Failed to send to QMP server: %s",
                                strerror(errno));
        buf += n;
        len -= (size_t)n;
        nfds = 0; /* the descriptors went with the first bytes */
    }
    return 0;
}

static int connect_retry(const char *path, int64_t deadline,
                         struct mr_error *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path))
        return mr_error_set(err, -ENAMETOOLONG,
                            "UNIX socket path '%s' is too long", path);
    strcpy(sa.sun_path, path);
    for (;;) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return mr_error_set(err, -errno, "Failed to create socket: %s",
                                strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        close(fd);
        /* The server may not be listening yet: retry until the deadline.
         * Callers add the path to the message (mapram: "cannot connect to
         * the VM monitor at '<path>': ..."). */
        if ((errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN) ||
            remaining(deadline) == 0)
            return mr_error_set(err, -errno, "%s", strerror(errno));
        usleep(10000);
    }
}

struct mr_qmp_client *mr_qmp_client_connect(const char *socket_path,
                                            int timeout_ms,
                                            struct mr_error *err)
{
    int64_t deadline = deadline_of(timeout_ms);
    struct mr_qmp_client *c = calloc(1, sizeof(*c));
    json_t *ret;

    if (c)
        c->fd = -1;

    if (!c || !(c->rbuf = malloc(CLIENT_READ_BYTES)) ||
        !(c->events = json_array())) {
        mr_error_set(err, -ENOMEM, "Out of memory");
        goto fail;
    }
    mr_json_stream_init(&c->in, 0);
    c->fd = connect_retry(socket_path, deadline, err);
    if (c->fd < 0)
        goto fail;
    c->greeting = next_message(c, deadline, false, err);
    if (!c->greeting) {
        /* Connected, yet silent: the server took the connection but sends
         * no greeting (QEMU serves one client per -qmp socket). */
        if (err && err->code == -ETIMEDOUT) {
            mr_error_clear(err);
            mr_error_set(err, -ETIMEDOUT, "no QMP greeting within %d ms",
                         timeout_ms);
        }
        goto fail;
    }
    if (!json_is_object(json_object_get(c->greeting, "QMP"))) {
        mr_error_set(err, -EPROTO, "not a QMP monitor (no QMP greeting)");
        goto fail;
    }
    ret = mr_qmp_client_execute(c, "qmp_capabilities", NULL, NULL, 0,
                                remaining(deadline), err);
    if (!ret)
        goto fail;
    json_decref(ret);
    return c;
fail:
    mr_qmp_client_close(c);
    return NULL;
}

void mr_qmp_client_close(struct mr_qmp_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    mr_json_stream_destroy(&c->in);
    json_decref(c->greeting);
    json_decref(c->events);
    free(c->rbuf);
    free(c);
}

json_t *mr_qmp_client_greeting(struct mr_qmp_client *c)
{
    return c->greeting;
}

int mr_qmp_client_peer_pid(struct mr_qmp_client *c)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
        len != sizeof(cred) || cred.pid <= 0)
        return -1;
    return (int)cred.pid;
}

const char *mr_qmp_client_error_class(struct mr_qmp_client *c)
{
    return c->error_class;
}

static json_t *reply_of(struct mr_qmp_client *c, json_t *msg,
                        struct mr_error *err)
{
    json_t *ret = json_object_get(msg, "return"), *e;
    const char *cls, *desc;

    if (ret) {
        json_incref(ret);
        json_decref(msg);
        return ret;
    }
    e = json_object_get(msg, "error");
    cls = json_string_value(json_object_get(e, "class"));
    desc = json_string_value(json_object_get(e, "desc"));
    snprintf(c->error_class, sizeof(c->error_class), "%s",
             cls ? cls : "GenericError");
    mr_error_set(err, -EIO, "%s", desc ? desc : "malformed QMP error reply");
    json_decref(msg);
    return NULL;
}

json_t *mr_qmp_client_execute(struct mr_qmp_client *c, const char *command,
                              json_t *args, const int *fds, size_t nfds,
                              int timeout_ms, struct mr_error *err)
{
    int64_t deadline = deadline_of(timeout_ms);
    char id[32], *text;
    json_t *req, *msg;
    int rc;

    c->error_class[0] = '\0';
    snprintf(id, sizeof(id), "mr-%lu", ++c->next_id);
    req = json_pack("{s:s,s:s}", "execute", command, "id", id);
    if (req && args)
        json_object_set(req, "arguments", args);
    json_decref(args);
    text = req ? json_dumps(req, JSON_ENSURE_ASCII) : NULL;
    json_decref(req);
    if (!text) {
        mr_error_set(err, -ENOMEM, "Out of memory");
        return NULL;
    }
    rc = send_all(c, text, strlen(text), fds, nfds, deadline, err);
    if (rc == 0)
        rc = send_all(c, "\n", 1, NULL, 0, deadline, err);
    free(text);
    if (rc < 0)
        return NULL;
    while ((msg = next_message(c, deadline, true, err))) {
        const char *rid = json_string_value(json_object_get(msg, "id"));

        if (json_object_get(msg, "event"))
            queue_event(c, msg);
        else if (rid && !strcmp(rid, id))
            return reply_of(c, msg, err);
        else
            json_decref(msg); /* a reply to an earlier, abandoned request */
    }
    return NULL;
}

static json_t *take_queued(struct mr_qmp_client *c, const char *name)
{
    size_t i;
    json_t *ev;

    json_array_foreach(c->events, i, ev) {
        const char *n = json_string_value(json_object_get(ev, "event"));

        if (!name || (n && !strcmp(n, name))) {
            json_incref(ev);
            json_array_remove(c->events, i);
            return ev;
        }
    }
    return NULL;
}

json_t *mr_qmp_client_wait_event(struct mr_qmp_client *c, const char *name,
                                 int timeout_ms, struct mr_error *err)
{
    int64_t deadline = deadline_of(timeout_ms);
    struct mr_error local = MR_ERROR_INIT;
    json_t *ev = take_queued(c, name), *msg;

    while (!ev && (msg = next_message(c, deadline, false, &local))) {
        if (json_object_get(msg, "event"))
            queue_event(c, msg);
        else
            json_decref(msg);
        ev = take_queued(c, name);
    }
    if (!ev) {
        if (local.code == -ETIMEDOUT)
            mr_error_set(err, -ETIMEDOUT, "timed out waiting for event %s",
                         name ? name : "(any)");
        else
            mr_error_propagate(err, &local);
    }
    return ev;
}

json_t *mr_qmp_client_poll_event(struct mr_qmp_client *c)
{
    json_t *ev = take_queued(c, NULL), *msg;

    while (!ev && (msg = next_message(c, 0, false, NULL))) {
        if (json_object_get(msg, "event"))
            queue_event(c, msg);
        else
            json_decref(msg);
        ev = take_queued(c, NULL);
    }
    return ev;
}
