/*
 * Engine registry and the engine-independent halves of the seam: the
 * submit-and-wait loop channels use, and the one place where a raw
 * completion becomes request progress (short transfers, EINTR/EAGAIN,
 * zero-length writes, end of file), shared by every engine.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "io/engine.h"
#include "io/fault.h"
#include "util/iov.h"

static const struct mr_io_ops *const engines[] = {
    &mr_io_psync_ops,
    &mr_io_uring_ops,
};

const char *mr_io_auto_pick(int fd_flags)
{
    if (fd_flags >= 0 && (fd_flags & O_DIRECT))
        return "io_uring";
    return "psync";
}

static bool is_auto(const char *name)
{
    return !name || !strcmp(name, MR_IO_AUTO_ENGINE);
}

const struct mr_io_ops *mr_io_find(const char *name)
{
    if (is_auto(name))
        name = mr_io_auto_pick(-1);
    for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
        if (!strcmp(engines[i]->name, name))
            return engines[i];
    return NULL;
}

static struct mr_io_engine *open_ops(const struct mr_io_ops *ops,
                                     unsigned depth, struct mr_error *err)
{
    struct mr_io_engine *e = calloc(1, sizeof(*e));

    if (!e) {
        mr_error_set(err, -ENOMEM, "Out of memory for I/O engine");
        return NULL;
    }
    e->ops = ops;
    e->depth = depth ? depth : 1;
    if (ops->init(e, e->depth, err) < 0) {
        free(e);
        return NULL;
    }
    return e;
}

struct mr_io_engine *mr_io_engine_open(const char *name, unsigned depth,
                                       struct mr_error *err)
{
    return mr_io_engine_open_fd(name, depth, -1, err);
}

/* "auto" for one descriptor: a failed ring setup is not an error. */
static struct mr_io_engine *open_auto(unsigned depth, int fd,
                                      struct mr_error *err)
{
    const struct mr_io_ops *ops =
        mr_io_find(mr_io_auto_pick(fd >= 0 ? fcntl(fd, F_GETFL) : -1));
    struct mr_error probe = MR_ERROR_INIT;
    struct mr_io_engine *e;

    if (ops != &mr_io_uring_ops)
        return open_ops(ops, depth, err);
    e = open_ops(ops, depth, &probe);
    return e ? e : open_ops(&mr_io_psync_ops, depth, err);
}

struct mr_io_engine *mr_io_engine_open_fd(const char *name, unsigned depth,
                                          int fd, struct mr_error *err)
{
    const struct mr_io_ops *ops;

    if (is_auto(name))
        return open_auto(depth, fd, err);
    ops = mr_io_find(name);
    if (!ops) {
        mr_error_set(err, -EINVAL, "Unknown I/O engine '%s' (expected "
                     "auto, psync or io_uring)", name);
        return NULL;
    }
    return open_ops(ops, depth, err);
}

void mr_io_engine_close(struct mr_io_engine *e)
{
    if (!e)
        return;
    e->ops->close(e);
    free(e);
}

void mr_io_req_init(struct mr_io_req *req, int fd, enum mr_io_dir dir,
                    uint64_t offset, struct iovec *iov, int iovcnt)
{
    memset(req, 0, sizeof(*req));
    req->fd = fd;
    req->dir = dir;
    req->offset = offset;
    req->iov = iov;
    req->iovcnt = iovcnt;
    req->len = mr_iov_total(iov, iovcnt);
}

int mr_io_req_complete(struct mr_io_req *req, ssize_t res)
{
    res = mr_fault_filter(req->dir == MR_IO_WRITE ? MR_FAULT_OP_WRITE
                                                  : MR_FAULT_OP_READ, res);
    if (res == -EINTR || res == -EAGAIN)
        return 0;                       /* resubmit the same remainder */
    if (res < 0) {
        req->result = (int)res;
        return 1;
    }
    if (res == 0) {
        /* A write that moves nothing would loop forever: the device is
         * full (kvmtool's pwritev_in_full).  A read of 0 is end of file. */
        req->result = req->dir == MR_IO_WRITE ? -ENOSPC : -ENODATA;
        return 1;
    }
    if ((size_t)res > req->len - req->done) {
        req->result = -EIO;             /* the kernel moved more than asked */
        return 1;
    }
    req->done += (size_t)res;
    mr_iov_advance(&req->iov, &req->iovcnt, (size_t)res);
    if (req->done == req->len) {
        req->result = 0;
        return 1;
    }
    return 0;
}

/* Reap at least one request; returns how many finished or -errno. */
static int reap_some(struct mr_io_engine *e)
{
    struct mr_io_req *out[32];
    int r = e->ops->commit(e);

    if (r < 0)
        return r;
    r = e->ops->reap(e, 1, out, 32);
    if (r < 0)
        return r;
    e->inflight -= (unsigned)r;
    return r;
}

/* The engine broke down: nothing in flight can be trusted any more. */
static void fail_unfinished(struct mr_io_req *reqs, size_t n, int code)
{
    for (size_t i = 0; i < n; i++)
        if (reqs[i].result == 1)
            reqs[i].result = code;
}

int mr_io_run(struct mr_io_engine *e, struct mr_io_req *reqs, size_t n)
{
    size_t next = 0, finished = 0;

    for (size_t i = 0; i < n; i++)
        reqs[i].result = 1;            /* 1 = not finished yet */
    while (finished < n) {
        while (next < n) {
            int r = e->ops->queue(e, &reqs[next]);

            if (r == MR_IO_BUSY)
                break;
            if (r < 0)
                reqs[next].result = r;
            if (r == MR_IO_QUEUED)
                e->inflight++;
            else
                finished++;
            next++;
        }
        if (finished == n)
            break;
        int got = e->inflight ? reap_some(e) : -EIO;

        if (got < 0) {
            fail_unfinished(reqs, n, got);
            e->inflight = 0;
            break;
        }
        finished += (size_t)got;
    }
    for (size_t i = 0; i < n; i++)
        if (reqs[i].result)
            return reqs[i].result;
    return 0;
}
