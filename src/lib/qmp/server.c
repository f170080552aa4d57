/*
 * The QMP monitor's sockets and thread (top of the monitor): 0600 UNIX
 * listeners, one poll() loop, SCM_RIGHTS reads, non-blocking writes, flow
 * control (unread output pauses reading, then drops the client), and the
 * shutdown steps.  Request processing is dispatch.c.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmp/qmp_internal.h"

#define READ_CHUNK_BYTES (64u << 10)
#define ACCEPT_BACKOFF_MS 100

struct mr_qmp_server *mr_qmp_server_new(const struct mr_qmp_server_config *cfg,
                                        struct mr_error *err)
{
    struct mr_qmp_server *srv = calloc(1, sizeof(*srv));

    if (!srv) {
        mr_error_set(err, -ENOMEM, "Out of memory");
        return NULL;
    }
    srv->cfg = *cfg;
    srv->package = strdup(cfg->package ? cfg->package : "");
    pthread_mutex_init(&srv->lock, NULL);
    srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!srv->package || srv->wake_fd < 0) {
        mr_error_set(err, srv->wake_fd < 0 ? -errno : -ENOMEM,
                     "Could not create the QMP monitor: %s",
                     srv->wake_fd < 0 ? strerror(errno) : "out of memory");
        mr_qmp_server_free(srv);
        return NULL;
    }
    if (mr_qmp_server_register(srv, mr_qmp_builtin_commands, NULL, err) < 0) {
        mr_qmp_server_free(srv);
        return NULL;
    }
    return srv;
}

/* Bind, restrict and listen on `bind_path`: nobody can connect before
 * listen(), so tightening the mode right after bind() leaves no window with
 * a looser one. */
static int bind_listen(int fd, const char *bind_path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    strcpy(sa.sun_path, bind_path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    if (chmod(bind_path, 0600) < 0 || listen(fd, 64) < 0) {
        int e = errno;

        unlink(bind_path);
        return -e;
    }
    return 0;
}

int mr_qmp_server_listen_unix(struct mr_qmp_server *srv, const char *path,
                              struct mr_error *err)
{
    char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct stat st;
    int fd, rc;

    if (srv->running || srv->nr_listen >= MR_QMP_MAX_LISTENERS)
        return mr_error_set(err, -EBUSY,
                            "Cannot add a QMP socket to a running monitor");
    if (strlen(path) >= sizeof(tmp))
        return mr_error_set(err, -ENAMETOOLONG,
                            "UNIX socket path '%s' is too long", path);
    /* Only a socket file (stale: nobody listens) may be replaced. */
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
        return mr_error_set(err, -EADDRINUSE,
                            "Failed to bind socket to %s: %s", path,
                            strerror(EADDRINUSE));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return mr_error_set(err, -errno, "Failed to create socket: %s",
                            strerror(errno));
    /* The socket appears under its real name only once it listens (bind a
     * temporary name, then rename), so a client that sees the file never
     * gets ECONNREFUSED.  Paths too long for the temporary name are bound
     * directly. */
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid()) <
        sizeof(tmp)) {
        rc = bind_listen(fd, tmp);
        if (rc == 0 && rename(tmp, path) < 0) {
            rc = -errno;
            unlink(tmp);
        }
    } else {
        if (lstat(path, &st) == 0)
            unlink(path);
        rc = bind_listen(fd, path);
    }
    if (rc < 0) {
        close(fd);
        return mr_error_set(err, rc, "Failed to bind socket to %s: %s", path,
                            strerror(-rc));
    }
    srv->listen_paths[srv->nr_listen] = strdup(path);
    srv->listen_fds[srv->nr_listen++] = fd;
    return 0;
}

void mr_qmp_server_emit_event(struct mr_qmp_server *srv, const char *name,
                              json_t *data)
{
    json_t *ev = mr_qmp_event_new(name, data);
    char *text = ev ? json_dumps(ev, JSON_ENSURE_ASCII) : NULL;
    struct mr_qmp_conn *c;

    json_decref(ev);
    if (!text)
        return;
    pthread_mutex_lock(&srv->lock);
    for (c = srv->conns; c; c = c->next) {
        if (!c->negotiated || c->dead)
            continue;
        mr_qmp_conn_append_locked(c, text, strlen(text));
        mr_qmp_conn_append_locked(c, "\r\n", 2);
    }
    pthread_mutex_unlock(&srv->lock);
    free(text);
    mr_qmp_server_wake(srv);
}

static void accept_all(struct mr_qmp_server *srv, int lfd)
{
    struct mr_qmp_conn *conn;
    int fd;

    while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0 ||
           errno == EINTR || errno == ECONNABORTED) {
        if (fd < 0)
            continue;
        if (srv->nr_conns >= MR_QMP_MAX_CONNECTIONS) {
            close(fd);
            continue;
        }
        conn = mr_qmp_conn_new(srv, fd);
        if (!conn) {
            close(fd);
            continue;
        }
        mr_qmp_conn_greet(conn);
        pthread_mutex_lock(&srv->lock);
        conn->next = srv->conns;
        srv->conns = conn;
        srv->nr_conns++;
        pthread_mutex_unlock(&srv->lock);
    }
    /* Out of descriptors: the listener stays readable, so stop polling it
     * for a while instead of spinning. */
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
        errno == ENOMEM)
        srv->accept_backoff = true;
}

/* One recvmsg: the bytes and the descriptors that came with them. */
static void read_conn(struct mr_qmp_conn *conn, char *buf)
{
    union {
        char space[CMSG_SPACE(MR_QMP_MAX_QUEUED_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { buf, READ_CHUNK_BYTES };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = ctl.space,
                          .msg_controllen = sizeof(ctl.space) };
    int fds[MR_QMP_MAX_QUEUED_FDS];
    size_t nr_fds = 0;
    struct cmsghdr *cm;
    ssize_t n;

    n = recvmsg(conn->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn->dead = true;
        return;
    }
    /* With MSG_CTRUNC the kernel has already dropped the excess. */
    for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        size_t i, k;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (i = 0; i < k; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (nr_fds < MR_QMP_MAX_QUEUED_FDS)
                fds[nr_fds++] = fd;
            else
                close(fd);
        }
    }
    if (n == 0) {
        while (nr_fds > 0)
            close(fds[--nr_fds]);
        mr_qmp_conn_feed_eof(conn);
        return;
    }
    mr_qmp_conn_feed(conn, buf, (size_t)n, fds, nr_fds);
}

static void write_conn(struct mr_qmp_server *srv, struct mr_qmp_conn *conn)
{
    ssize_t n;

    pthread_mutex_lock(&srv->lock);
    while (conn->out_off < conn->out_len) {
        n = send(conn->fd, conn->out + conn->out_off,
                 conn->out_len - conn->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                conn->dead = true;
            break;
        }
        conn->out_off += (size_t)n;
    }
    if (conn->out_off == conn->out_len)
        conn->out_off = conn->out_len = 0;
    pthread_mutex_unlock(&srv->lock);
}

/* Close connections that are dead or finished (EOF, output drained). */
static void sweep(struct mr_qmp_server *srv)
{
    struct mr_qmp_conn **pp = &srv->conns, *c;
    size_t closed = 0, i;

    pthread_mutex_lock(&srv->lock);
    while ((c = *pp)) {
        if (mr_qmp_conn_finished(c)) {
            *pp = c->next;
            srv->nr_conns--;
            mr_qmp_conn_free(c);
            closed++;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&srv->lock);
    while (closed-- > 0)
        for (i = 0; i < srv->nr_disc; i++)
            srv->disc[i].cb(srv->disc[i].opaque);
}

#define MAX_POLL (1 + MR_QMP_MAX_LISTENERS + MR_QMP_MAX_CONNECTIONS)

/* Build the poll set; returns false when the server is stopping. */
static bool poll_set(struct mr_qmp_server *srv, struct pollfd *pfd,
                     struct mr_qmp_conn **conns, size_t *n)
{
    struct mr_qmp_conn *c;
    size_t i, k = 0;
    bool stopping;

    pfd[k++] = (struct pollfd){ srv->wake_fd, POLLIN, 0 };
    for (i = 0; i < srv->nr_listen; i++)
        pfd[k++] = (struct pollfd){ srv->listen_fds[i],
                                    srv->accept_backoff ? 0 : POLLIN, 0 };
    pthread_mutex_lock(&srv->lock);
    stopping = srv->stopping;
    for (c = srv->conns; c && k < MAX_POLL; c = c->next) {
        size_t pending = c->out_len - c->out_off;
        short ev = 0;

        if (!c->eof && !c->stash && pending < MR_QMP_OUTPUT_PAUSE_BYTES)
            ev |= POLLIN;
        if (pending)
            ev |= POLLOUT;
        conns[k] = c;
        pfd[k++] = (struct pollfd){ c->fd, ev, 0 };
    }
    pthread_mutex_unlock(&srv->lock);
    *n = k;
    return !stopping;
}

static void *monitor_thread(void *arg)
{
    struct mr_qmp_server *srv = arg;
    struct mr_qmp_conn *conns[MAX_POLL];
    struct pollfd pfd[MAX_POLL];
    char *buf = malloc(READ_CHUNK_BYTES);
    size_t n, i;
    uint64_t v;

    while (buf && poll_set(srv, pfd, conns, &n)) {
        if (poll(pfd, n, srv->accept_backoff ? ACCEPT_BACKOFF_MS : -1) < 0 &&
            errno != EINTR)
            break;
        srv->accept_backoff = false;
        if (pfd[0].revents & POLLIN)
            while (read(srv->wake_fd, &v, sizeof(v)) > 0)
                ;
        for (i = 1; i <= srv->nr_listen; i++)
            if (pfd[i].revents & POLLIN)
                accept_all(srv, pfd[i].fd);
        for (; i < n; i++) {
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (!conns[i]->eof)
                    read_conn(conns[i], buf);
                else if (pfd[i].revents & (POLLHUP | POLLERR))
                    conns[i]->dead = true;
            }
            if (!conns[i]->dead && conns[i]->fd >= 0)
                write_conn(srv, conns[i]);
            /* Either the stash empties here, or the backlog is big enough
             * that POLLOUT brings us back, or a deferred reply's finish
             * wakes us. */
            if (mr_qmp_conn_can_resume(conns[i])) {
                mr_qmp_conn_resume(conns[i]);
                write_conn(srv, conns[i]);
            }
        }
        sweep(srv);
    }
    free(buf);
    return NULL;
}

int mr_qmp_server_start(struct mr_qmp_server *srv, struct mr_error *err)
{
    int rc;

    if (srv->running)
        return mr_error_set(err, -EBUSY, "The QMP monitor is already running");
    rc = pthread_create(&srv->thread, NULL, monitor_thread, srv);
    if (rc)
        return mr_error_set(err, -rc, "Could not start the QMP monitor: %s",
                            strerror(rc));
    srv->running = true;
    return 0;
}

void mr_qmp_server_quiesce(struct mr_qmp_server *srv)
{
    atomic_store(&srv->quiesced, true);
}

static void join_monitor_thread(struct mr_qmp_server *srv)
{
    if (!srv->running)
        return;
    pthread_mutex_lock(&srv->lock);
    srv->stopping = true;
    pthread_mutex_unlock(&srv->lock);
    mr_qmp_server_wake(srv);
    pthread_join(srv->thread, NULL);
    srv->running = false;
}

/* The last replies and events (the quit reply, SHUTDOWN) go out if the
 * peer's socket has room; nobody waits for a peer that does not read. */
static void close_connections(struct mr_qmp_server *srv)
{
    struct mr_qmp_conn *c;

    for (c = srv->conns; c; c = c->next)
        if (!c->dead && c->fd >= 0)
            write_conn(srv, c);
    pthread_mutex_lock(&srv->lock);
    while ((c = srv->conns)) {
        srv->conns = c->next;
        mr_qmp_conn_free(c);
    }
    srv->nr_conns = 0;
    pthread_mutex_unlock(&srv->lock);
}

static void close_listeners(struct mr_qmp_server *srv)
{
    size_t i;

    for (i = 0; i < srv->nr_listen; i++) {
        close(srv->listen_fds[i]);
        if (srv->listen_paths[i])
            unlink(srv->listen_paths[i]);
        free(srv->listen_paths[i]);
    }
    srv->nr_listen = 0;
}

void mr_qmp_server_stop(struct mr_qmp_server *srv)
{
    mr_qmp_server_quiesce(srv);
    join_monitor_thread(srv);
    close_connections(srv);
    close_listeners(srv);
}

void mr_qmp_server_free(struct mr_qmp_server *srv)
{
    if (!srv)
        return;
    mr_qmp_server_stop(srv);
    if (srv->wake_fd >= 0)
        close(srv->wake_fd);
    pthread_mutex_destroy(&srv->lock);
    free(srv->tables);
    free(srv->hmp_tables);
    free(srv->disc);
    free(srv->package);
    free(srv);
}
