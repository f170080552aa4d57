/*
 * The multifd socket receiver core (sock_recv.h): accept and demultiplex,
 * one receive thread per page socket, the SYNC barrier.  All waits are on
 * one mutex and condition; an error anywhere stops every channel.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "multifd/sock_recv.h"
#include "util/iov.h"
#include "util/sock.h"

struct chan {
    struct mr_sock_recv *r;
    unsigned id;
    int fd;
    bool started;
    bool at_sync;           /* waiting for the barrier */
    bool ended;             /* clean EOF between packets */
    uint64_t released;      /* barrier generation it last saw released */
    pthread_t thread;
    uint8_t hdr[MR_MFD_HEADER_SIZE];
    struct mr_mfd_packet pkt;
    struct iovec iov[MR_MFD_PACKET_PAGES];
};

struct mr_sock_recv {
    struct mr_sock_recv_config cfg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    const struct mr_mfd_blocks *blocks;
    struct mr_error err;    /* first error, under lock */
    bool failed;
    uint64_t generation;    /* barrier releases */
    unsigned waiting;       /* channels at a SYNC */
    int main_fd;
    struct mr_sock_recv_counters count;
    struct chan ch[];
};

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The main socket is only shut for reading: its owner may still have to
 * answer on the return path (SHUT(1)), and a source waiting for that
 * answer would take a closed socket for success. */
static void shut_all(struct mr_sock_recv *r)
{
    if (r->main_fd >= 0)
        shutdown(r->main_fd, SHUT_RD);
    for (unsigned i = 0; i < r->cfg.nchannels; i++)
        if (r->ch[i].fd >= 0)
            shutdown(r->ch[i].fd, SHUT_RDWR);
}

/* Record the first error and wake everybody; caller holds the lock. */
static void fail_locked(struct mr_sock_recv *r, const struct mr_error *e)
{
    if (!r->failed) {
        r->failed = true;
        mr_error_propagate(&r->err, e);
        shut_all(r);
    }
    pthread_cond_broadcast(&r->cond);
}

static int chan_fail(struct chan *c, struct mr_error *e)
{
    pthread_mutex_lock(&c->r->lock);
    fail_locked(c->r, e);
    pthread_mutex_unlock(&c->r->lock);
    return -1;
}

void mr_sock_recv_abort(struct mr_sock_recv *r, const struct mr_error *why)
{
    pthread_mutex_lock(&r->lock);
    fail_locked(r, why);
    pthread_mutex_unlock(&r->lock);
}

int mr_sock_recv_error(struct mr_sock_recv *r, struct mr_error *err)
{
    int rc = 0;

    pthread_mutex_lock(&r->lock);
    if (r->failed)
        rc = mr_error_propagate(err, &r->err);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* Wait at a SYNC until the main stream's marker releases it. */
static int chan_barrier(struct chan *c)
{
    struct mr_sock_recv *r = c->r;
    int rc = 0;

    pthread_mutex_lock(&r->lock);
    c->at_sync = true;
    r->waiting++;
    r->count.syncs++;
    pthread_cond_broadcast(&r->cond);
    while (!r->failed && r->generation == c->released)
        pthread_cond_wait(&r->cond, &r->lock);
    c->released = r->generation;
    c->at_sync = false;
    if (r->failed)
        rc = -1;
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static int read_data(struct chan *c, size_t block, struct mr_error *err)
{
    const struct mr_sock_recv_sink *s = &c->r->cfg.sink;
    struct iovec *iov = c->iov;
    int n = (int)c->pkt.normal_pages;

    if (s->prepare(s->opaque, c->id, &c->pkt, block, iov, err) < 0)
        return -1;
    while (n > 0) {
        ssize_t got = readv(c->fd, iov, n > IOV_MAX ? IOV_MAX : n);

        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return mr_error_set(err, -errno, "multifd channel %u: %s",
                                c->id, strerror(errno));
        if (got == 0)
            return mr_error_set(err, -EPIPE, "multifd: unexpected EOF "
                                "after packet header (channel %u, in the "
                                "data of %u pages)", c->id,
                                c->pkt.normal_pages);
        mr_iov_advance(&iov, &n, (size_t)got);
    }
    return 0;
}

/* One packet; 1 at a clean end of the channel. */
static int chan_packet(struct chan *c, struct mr_error *err)
{
    struct mr_sock_recv *r = c->r;
    const struct mr_mfd_blocks *blocks;
    struct mr_mfd_blocks none = { NULL, 0 };
    uint32_t flags;
    size_t got = 0, block;
    int rc = mr_sock_read_full(c->fd, c->hdr, MR_MFD_COMMON_SIZE, &got, err);

    if (rc == -EPIPE && got == 0)
        return 1;
    if (rc == -EPIPE)
        return mr_error_set(err, -EPIPE, "multifd channel %u: closed inside "
                            "a packet header (%zu of %d bytes)", c->id, got,
                            MR_MFD_COMMON_SIZE);
    if (rc < 0 || mr_mfd_common_check(c->hdr, MR_MFD_COMMON_SIZE, &flags,
                                      err) < 0)
        return -1;
    rc = mr_sock_read_full(c->fd, c->hdr + MR_MFD_COMMON_SIZE,
                           MR_MFD_HEADER_SIZE - MR_MFD_COMMON_SIZE, NULL, err);
    if (rc == -EPIPE)
        return mr_error_set(err, -EPIPE, "multifd: unexpected EOF after "
                            "packet header (channel %u)", c->id);
    if (rc < 0)
        return -1;
    blocks = __atomic_load_n(&r->blocks, __ATOMIC_ACQUIRE);
    if (mr_mfd_packet_decode(c->hdr, MR_MFD_HEADER_SIZE,
                             blocks ? blocks : &none, &c->pkt, &block,
                             err) < 0)
        return -1;
    if (c->pkt.normal_pages && read_data(c, block, err) < 0)
        return -1;
    if (c->pkt.normal_pages + c->pkt.zero_pages &&
        r->cfg.sink.done(r->cfg.sink.opaque, c->id, &c->pkt, block, err) < 0)
        return -1;
    pthread_mutex_lock(&r->lock);
    r->count.packets++;
    r->count.pages += c->pkt.normal_pages;
    r->count.zero_pages += c->pkt.zero_pages;
    r->count.page_bytes += (uint64_t)c->pkt.normal_pages * MR_MFD_PAGE_SIZE;
    pthread_mutex_unlock(&r->lock);
    if ((c->pkt.flags & MR_MFD_FLAG_SYNC) && r->cfg.sink.drain &&
        r->cfg.sink.drain(r->cfg.sink.opaque, c->id, err) < 0)
        return -1;
    if ((c->pkt.flags & MR_MFD_FLAG_SYNC) && chan_barrier(c) < 0)
        return -1;
    return 0;
}

static void *chan_main(void *opaque)
{
    struct chan *c = opaque;
    struct mr_error err = MR_ERROR_INIT;
    int rc;

    while ((rc = chan_packet(c, &err)) == 0)
        ;
    if (rc < 0) {
        if (!mr_error_is_set(&err))
            mr_error_set(&err, -EIO, "multifd channel %u stopped", c->id);
        chan_fail(c, &err);
        return NULL;
    }
    pthread_mutex_lock(&c->r->lock);
    c->ended = true;
    pthread_cond_broadcast(&c->r->cond);
    pthread_mutex_unlock(&c->r->lock);
    return NULL;
}

int mr_sock_recv_new(const struct mr_sock_recv_config *cfg,
                     struct mr_sock_recv **out, struct mr_error *err)
{
    struct mr_sock_recv *r;

    if (cfg->nchannels < 1 || cfg->nchannels > 255 || !cfg->sink.prepare ||
        !cfg->sink.done)
        return mr_error_set(err, -EINVAL, "multifd receiver: 1 to 255 "
                            "channels and a sink are needed");
    r = calloc(1, sizeof(*r) + cfg->nchannels * sizeof(r->ch[0]));
    if (!r)
        return mr_error_set(err, -ENOMEM, "out of memory");
    r->cfg = *cfg;
    r->main_fd = -1;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    for (unsigned i = 0; i < cfg->nchannels; i++) {
        r->ch[i].r = r;
        r->ch[i].id = i;
        r->ch[i].fd = -1;
    }
    *out = r;
    return 0;
}

void mr_sock_recv_set_blocks(struct mr_sock_recv *r,
                             const struct mr_mfd_blocks *blocks)
{
    __atomic_store_n(&r->blocks, blocks, __ATOMIC_RELEASE);
}

int mr_sock_recv_sync(struct mr_sock_recv *r, struct mr_error *err)
{
    int rc = 0;

    pthread_mutex_lock(&r->lock);
    for (;;) {
        unsigned ended = 0;

        for (unsigned i = 0; i < r->cfg.nchannels; i++)
            ended += r->ch[i].ended;
        if (r->failed || ended || r->waiting == r->cfg.nchannels)
            break;
        pthread_cond_wait(&r->cond, &r->lock);
    }
    if (!r->failed && r->waiting != r->cfg.nchannels) {
        struct mr_error e = MR_ERROR_INIT;

        for (unsigned i = 0; i < r->cfg.nchannels; i++)
            if (r->ch[i].ended) {
                mr_error_set(&e, -EPIPE, "multifd channel %u closed before "
                             "its SYNC (the source disconnected early)", i);
                break;
            }
        fail_locked(r, &e);
    }
    if (r->failed) {
        rc = mr_error_propagate(err, &r->err);
    } else {
        r->waiting = 0;
        r->generation++;
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void mr_sock_recv_counters(struct mr_sock_recv *r,
                           struct mr_sock_recv_counters *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->count;
    pthread_mutex_unlock(&r->lock);
}

/* ---- accepting ---- */

static bool aborted(struct mr_sock_recv *r, struct mr_error *err)
{
    return mr_sock_recv_error(r, err) < 0;
}

/* Wait until fd is readable or the deadline; 0, or an error. */
static int wait_readable(struct mr_sock_recv *r, int fd, double deadline,
                         const char *what, struct mr_error *err)
{
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n;

        if (aborted(r, err))
            return err->code;
        if (now_ms() > deadline)
            return mr_error_set(err, -ETIMEDOUT, "no %s from the VM within "
                                "%d s", what, r->cfg.accept_timeout_ms / 1000);
        n = poll(&p, 1, 100);
        if (n < 0 && errno != EINTR)
            return mr_error_set(err, -errno, "poll: %s", strerror(errno));
        if (n > 0)
            return 0;
    }
}

static int check_peer(struct mr_sock_recv *r, int fd, struct mr_error *err)
{
    int pid = mr_sock_peer_pid(fd);

    if (r->cfg.expected_pid <= 0 || pid == r->cfg.expected_pid)
        return 0;
    return mr_error_set(err, -EPERM, "refused a migration connection from "
                        "pid %d: only the VM (pid %d) may connect", pid,
                        r->cfg.expected_pid);
}

static int file_channel(struct mr_sock_recv *r, int fd, double deadline,
                        struct mr_error *err)
{
    uint8_t hs[MR_MFD_HANDSHAKE_SIZE];
    struct mr_mfd_handshake h;
    size_t got = 0;
    struct chan *c;
    int rc;

    if (wait_readable(r, fd, deadline, "multifd handshake", err) < 0)
        return err->code;
    rc = mr_sock_read_full(fd, hs, sizeof(hs), &got, err);
    if (rc == -EPIPE)
        return mr_error_set(err, -EPIPE, "multifd: channel closed before its "
                            "initial packet (%zu of 64 bytes)", got);
    if (rc < 0 || mr_mfd_handshake_decode(hs, sizeof(hs), r->cfg.uuid,
                                          r->cfg.nchannels, &h, err) < 0)
        return err->code;
    c = &r->ch[h.id];
    if (c->fd >= 0)
        return mr_error_set(err, -EEXIST, "multifd: received id '%u' already "
                            "setup'", h.id);
    c->fd = fd;
    rc = pthread_create(&c->thread, NULL, chan_main, c);
    if (rc)
        return mr_error_set(err, -rc, "cannot start multifd channel %u: %s",
                            h.id, strerror(rc));
    c->started = true;
    return 0;
}

/* Peek at the first 4 bytes of an accepted socket: 1 if main. */
static int classify(struct mr_sock_recv *r, int fd, double deadline,
                    struct mr_error *err)
{
    uint8_t magic[4];

    for (;;) {
        ssize_t n;

        if (wait_readable(r, fd, deadline, "first bytes on a migration "
                          "socket", err) < 0)
            return err->code;
        n = recv(fd, magic, sizeof(magic), MSG_PEEK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mr_error_set(err, -errno, "Failed to peek at channel: %s",
                                strerror(errno));
        if (n == 0)
            return mr_error_set(err, -EPIPE, "Failed to peek at channel: "
                                "closed before its first bytes");
        if (n == (ssize_t)sizeof(magic))
            return !memcmp(magic, "QEVM", 4);
        usleep(1000);
    }
}

static int accept_one(struct mr_sock_recv *r, int lfd, double deadline,
                      struct mr_error *err)
{
    int fd, kind;

    if (wait_readable(r, lfd, deadline, "migration connection", err) < 0)
        return err->code;
    fd = mr_sock_accept(lfd, err);
    if (fd < 0)
        return err->code;
    if (check_peer(r, fd, err) < 0 ||
        (kind = classify(r, fd, deadline, err)) < 0) {
        close(fd);
        return err->code;
    }
    if (kind == 1) {
        if (r->main_fd >= 0) {
            close(fd);
            return mr_error_set(err, -EEXIST, "a second main migration "
                                "channel connected: refused");
        }
        r->main_fd = fd;
        return 0;
    }
    if (file_channel(r, fd, deadline, err) < 0) {
        bool filed = false;

        for (unsigned i = 0; i < r->cfg.nchannels; i++)
            filed |= r->ch[i].fd == fd;
        if (!filed)
            close(fd);
        return err->code;
    }
    return 0;
}

int mr_sock_recv_accept(struct mr_sock_recv *r, int lfd, int *main_fd,
                        struct mr_error *err)
{
    double deadline = now_ms() + r->cfg.accept_timeout_ms;

    for (unsigned have = 0; have < r->cfg.nchannels + 1; have++)
        if (accept_one(r, lfd, deadline, err) < 0) {
            mr_sock_recv_abort(r, err);
            return err->code;
        }
    *main_fd = r->main_fd;
    return 0;
}

void mr_sock_recv_free(struct mr_sock_recv *r)
{
    struct mr_error e = MR_ERROR_INIT;

    if (!r)
        return;
    mr_error_set(&e, -ECANCELED, "multifd receiver closed");
    mr_sock_recv_abort(r, &e);
    for (unsigned i = 0; i < r->cfg.nchannels; i++) {
        if (r->ch[i].started)
            pthread_join(r->ch[i].thread, NULL);
        if (r->ch[i].fd >= 0)
            close(r->ch[i].fd);
    }
    if (r->main_fd >= 0)
        close(r->main_fd);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}
