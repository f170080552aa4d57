/*
 * multifd page channels on the sending side (sock_send.h): one thread per
 * channel writing one packet at a time; the caller's thread encodes each
 * header under the lock (one packet counter over all channels) and hands
 * it to the first idle channel.  The first channel error stops them all.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "multifd/sock_send.h"
#include "util/sock.h"

struct send_chan {
    struct mr_sock_send *s;
    unsigned id;
    int fd;
    pthread_t thread;
    bool started;
    bool busy;                  /* a packet is waiting or being written */
    pthread_cond_t cv;
    uint8_t hdr[MR_MFD_HEADER_SIZE];
    struct iovec iov[1 + MR_MFD_PACKET_PAGES];
    int iovcnt;                 /* header included */
    size_t data_len;
    struct mr_sock_send_ticket *ticket;
};

struct mr_sock_send {
    pthread_mutex_t lock;
    pthread_cond_t idle;        /* a channel became idle, or stop */
    bool stop;
    struct mr_error err;        /* the first channel error */
    uint64_t packet_num;
    uint64_t bytes;
    unsigned next;              /* where the idle search starts */
    const volatile sig_atomic_t *cancel;
    unsigned n;
    struct send_chan ch[];
};

static int write_packet(struct send_chan *c, struct mr_error *e)
{
    int rc;

    c->iov[0].iov_base = c->hdr;
    c->iov[0].iov_len = MR_MFD_HEADER_SIZE;
    rc = mr_sock_writev_full(c->fd, c->iov, c->iovcnt, e);

    if (rc == -EPIPE || rc == -ECONNRESET) {
        mr_error_clear(e);
        return mr_error_set(e, rc, "multifd channel %u: the destination "
                            "closed the channel early", c->id);
    }
    return rc ? mr_error_prefix(e, "multifd channel %u: ", c->id) : 0;
}

/* Under the lock: stop every channel and cut its socket. */
static void stop_all(struct mr_sock_send *s)
{
    s->stop = true;
    for (unsigned i = 0; i < s->n; i++) {
        pthread_cond_signal(&s->ch[i].cv);
        if (s->ch[i].fd >= 0)
            shutdown(s->ch[i].fd, SHUT_RDWR);
    }
    pthread_cond_broadcast(&s->idle);
}

static void finish_one(struct send_chan *c, int rc, struct mr_error *e)
{
    struct mr_sock_send *s = c->s;

    pthread_mutex_lock(&s->lock);
    c->busy = false;
    if (c->ticket)
        c->ticket->pending--;
    c->ticket = NULL;
    if (rc == 0) {
        s->bytes += MR_MFD_HEADER_SIZE + c->data_len;
    } else if (!s->stop) {
        s->err = *e;
        stop_all(s);
    }
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

static void *chan_main(void *arg)
{
    struct send_chan *c = arg;
    struct mr_sock_send *s = c->s;

    for (;;) {
        struct mr_error e = MR_ERROR_INIT;
        int rc;

        pthread_mutex_lock(&s->lock);
        while (!c->busy && !s->stop)
            pthread_cond_wait(&c->cv, &s->lock);
        if (s->stop) {
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
        pthread_mutex_unlock(&s->lock);
        rc = write_packet(c, &e);
        finish_one(c, rc, &e);
    }
}

/* Under the lock: wait for a channel to go idle (or the watched flag). */
static void wait_idle(struct mr_sock_send *s)
{
    struct timespec ts;

    if (!s->cancel) {
        pthread_cond_wait(&s->idle, &s->lock);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->idle, &s->lock, &ts);
    if (*s->cancel && !s->stop) {
        mr_error_set(&s->err, -ECANCELED, "multifd: sending was interrupted");
        stop_all(s);
    }
}

void mr_sock_send_watch(struct mr_sock_send *s,
                        const volatile sig_atomic_t *flag)
{
    pthread_mutex_lock(&s->lock);
    s->cancel = flag;
    pthread_mutex_unlock(&s->lock);
}

static int stopped(struct mr_sock_send *s, struct mr_error *err)
{
    if (mr_error_is_set(&s->err)) {
        *err = s->err;
        return s->err.code ? s->err.code : -EIO;
    }
    return mr_error_set(err, -ECANCELED, "multifd: sending was stopped");
}

static int handshake(struct send_chan *c, const uint8_t *uuid,
                     struct mr_error *err)
{
    struct mr_mfd_handshake h = { .id = (uint8_t)c->id };
    uint8_t buf[MR_MFD_HANDSHAKE_SIZE];

    memcpy(h.uuid, uuid, MR_MFD_UUID_SIZE);
    mr_mfd_handshake_encode(&h, buf);
    if (mr_sock_write_full(c->fd, buf, sizeof(buf), err) < 0)
        return mr_error_prefix(err, "multifd channel %u: ", c->id);
    return 0;
}

static int open_chan(struct mr_sock_send *s, unsigned id, const uint8_t *uuid,
                     mr_sock_send_connect_fn connect, void *opaque,
                     struct mr_error *err)
{
    struct send_chan *c = &s->ch[id];
    int rc;

    c->fd = connect(opaque, id, err);
    if (c->fd < 0)
        return c->fd;
    if (handshake(c, uuid, err) < 0)
        return err->code;
    rc = pthread_create(&c->thread, NULL, chan_main, c);
    if (rc)
        return mr_error_set(err, -rc, "multifd channel %u: cannot start its "
                            "thread: %s", id, strerror(rc));
    c->started = true;
    return 0;
}

int mr_sock_send_open(unsigned n, const uint8_t uuid[MR_MFD_UUID_SIZE],
                      mr_sock_send_connect_fn connect, void *opaque,
                      struct mr_sock_send **out, struct mr_error *err)
{
    struct mr_sock_send *s;

    *out = NULL;
    if (n == 0 || n > 255)
        return mr_error_set(err, -EINVAL, "multifd: %u channels (1 to 255)",
                            n);
    s = calloc(1, sizeof(*s) + n * sizeof(s->ch[0]));
    if (!s)
        return mr_error_set(err, -ENOMEM, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    s->n = n;
    for (unsigned i = 0; i < n; i++) {
        s->ch[i].s = s;
        s->ch[i].id = i;
        s->ch[i].fd = -1;
        pthread_cond_init(&s->ch[i].cv, NULL);
    }
    *out = s;
    for (unsigned i = 0; i < n; i++)
        if (open_chan(s, i, uuid, connect, opaque, err) < 0)
            return err->code;
    return 0;
}

/* Under the lock: the first idle channel from s->next, or NULL. */
static struct send_chan *idle_chan(struct mr_sock_send *s)
{
    for (unsigned k = 0; k < s->n; k++) {
        struct send_chan *c = &s->ch[(s->next + k) % s->n];

        if (!c->busy) {
            s->next = (c->id + 1) % s->n;
            return c;
        }
    }
    return NULL;
}

static void encode(struct mr_sock_send *s, struct send_chan *c,
                   const struct mr_sock_send_pkt *p)
{
    struct mr_mfd_packet pk;

    memset(&pk, 0, sizeof(pk));
    pk.pages_alloc = MR_MFD_PACKET_PAGES;
    pk.normal_pages = p->normal_pages;
    pk.zero_pages = p->zero_pages;
    pk.next_packet_size = p->normal_pages * MR_MFD_PAGE_SIZE;
    pk.packet_num = s->packet_num++;
    strncpy(pk.block, p->block, sizeof(pk.block) - 1);
    memcpy(pk.offsets, p->offsets,
           (p->normal_pages + p->zero_pages) * sizeof(uint64_t));
    mr_mfd_packet_encode(&pk, c->hdr);
}

int mr_sock_send_packet(struct mr_sock_send *s,
                        const struct mr_sock_send_pkt *p,
                        struct mr_error *err)
{
    struct send_chan *c = NULL;

    if (p->normal_pages + p->zero_pages > MR_MFD_PACKET_PAGES ||
        p->normal_pages + p->zero_pages == 0 || p->iovcnt < 0 ||
        p->iovcnt > (int)MR_MFD_PACKET_PAGES)
        return mr_error_set(err, -EINVAL, "multifd: a packet of %u pages",
                            p->normal_pages + p->zero_pages);
    pthread_mutex_lock(&s->lock);
    while (!s->stop && !(c = idle_chan(s)))
        wait_idle(s);
    if (s->stop) {
        int rc = stopped(s, err);

        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    encode(s, c, p);
    memcpy(c->iov + 1, p->iov, (size_t)p->iovcnt * sizeof(*p->iov));
    c->iovcnt = 1 + p->iovcnt;
    c->data_len = (size_t)p->normal_pages * MR_MFD_PAGE_SIZE;
    c->ticket = p->ticket;
    if (p->ticket)
        p->ticket->pending++;
    c->busy = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int mr_sock_send_wait(struct mr_sock_send *s, struct mr_sock_send_ticket *t,
                      struct mr_error *err)
{
    int rc = 0;

    pthread_mutex_lock(&s->lock);
    while (!s->stop && t->pending)
        wait_idle(s);
    if (s->stop)
        rc = stopped(s, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static bool all_idle(const struct mr_sock_send *s)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->ch[i].busy)
            return false;
    return true;
}

int mr_sock_send_sync(struct mr_sock_send *s, struct mr_error *err)
{
    int rc = 0;

    pthread_mutex_lock(&s->lock);
    while (!s->stop && !all_idle(s))
        wait_idle(s);
    for (unsigned i = 0; !s->stop && i < s->n; i++) {
        struct send_chan *c = &s->ch[i];
        struct mr_mfd_packet pk;

        mr_mfd_packet_sync(&pk, s->packet_num++);
        mr_mfd_packet_encode(&pk, c->hdr);
        c->iovcnt = 1;
        c->data_len = 0;
        c->busy = true;
        pthread_cond_signal(&c->cv);
    }
    while (!s->stop && !all_idle(s))
        wait_idle(s);
    if (s->stop)
        rc = stopped(s, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

uint64_t mr_sock_send_bytes(struct mr_sock_send *s)
{
    uint64_t b;

    pthread_mutex_lock(&s->lock);
    b = s->bytes;
    pthread_mutex_unlock(&s->lock);
    return b;
}

void mr_sock_send_abort(struct mr_sock_send *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    stop_all(s);
    pthread_mutex_unlock(&s->lock);
}

void mr_sock_send_close(struct mr_sock_send *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    for (unsigned i = 0; i < s->n; i++) {
        pthread_cond_signal(&s->ch[i].cv);
        if (s->ch[i].busy && s->ch[i].fd >= 0)  /* never wait on a peer */
            shutdown(s->ch[i].fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->n; i++) {
        struct send_chan *c = &s->ch[i];

        if (c->started)
            pthread_join(c->thread, NULL);
        if (c->fd >= 0)
            close(c->fd);
        pthread_cond_destroy(&c->cv);
    }
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
