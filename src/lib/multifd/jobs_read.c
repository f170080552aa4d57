/*
 * The load job: one byte range of guest RAM read from its file offset as
 * one request, resumed when short; end of file is an error, in QEMU's
 * words for a channel and for the synchronous path.
 */
#include <errno.h>
#include <string.h>

#include "multifd/jobs.h"

struct read_args {
    void *host;
    uint64_t len;
    uint64_t offset;
};
MR_POOL_ARGS_FIT(struct read_args);

int mr_channel_read(struct mr_channel *c, void *host, uint64_t len,
                    uint64_t offset, uint64_t *count, struct mr_error *e)
{
    struct iovec iov = { host, (size_t)len };
    struct mr_io_req req;
    int r;

    mr_io_req_init(&req, c->fd, MR_IO_READ, offset, &iov, 1);
    r = mr_io_run(c->io, &req, 1);
    count[MR_CNT_REQUESTS]++;
    count[MR_CNT_BYTES_READ] += req.done;
    if (r == 0)
        return 0;
    if (c->on_caller && r == -ENODATA)
        return mr_error_set(e, -EIO, "Partial read of size %zu, expected %zu",
                            req.done, req.len);
    if (c->on_caller)
        return mr_error_set(e, r, "Unable to read from file: %s",
                            strerror(-r));
    if (r == -ENODATA)
        return mr_error_set(e, -EIO, "multifd recv (%u): read 0x%zx, "
                            "expected 0x%zx", c->id, req.done, req.len);
    return mr_error_set(e, r, "multifd recv (%u): read 0x%zx, expected 0x%zx: "
                        "%s", c->id, req.done, req.len, strerror(-r));
}

static int read_run(void *worker, const struct mr_pool_job *job,
                    uint64_t *count, struct mr_error *e)
{
    struct read_args a;

    memcpy(&a, job->args, sizeof(a));
    return mr_channel_read(worker, a.host, a.len, a.offset, count, e);
}

struct mr_pool_job mr_job_read(void *host, uint64_t len, uint64_t offset)
{
    struct mr_pool_job job = { .run = read_run };
    struct read_args a = { host, len, offset };

    memcpy(job.args, &a, sizeof(a));
    return job;
}
