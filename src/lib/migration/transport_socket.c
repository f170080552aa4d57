/*
 * The socket transport (docs/migration.md, "Over a socket"): `unix:PATH`
 * and `tcp:HOST:PORT` carrying the main stream forward only.  The source
 * connects on the migration thread; the destination binds on the monitor
 * thread (migrate-incoming returns with the listener ready, as QEMU's)
 * and accepts on the load thread.  Every wait polls, so a cancel or the
 * VM going away ends it.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "format/source.h"
#include "migration/transport.h"
#include "util/sock.h"

#define SOCKET_POLL_MS 100
#define SOCKET_WINDOW (4u << 20)

static bool chan_cancelled(struct mig_chan *c)
{
    return c->cancelled && c->cancelled(c->cancel_opaque);
}

/* Wait until fd is ready for `events`: 0, or -ECANCELED. */
static int wait_fd(struct mig_chan *c, int fd, short events)
{
    struct pollfd p = { .fd = fd, .events = events };

    for (;;) {
        if (chan_cancelled(c))
            return -ECANCELED;
        if (poll(&p, 1, SOCKET_POLL_MS) > 0)
            return 0;
    }
}

static int socket_check(struct mr_fdset_registry *fdsets,
                        const struct mr_mig_addr *a, bool source, bool multifd,
                        bool dio, struct mr_error *err)
{
    (void)fdsets;
    (void)a;
    (void)source;
    (void)multifd;
    (void)dio;
    (void)err;
    return 0;
}

/* Connecting may wait for the peer: it happens on the migration thread. */
static int socket_open_save(struct mig_chan *c, struct mr_error *err)
{
    (void)err;
    c->main_pending = true;
    return 0;
}

static int connect_addr(const struct mr_mig_addr *a, struct mr_error *err)
{
    if (a->socket == MR_SOCKET_UNIX)
        return mr_sock_connect_unix(a->path, err);
    return mr_sock_connect_tcp(a->host, a->port, err);
}

/* The page sockets first, then the main one, as QEMU connects them; the
 * RAM format sends the handshakes. */
static int socket_open_save_finish(struct mig_chan *c,
                                   mig_cancelled_fn cancelled, void *opaque,
                                   struct mr_error *err)
{
    int fd;

    c->cancelled = cancelled;
    c->cancel_opaque = opaque;
    for (unsigned i = 0; i < c->nchan; i++) {
        fd = connect_addr(&c->addr, err);
        if (fd < 0)
            return fd;
        c->fds[i] = fd;
    }
    fd = connect_addr(&c->addr, err);
    if (fd < 0)
        return fd;
    c->main_fd = fd;
    c->main_pending = false;
    c->stream_pos = 0;
    return 0;
}

static int socket_open_load(struct mig_chan *c, struct mr_error *err)
{
    const struct mr_mig_addr *a = &c->addr;
    int backlog = (int)c->nchan + 1;
    int fd = a->socket == MR_SOCKET_UNIX ?
             mr_sock_listen_unix(a->path, backlog, err) :
             mr_sock_listen_tcp(a->host, a->port, backlog, err);

    if (fd < 0)
        return fd;
    c->listen_fd = fd;
    return 0;
}

static int socket_open_load_finish(struct mig_chan *c,
                                   mig_cancelled_fn cancelled, void *opaque,
                                   struct mr_error *err)
{
    int fd;

    c->cancelled = cancelled;
    c->cancel_opaque = opaque;
    if (c->accept) {
        if (c->accept(c->accept_opaque, c->listen_fd, &fd, err))
            return err->code;
    } else {
        if (wait_fd(c, c->listen_fd, POLLIN) < 0)
            return mr_error_set(err, -ECANCELED, "Migration cancelled");
        fd = mr_sock_accept(c->listen_fd, err);
        if (fd < 0)
            return fd;
    }
    /* All connections are in: later ones are refused by the closed
     * listener. */
    close(c->listen_fd);
    c->listen_fd = -1;
    c->main_fd = fd;
    return 0;
}

static int socket_write_main(struct mig_chan *c, const void *buf, size_t len,
                             uint64_t off, struct mr_error *err)
{
    const char *p = buf;

    if (off != c->stream_pos)
        return mr_error_set(err, -ESPIPE, "a socket is written in order: "
                            "write at 0x%llx, stream at 0x%llx",
                            (unsigned long long)off,
                            (unsigned long long)c->stream_pos);
    while (len > 0) {
        ssize_t n;

        if (wait_fd(c, c->main_fd, POLLOUT) < 0)
            return mr_error_set(err, -ECANCELED, "Migration cancelled");
        n = send(c->main_fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return mr_error_set(err, -errno, "Unable to write to socket: %s",
                                strerror(errno));
        p += n;
        len -= (size_t)n;
        c->stream_pos += (uint64_t)n;
    }
    return 0;
}

/* The window's reader: what has arrived, 0 when the sender closed. */
static int64_t socket_read(void *opaque, void *buf, size_t len)
{
    struct mig_chan *c = opaque;

    for (;;) {
        ssize_t n;

        if (wait_fd(c, c->main_fd, POLLIN) < 0)
            return -ECANCELED;
        n = recv(c->main_fd, buf, len, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno != EINTR && errno != EAGAIN)
            return -errno;
    }
}

static int socket_source(struct mig_chan *c, struct mr_source *src,
                         struct mr_error *err)
{
    return mr_source_init_stream(src, &c->in, socket_read, c, SOCKET_WINDOW,
                                 err);
}

/* Nothing to make durable: the destination holds what it loaded. */
static int socket_sync_main(struct mig_chan *c, struct mr_error *err)
{
    (void)c;
    (void)err;
    return 0;
}

static void socket_close(struct mig_chan *c)
{
    for (unsigned i = 0; i < c->nchan; i++) {
        if (c->fds[i] >= 0)
            close(c->fds[i]);  /* those the RAM format did not take */
        c->fds[i] = -1;
    }
    if (c->main_fd >= 0)
        close(c->main_fd);
    if (c->listen_fd >= 0)
        close(c->listen_fd);
    c->main_fd = c->listen_fd = -1;
    mr_stream_in_free(&c->in);
}

const struct mig_transport_ops mig_transport_socket = {
    .name = "socket",
    .seekable = false,
    .check = socket_check,
    .open_save = socket_open_save,
    .open_save_finish = socket_open_save_finish,
    .open_load = socket_open_load,
    .open_load_finish = socket_open_load_finish,
    .write_main = socket_write_main,
    .source = socket_source,
    .sync_main = socket_sync_main,
    .close = socket_close,
};
