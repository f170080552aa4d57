/*
 * A pool of worker threads that runs jobs, knowing nothing of what they do:
 * one job descriptor, one hand-off (an exchange of descriptors with an idle
 * worker), one wait, the first error of anyone kept, and counters summed.
 * With no threads a job runs on the submitting thread, inside submit.
 */
#ifndef MAPRAM_MULTIFD_POOL_H
#define MAPRAM_MULTIFD_POOL_H

#include <stdalign.h>
#include <stdint.h>

#include "mapram/error.h"

struct mr_pool;
struct mr_pool_job;

/* Counters a job adds to (their meaning is the job owner's); the pool sums
 * them over all jobs. */
#define MR_POOL_COUNTERS 8
/* Room for a job's arguments inside its descriptor. */
#define MR_POOL_ARGS_BYTES 64

/*
 * The body of one kind of job.  `worker` is the context the running worker
 * was given (mr_pool_config.workers), `job` the descriptor, `count` this
 * job's counters (zero at entry).  Returns 0 or the code it set in `err`.
 */
typedef int mr_pool_fn(void *worker, const struct mr_pool_job *job,
                       uint64_t *count, struct mr_error *err);

struct mr_pool_job {
    mr_pool_fn *run;             /* NULL: no job */
    /* An object of the submitter's the job borrows; it travels with the
     * descriptor and comes back to the submitter through mr_pool_submit. */
    void *obj;
    alignas(8) unsigned char args[MR_POOL_ARGS_BYTES];
};

/* A job kind keeps its arguments in a struct of its own, copied in and out
 * of args[] with memcpy, after checking with this that it fits. */
#define MR_POOL_ARGS_FIT(type)                                               \
    _Static_assert(sizeof(type) <= MR_POOL_ARGS_BYTES,                       \
                   #type " does not fit in a job descriptor")

struct mr_pool_config {
    unsigned nthreads;           /* 0: run jobs inline on the submitter */
    void *const *workers;        /* max(nthreads, 1) contexts (borrowed;
                                  * the array itself is copied) */
    const char *thread_name;     /* "mr/send" names threads mr/send_0, ... */
};

/* Errors of the pool's own carry no prefix; its owner adds one. */
struct mr_pool *mr_pool_new(const struct mr_pool_config *cfg,
                            struct mr_error *err);
/* Stops and joins the threads: a running job finishes, one handed over
 * but not started is dropped. */
void mr_pool_free(struct mr_pool *p);

/*
 * Hand *job to the next idle worker (waiting for one; round-robin), and
 * give back in *job the descriptor that worker last finished ({0} if
 * none): ownership of both `obj`s moves with the exchange.  Inline, the
 * job runs here and *job stays the same.  Fails, leaving *job alone, once
 * the pool has an error; returns the pool's error otherwise, if any.
 */
int mr_pool_submit(struct mr_pool *p, struct mr_pool_job *job,
                   struct mr_error *err);

/* Wait until every worker has finished what it was given. */
int mr_pool_wait(struct mr_pool *p, struct mr_error *err);

/* The pool's error (0 if none) copied into err; cheap when there is none. */
int mr_pool_error(struct mr_pool *p, struct mr_error *err);
/* Record `e` unless an error is recorded already; returns the pool's. */
int mr_pool_fail(struct mr_pool *p, const struct mr_error *e,
                 struct mr_error *err);

/* Record `why`, wake submitters waiting for a worker, and skip every job
 * not yet started: wait then returns once the running ones finish. */
void mr_pool_cancel(struct mr_pool *p, const struct mr_error *why);

/* Sums of every finished job's counters. */
void mr_pool_counters(struct mr_pool *p, uint64_t out[MR_POOL_COUNTERS]);

#endif
