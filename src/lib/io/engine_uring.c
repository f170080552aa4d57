/*
 * io_uring: up to `depth` requests in flight per engine instance (one per
 * channel), short completions resubmitted from reap with the advanced
 * iovec, EINTR/EAGAIN completions resubmitted unchanged.
 */
#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/engine.h"

/*
 * io_uring: up to `depth` requests in flight per engine instance (one per
 * channel).  Short completions are resubmitted from reap with the advanced
 * iovec; EINTR/EAGAIN completions are resubmitted unchanged.  Ring setup
 * asks for cooperative task running first and drops flags the kernel
 * rejects, as fio does.  SINGLE_ISSUER is not asked for: a pool may be
 * created on one thread and driven from another.
 */

struct uring {
    struct io_uring ring;
    unsigned inflight;
};

static int ring_setup(struct io_uring *ring, unsigned depth)
{
    static const unsigned flag_sets[] = {
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int r = -EINVAL;

    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        struct io_uring_params p;

        memset(&p, 0, sizeof(p));
        p.flags = flag_sets[i];
        r = io_uring_queue_init_params(depth, ring, &p);
        if (r != -EINVAL)
            return r;
    }
    return r;
}

static int uring_init(struct mr_io_engine *e, unsigned depth,
                      struct mr_error *err)
{
    struct uring *u = calloc(1, sizeof(*u));
    int r;

    if (!u)
        return mr_error_set(err, -ENOMEM, "Out of memory for io_uring");
    r = ring_setup(&u->ring, depth);
    if (r < 0) {
        free(u);
        return mr_error_set(err, r, "Could not set up io_uring: %s",
                            strerror(-r));
    }
    e->priv = u;
    return 0;
}

/* Put the (remaining part of the) request into an SQE. */
static int prep(struct uring *u, struct mr_io_req *req)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    int cnt = req->iovcnt < IOV_MAX ? req->iovcnt : IOV_MAX;
    uint64_t off = req->offset + req->done;

    if (!sqe) {
        int r = io_uring_submit(&u->ring);

        if (r < 0)
            return r;
        sqe = io_uring_get_sqe(&u->ring);
        if (!sqe)
            return -EBUSY;
    }
    if (req->dir == MR_IO_WRITE)
        io_uring_prep_writev(sqe, req->fd, req->iov, (unsigned)cnt, off);
    else
        io_uring_prep_readv(sqe, req->fd, req->iov, (unsigned)cnt, off);
    io_uring_sqe_set_data(sqe, req);
    u->inflight++;
    return 0;
}

static int uring_queue(struct mr_io_engine *e, struct mr_io_req *req)
{
    struct uring *u = e->priv;
    int r;

    if (u->inflight >= e->depth)
        return MR_IO_BUSY;
    r = prep(u, req);
    return r < 0 ? r : MR_IO_QUEUED;
}

static int uring_commit(struct mr_io_engine *e)
{
    struct uring *u = e->priv;
    int r;

    do
        r = io_uring_submit(&u->ring);
    while (r == -EINTR || r == -EAGAIN);
    return r < 0 ? r : 0;
}

static int next_cqe(struct uring *u, bool wait, struct io_uring_cqe **cqe)
{
    int r;

    do
        r = wait ? io_uring_wait_cqe(&u->ring, cqe)
                 : io_uring_peek_cqe(&u->ring, cqe);
    while (r == -EINTR);
    return r;
}

static int uring_reap(struct mr_io_engine *e, unsigned min,
                      struct mr_io_req **out, unsigned max)
{
    struct uring *u = e->priv;
    unsigned got = 0;

    while (got < max && u->inflight > 0) {
        struct io_uring_cqe *cqe;
        struct mr_io_req *req;
        int r = next_cqe(u, got < min, &cqe);

        if (r == -EAGAIN && got >= min)
            break;                      /* nothing more ready */
        if (r < 0)
            return r;
        req = io_uring_cqe_get_data(cqe);
        r = cqe->res;
        io_uring_cqe_seen(&u->ring, cqe);
        u->inflight--;
        if (mr_io_req_complete(req, r)) {
            out[got++] = req;
            continue;
        }
        /* Resume: submit now, or a later wait could sleep forever. */
        r = prep(u, req);
        if (r == 0)
            r = uring_commit(e);
        if (r < 0)
            return r;
    }
    return (int)got;
}

static int uring_sync(struct mr_io_engine *e, int fd)
{
    (void)e;
    return fdatasync(fd) < 0 ? -errno : 0;
}

static void uring_close(struct mr_io_engine *e)
{
    struct uring *u = e->priv;

    if (!u)
        return;
    io_uring_queue_exit(&u->ring);
    free(u);
    e->priv = NULL;
}

const struct mr_io_ops mr_io_uring_ops = {
    .name = "io_uring",
    .caps = MR_IO_CAP_ASYNC | MR_IO_CAP_DIRECT_OK,
    .init = uring_init,
    .queue = uring_queue,
    .commit = uring_commit,
    .reap = uring_reap,
    .sync = uring_sync,
    .close = uring_close,
};
