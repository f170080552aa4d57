/*
 * A minimal implementation of include/mapram/qmp_client.h, built only
 * while the real one (src/lib/qmp/client.c, branch `qmp`) is absent, so
 * the save/restore tool links and can be tested meanwhile.  One request
 * at a time, replies matched by id, events queued, lines capped.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mapram/qmp_client.h"

#define LINE_MAX_BYTES (16u << 20)

struct mr_qmp_client {
    int fd;
    char *buf;
    size_t len, cap;
    json_t *greeting;
    json_t *events;            /* array, oldest first */
    unsigned next_id;
    char error_class[64];
};

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Take one complete line out of the buffer, or NULL. */
static char *take_line(struct mr_qmp_client *c)
{
    char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
    size_t n;
    char *line;

    if (!nl)
        return NULL;
    n = (size_t)(nl - c->buf);
    line = malloc(n + 1);
    if (!line)
        return NULL;
    memcpy(line, c->buf, n);
    line[n] = '\0';
    memmove(c->buf, nl + 1, c->len - n - 1);
    c->len -= n + 1;
    return line;
}

/* Read until a line is complete; 0 timeout means just look. */
static json_t *read_message(struct mr_qmp_client *c, int timeout_ms,
                            struct mr_error *err)
{
    double deadline = now_ms() + timeout_ms;

    for (;;) {
        char *line = take_line(c);

        if (line) {
            json_error_t jerr;
            json_t *msg = json_loads(line, 0, &jerr);

            free(line);
            if (!json_is_object(msg)) {
                json_decref(msg);
                mr_error_set(err, -EPROTO, "not a QMP monitor (unexpected data)");
                return NULL;
            }
            return msg;
        }
        if (c->len >= LINE_MAX_BYTES) {
            mr_error_set(err, -EPROTO, "QMP message larger than %u bytes",
                         LINE_MAX_BYTES);
            return NULL;
        }
        int wait = timeout_ms < 0 ? -1 : (int)(deadline - now_ms());
        if (timeout_ms >= 0 && wait < 0)
            wait = 0;
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int rc = poll(&pfd, 1, wait);

        if (rc < 0 && errno == EINTR) {
            mr_error_set(err, -EINTR, "interrupted");
            return NULL;
        }
        if (rc <= 0) {
            mr_error_set(err, -ETIMEDOUT, "timed out waiting for the monitor");
            return NULL;
        }
        if (c->cap - c->len < 65536) {
            size_t ncap = c->cap ? c->cap * 2 : 131072;
            char *nbuf = realloc(c->buf, ncap);

            if (!nbuf) {
                mr_error_set(err, -ENOMEM, "out of memory");
                return NULL;
            }
            c->buf = nbuf;
            c->cap = ncap;
        }
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            mr_error_set(err, n == 0 ? -ECONNRESET : -errno,
                         "the monitor closed the connection");
            return NULL;
        }
        c->len += (size_t)n;
    }
}

static int send_all(int fd, const char *text, const int *fds, size_t nfds,
                    struct mr_error *err)
{
    size_t len = strlen(text), off = 0;
    char cbuf[CMSG_SPACE(sizeof(int) * 16)];

    if (nfds > 16)
        return mr_error_set(err, -EINVAL, "too many descriptors");
    while (off < len) {
        struct iovec iov = { (char *)text + off, len - off };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (nfds && off == 0) {
            struct cmsghdr *cm;

            memset(cbuf, 0, sizeof(cbuf));
            mh.msg_control = cbuf;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
        }
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mr_error_set(err, -errno, "cannot write to the monitor: %s",
                                strerror(errno));
        off += (size_t)n;
    }
    return 0;
}

struct mr_qmp_client *mr_qmp_client_connect(const char *socket_path,
                                            int timeout_ms,
                                            struct mr_error *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct mr_qmp_client *c;
    json_t *ret;

    if (strlen(socket_path) >= sizeof(sa.sun_path)) {
        mr_error_set(err, -ENAMETOOLONG, "socket path too long");
        return NULL;
    }
    strcpy(sa.sun_path, socket_path);
    c = calloc(1, sizeof(*c));
    if (!c || !(c->events = json_array())) {
        free(c);
        mr_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        mr_error_set(err, -errno, "%s", 
                     strerror(errno));
        mr_qmp_client_close(c);
        return NULL;
    }
    c->greeting = read_message(c, timeout_ms, err);
    if (c->greeting && !json_object_get(c->greeting, "QMP"))
        mr_error_set(err, -EPROTO, "not a QMP monitor (no QMP greeting)");
    if (mr_error_is_set(err)) {
        mr_qmp_client_close(c);
        return NULL;
    }
    ret = mr_qmp_client_execute(c, "qmp_capabilities", NULL, NULL, 0,
                                timeout_ms, err);
    if (!ret) {
        mr_qmp_client_close(c);
        return NULL;
    }
    json_decref(ret);
    return c;
}

void mr_qmp_client_close(struct mr_qmp_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    json_decref(c->greeting);
    json_decref(c->events);
    free(c->buf);
    free(c);
}

json_t *mr_qmp_client_greeting(struct mr_qmp_client *c)
{
    return c->greeting;
}

const char *mr_qmp_client_error_class(struct mr_qmp_client *c)
{
    return c->error_class;
}

static json_t *take_reply(struct mr_qmp_client *c, json_t *msg,
                          struct mr_error *err)
{
    json_t *e = json_object_get(msg, "error");
    json_t *ret;

    if (e) {
        const char *cls = json_string_value(json_object_get(e, "class"));
        const char *desc = json_string_value(json_object_get(e, "desc"));

        snprintf(c->error_class, sizeof(c->error_class), "%s", cls ? cls : "");
        mr_error_set(err, -EIO, "%s", desc ? desc : "error without desc");
        json_decref(msg);
        return NULL;
    }
    ret = json_incref(json_object_get(msg, "return"));
    json_decref(msg);
    if (!ret)
        mr_error_set(err, -EPROTO, "QMP reply without 'return'");
    return ret;
}

json_t *mr_qmp_client_execute(struct mr_qmp_client *c, const char *command,
                              json_t *args, const int *fds, size_t nfds,
                              int timeout_ms, struct mr_error *err)
{
    unsigned id = ++c->next_id;
    json_t *req = json_pack("{s:s,s:I}", "execute", command, "id",
                            (json_int_t)id);
    char *text;
    double deadline = now_ms() + timeout_ms;

    c->error_class[0] = '\0';
    if (req && args)
        json_object_set_new(req, "arguments", args);
    else
        json_decref(args);
    text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!text) {
        mr_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    if (send_all(c->fd, text, fds, nfds, err) < 0 ||
        send_all(c->fd, "\n", NULL, 0, err) < 0) {
        free(text);
        return NULL;
    }
    free(text);
    for (;;) {
        int left = timeout_ms < 0 ? -1 : (int)(deadline - now_ms());
        json_t *msg = read_message(c, left < 0 && timeout_ms >= 0 ? 0 : left,
                                   err);

        if (!msg)
            return NULL;
        if (json_object_get(msg, "event")) {
            json_array_append_new(c->events, msg);
            continue;
        }
        if (json_integer_value(json_object_get(msg, "id")) != (json_int_t)id) {
            json_decref(msg);
            continue;
        }
        return take_reply(c, msg, err);
    }
}

static json_t *dequeue(struct mr_qmp_client *c, const char *name)
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
    double deadline = now_ms() + timeout_ms;
    json_t *ev = dequeue(c, name);

    while (!ev) {
        int left = timeout_ms < 0 ? -1 : (int)(deadline - now_ms());
        json_t *msg;

        if (timeout_ms >= 0 && left <= 0) {
            mr_error_set(err, -ETIMEDOUT, "timed out waiting for event %s",
                         name ? name : "(any)");
            return NULL;
        }
        msg = read_message(c, left, err);
        if (!msg)
            return NULL;
        if (json_object_get(msg, "event"))
            json_array_append_new(c->events, msg);
        else
            json_decref(msg);
        ev = dequeue(c, name);
    }
    return ev;
}

json_t *mr_qmp_client_poll_event(struct mr_qmp_client *c)
{
    struct mr_error err = MR_ERROR_INIT;

    return mr_qmp_client_wait_event(c, NULL, 0, &err);
}
