/*
 * The I/O engine seam (after fio's ioengine_ops): everything that moves
 * page data between memory and a file goes through one of these, so the
 * channels above never know whether pwritev or io_uring runs.
 */
#ifndef MAPRAM_IO_ENGINE_H
#define MAPRAM_IO_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mapram/error.h"

/*
 * A request is {fd, file offset, iovec array, direction}.  `queue` answers
 *   MR_IO_DONE    finished inside queue (req->result is final),
 *   MR_IO_QUEUED  accepted; it finishes in a later `reap`,
 *   MR_IO_BUSY    the engine is full: commit and reap first, then retry,
 *   < 0           -errno, the request was not accepted.
 * `commit` starts queued requests; `reap` waits for at least `min` of them
 * and hands back finished ones.
 *
 * Engines resume short transfers themselves: a request finishes only when
 * all of it moved (result 0) or it failed (result -errno, `done` = bytes
 * that moved).  A write that moves nothing is -ENOSPC; a read that hits
 * end of file is -ENODATA with `done` telling how far it got.  EINTR and
 * EAGAIN are retried.  The iovec array is advanced in place while
 * resuming, so it belongs to the engine until the request finishes.
 *
 * One engine instance serves one thread: instances are not thread-safe.
 */

enum mr_io_dir {
    MR_IO_WRITE,
    MR_IO_READ,
};

enum {
    MR_IO_DONE = 0,
    MR_IO_QUEUED = 1,
    MR_IO_BUSY = 2,
};

/* Capabilities (ops->caps). */
#define MR_IO_CAP_ASYNC      (1U << 0)  /* several requests in flight */
#define MR_IO_CAP_DIRECT_OK  (1U << 1)  /* fine on O_DIRECT descriptors */
#define MR_IO_CAP_FIXED_BUFS (1U << 2)  /* can register buffers */

struct mr_io_req {
    int fd;
    enum mr_io_dir dir;
    uint64_t offset;          /* file offset of the first byte */
    struct iovec *iov;        /* advanced in place while resuming */
    int iovcnt;
    size_t len;               /* total bytes asked for */
    size_t done;              /* bytes moved so far */
    int result;               /* 0 or -errno once finished */
    void *user;               /* caller's cookie, untouched */
};

struct mr_io_engine;

struct mr_io_ops {
    const char *name;
    unsigned caps;
    /* Set up e->priv for up to `depth` requests in flight. */
    int (*init)(struct mr_io_engine *e, unsigned depth, struct mr_error *err);
    int (*queue)(struct mr_io_engine *e, struct mr_io_req *req);
    int (*commit)(struct mr_io_engine *e);
    /* Wait for >= min finished requests, store up to max in out[];
     * returns how many, or -errno. */
    int (*reap)(struct mr_io_engine *e, unsigned min, struct mr_io_req **out,
                unsigned max);
    int (*sync)(struct mr_io_engine *e, int fd);
    void (*close)(struct mr_io_engine *e);
};

struct mr_io_engine {
    const struct mr_io_ops *ops;
    void *priv;
    unsigned depth;
    unsigned inflight;        /* queued, not yet reaped */
};

extern const struct mr_io_ops mr_io_psync_ops;
extern const struct mr_io_ops mr_io_uring_ops;

/*
 * "auto" picks per descriptor: io_uring when the descriptor is O_DIRECT
 * (no page cache to absorb a shallow queue) and the kernel lets us set up
 * a ring, psync otherwise; docs/io.md has the measurements behind it.
 */
#define MR_IO_AUTO_ENGINE "auto"
/* The engine that `name == NULL` selects. */
#define MR_IO_DEFAULT_ENGINE MR_IO_AUTO_ENGINE

/* Pure rule of "auto": the engine for a descriptor whose F_GETFL status
 * flags are `fd_flags` (< 0: unknown, no descriptor). */
const char *mr_io_auto_pick(int fd_flags);

/* Find an engine by name ("auto", "psync", "io_uring"); NULL selects the
 * default.  Without a descriptor "auto" resolves to psync's ops. */
const struct mr_io_ops *mr_io_find(const char *name);

/* Allocate and init an engine by name.  NULL + err on failure. */
struct mr_io_engine *mr_io_engine_open(const char *name, unsigned depth,
                                       struct mr_error *err);
/*
 * The same for requests on `fd`, which "auto" (and NULL) looks at; when
 * "auto" chose io_uring and the ring cannot be set up, it falls back to
 * psync without an error.
 */
struct mr_io_engine *mr_io_engine_open_fd(const char *name, unsigned depth,
                                          int fd, struct mr_error *err);
void mr_io_engine_close(struct mr_io_engine *e);

/* Fill a request for one contiguous buffer (iov must outlive it). */
void mr_io_req_init(struct mr_io_req *req, int fd, enum mr_io_dir dir,
                    uint64_t offset, struct iovec *iov, int iovcnt);

/*
 * Submit `n` requests and wait for all of them, keeping the engine as full
 * as it allows.  Returns 0 when every request succeeded, otherwise the
 * result of the first failed one (in array order); each req->result says
 * how it ended.  Requests not submitted because of an engine error get
 * that error as their result.
 */
int mr_io_run(struct mr_io_engine *e, struct mr_io_req *reqs, size_t n);

/*
 * Helpers engines use to finish one raw completion (bytes moved or
 * -errno) of `req`: returns 1 when the request is finished (result set),
 * 0 when the remainder must be resubmitted (iov/offset already advanced).
 */
int mr_io_req_complete(struct mr_io_req *req, ssize_t res);

#endif
