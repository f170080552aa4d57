/*
 * The worker pool of pool.h: threads, the hand-off, wait, cancel, the
 * first error and the counter sums.  One mutex guards every worker's slot,
 * the error and the sums; each worker sleeps on its own condvar, and
 * submitters and waiters on one shared "idle" condvar.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multifd/pool.h"

struct worker {
    struct mr_pool *p;
    unsigned id;
    void *ctx;                   /* handed to every job this worker runs */
    pthread_t thread;
    bool started;
    bool wake_ok;                /* `wake` was initialised */
    pthread_cond_t wake;

    /* Under p->lock. */
    bool busy;                   /* handed a job it has not finished */
    struct mr_pool_job job;      /* that job, or the last one it finished */
};

struct mr_pool {
    unsigned nthreads;           /* 0: inline */
    struct worker *w;            /* max(nthreads, 1) */
    unsigned next;               /* round-robin start */

    pthread_mutex_t lock;
    pthread_cond_t idle;
    bool quit;
    int failed;                  /* atomic mirror of err.code */
    int cancelled;               /* atomic */
    struct mr_error err;
    uint64_t sum[MR_POOL_COUNTERS];
};

/* ---- the first error ---------------------------------------------------- */

static void record_locked(struct mr_pool *p, const struct mr_error *e)
{
    mr_error_propagate(&p->err, e);
    __atomic_store_n(&p->failed, p->err.code, __ATOMIC_RELEASE);
}

int mr_pool_error(struct mr_pool *p, struct mr_error *err)
{
    int code;

    /* The unlocked load keeps the per-item paths of callers lock-free. */
    if (!__atomic_load_n(&p->failed, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&p->lock);
    code = mr_error_propagate(err, &p->err);
    pthread_mutex_unlock(&p->lock);
    return code;
}

int mr_pool_fail(struct mr_pool *p, const struct mr_error *e,
                 struct mr_error *err)
{
    pthread_mutex_lock(&p->lock);
    record_locked(p, e);
    pthread_mutex_unlock(&p->lock);
    return mr_pool_error(p, err);
}

/* ---- running one job ---------------------------------------------------- */

/* Outside the lock; a job not started before a cancel is skipped (the
 * cancel already recorded why). */
static void run_one(struct mr_pool *p, struct worker *w,
                    const struct mr_pool_job *job, uint64_t *count,
                    struct mr_error *e)
{
    if (!__atomic_load_n(&p->cancelled, __ATOMIC_ACQUIRE))
        job->run(w->ctx, job, count, e);
}

/* Lock held: the job is over. */
static void finish_locked(struct mr_pool *p, struct worker *w,
                          const uint64_t *count, const struct mr_error *e)
{
    for (unsigned i = 0; i < MR_POOL_COUNTERS; i++)
        p->sum[i] += count[i];
    if (mr_error_is_set(e))
        record_locked(p, e);
    w->busy = false;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct mr_pool *p = w->p;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        uint64_t count[MR_POOL_COUNTERS] = { 0 };
        struct mr_error e = MR_ERROR_INIT;

        while (!w->busy && !p->quit)
            pthread_cond_wait(&w->wake, &p->lock);
        if (p->quit)
            break;
        /* Acquire: the lock we hold published the job handed to us; until
         * we hand back, w->job and what it points to are ours alone. */
        pthread_mutex_unlock(&p->lock);
        run_one(p, w, &w->job, count, &e);
        pthread_mutex_lock(&p->lock);
        /* Release: the unlock after this publishes the job's effects (and
         * its obj) to whoever takes the lock next. */
        finish_locked(p, w, count, &e);
        pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* No threads: the job runs here, on the submitter's thread. */
static int run_inline(struct mr_pool *p, struct mr_pool_job *job,
                      struct mr_error *err)
{
    uint64_t count[MR_POOL_COUNTERS] = { 0 };
    struct mr_error e = MR_ERROR_INIT;

    run_one(p, &p->w[0], job, count, &e);
    pthread_mutex_lock(&p->lock);
    finish_locked(p, &p->w[0], count, &e);
    pthread_mutex_unlock(&p->lock);
    return mr_pool_error(p, err);
}

/* ---- the hand-off -------------------------------------------------------- */

/* Wait for an idle worker (lock held); NULL once the pool has an error. */
static struct worker *claim_idle_locked(struct mr_pool *p)
{
    for (;;) {
        if (p->err.code)
            return NULL;
        for (unsigned k = 0; k < p->nthreads; k++) {
            unsigned i = (p->next + k) % p->nthreads;

            if (!p->w[i].busy) {
                p->next = (i + 1) % p->nthreads;
                return &p->w[i];
            }
        }
        pthread_cond_wait(&p->idle, &p->lock);
    }
}

int mr_pool_submit(struct mr_pool *p, struct mr_pool_job *job,
                   struct mr_error *err)
{
    struct mr_pool_job back;
    struct worker *w;
    int r = mr_pool_error(p, err);

    if (r)
        return r;
    if (p->nthreads == 0)
        return run_inline(p, job, err);
    pthread_mutex_lock(&p->lock);
    w = claim_idle_locked(p);
    if (w) {
        /* Exchange, don't copy payloads: the worker takes our descriptor
         * (released to it by the unlock below) and we take the one it
         * finished (published to us by the lock it handed back under). */
        back = w->job;
        w->job = *job;
        *job = back;
        w->busy = true;
        pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&p->lock);
    return mr_pool_error(p, err);
}

static bool any_busy_locked(struct mr_pool *p)
{
    for (unsigned i = 0; i < p->nthreads; i++)
        if (p->w[i].busy)
            return true;
    return false;
}

int mr_pool_wait(struct mr_pool *p, struct mr_error *err)
{
    pthread_mutex_lock(&p->lock);
    while (any_busy_locked(p))
        pthread_cond_wait(&p->idle, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return mr_pool_error(p, err);
}

void mr_pool_cancel(struct mr_pool *p, const struct mr_error *why)
{
    __atomic_store_n(&p->cancelled, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&p->lock);
    record_locked(p, why);
    /* Wake submitters waiting for an idle worker: they must see it. */
    pthread_cond_broadcast(&p->idle);
    pthread_mutex_unlock(&p->lock);
}

void mr_pool_counters(struct mr_pool *p, uint64_t out[MR_POOL_COUNTERS])
{
    pthread_mutex_lock(&p->lock);
    memcpy(out, p->sum, sizeof(p->sum));
    pthread_mutex_unlock(&p->lock);
}

/* ---- construction -------------------------------------------------------- */

static int workers_init(struct mr_pool *p, const struct mr_pool_config *cfg,
                        struct mr_error *err)
{
    unsigned n = cfg->nthreads ? cfg->nthreads : 1;

    p->w = calloc(n, sizeof(*p->w));
    if (!p->w)
        return mr_error_set(err, -ENOMEM, "out of memory");
    for (unsigned i = 0; i < n; i++) {
        p->w[i].p = p;
        p->w[i].id = i;
        p->w[i].ctx = cfg->workers[i];
        if (pthread_cond_init(&p->w[i].wake, NULL))
            return mr_error_set(err, -ENOMEM, "cannot create condvar");
        p->w[i].wake_ok = true;
    }
    return 0;
}

/* "mr/send_3" in top and gdb, like QEMU's mig/src/send_3. */
static void thread_name(struct worker *w, const char *prefix)
{
    char name[16];

    snprintf(name, sizeof(name), "%.10s_%u", prefix ? prefix : "mr/pool",
             w->id % 1000);
    pthread_setname_np(w->thread, name);
}

static int threads_start(struct mr_pool *p, const struct mr_pool_config *cfg,
                         struct mr_error *err)
{
    for (unsigned i = 0; i < p->nthreads; i++) {
        struct worker *w = &p->w[i];
        int r = pthread_create(&w->thread, NULL, worker_main, w);

        if (r)
            return mr_error_set(err, -r, "cannot start thread %u: %s",
                                i, strerror(r));
        w->started = true;
        thread_name(w, cfg->thread_name);
    }
    return 0;
}

struct mr_pool *mr_pool_new(const struct mr_pool_config *cfg,
                            struct mr_error *err)
{
    struct mr_pool *p;

    if (!cfg->workers) {
        mr_error_set(err, -EINVAL, "no worker contexts");
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        mr_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->idle, NULL);
    p->nthreads = cfg->nthreads;
    if (workers_init(p, cfg, err) || threads_start(p, cfg, err)) {
        mr_pool_free(p);
        return NULL;
    }
    return p;
}

void mr_pool_free(struct mr_pool *p)
{
    unsigned n;

    if (!p)
        return;
    n = p->nthreads ? p->nthreads : 1;
    pthread_mutex_lock(&p->lock);
    p->quit = true;
    for (unsigned i = 0; p->w && i < p->nthreads; i++)
        if (p->w[i].wake_ok)
            pthread_cond_signal(&p->w[i].wake);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; p->w && i < n; i++) {
        if (p->w[i].started)
            pthread_join(p->w[i].thread, NULL);
        if (p->w[i].wake_ok)
            pthread_cond_destroy(&p->w[i].wake);
    }
    free(p->w);
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
