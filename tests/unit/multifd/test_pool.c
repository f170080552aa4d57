/*
 * The worker pool (src/lib/multifd/pool.c) apart from any page job: jobs
 * run on the workers with their contexts, descriptors are exchanged,
 * counters summed, errors collected with the first one winning, cancel
 * wakes and skips, and with no threads a job runs inside submit.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "multifd/pool.h"

/* What the test jobs share with the test. */
struct shared {
    struct mr_pool *pool;
    int ran;                     /* atomic: jobs that ran */
    int finished;                /* atomic */
    sem_t started;               /* posted by blocking jobs on entry */
    sem_t go;                    /* blocking jobs wait for it */
    void *ctx_seen[8];           /* by job index */
    pthread_t thread_seen[8];
    char name_seen[8][16];
};

struct targs {
    struct shared *s;
    unsigned idx;
    int code;                    /* fail with this, 0: succeed */
    const char *msg;
};

static struct targs args_of(const struct mr_pool_job *job)
{
    struct targs a;

    memcpy(&a, job->args, sizeof(a));
    return a;
}

static struct mr_pool_job job_of(mr_pool_fn *fn, void *obj, struct targs a)
{
    struct mr_pool_job job = { .run = fn, .obj = obj };

    memcpy(job.args, &a, sizeof(a));
    return job;
}

/* Counts itself, notes where it ran, fails when asked. */
static int note_job(void *worker, const struct mr_pool_job *job,
                    uint64_t *count, struct mr_error *err)
{
    struct targs a = args_of(job);

    __atomic_add_fetch(&a.s->ran, 1, __ATOMIC_SEQ_CST);
    count[0] += 1;
    count[1] += a.idx;
    if (a.idx < 8) {
        a.s->ctx_seen[a.idx] = worker;
        a.s->thread_seen[a.idx] = pthread_self();
        pthread_getname_np(pthread_self(), a.s->name_seen[a.idx], 16);
    }
    if (a.code)
        return mr_error_set(err, a.code, "%s", a.msg);
    return 0;
}

/* Says it started, then waits for the test. */
static int blocking_job(void *worker, const struct mr_pool_job *job,
                        uint64_t *count, struct mr_error *err)
{
    struct targs a = args_of(job);

    sem_post(&a.s->started);
    while (sem_wait(&a.s->go))
        ;
    note_job(worker, job, count, err);
    __atomic_add_fetch(&a.s->finished, 1, __ATOMIC_SEQ_CST);
    return err->code;
}

/* Fails only after the pool holds someone else's error. */
static int late_failing_job(void *worker, const struct mr_pool_job *job,
                            uint64_t *count, struct mr_error *err)
{
    struct targs a = args_of(job);

    (void)worker, (void)count;
    sem_post(&a.s->started);
    while (!mr_pool_error(a.s->pool, NULL))
        sched_yield();
    return mr_error_set(err, a.code, "%s", a.msg);
}

static void *ctxs[8] = { &ctxs[0], &ctxs[1], &ctxs[2], &ctxs[3],
                         &ctxs[4], &ctxs[5], &ctxs[6], &ctxs[7] };

static struct mr_pool *pool_new(struct shared *s, unsigned nthreads)
{
    struct mr_pool_config cfg = { nthreads, ctxs, "mr/test" };
    struct mr_error err = MR_ERROR_INIT;

    memset(s, 0, sizeof(*s));
    sem_init(&s->started, 0, 0);
    sem_init(&s->go, 0, 0);
    s->pool = mr_pool_new(&cfg, &err);
    if (!s->pool)
        fail_msg("mr_pool_new: %s", err.msg);
    return s->pool;
}

static void pool_free(struct shared *s)
{
    mr_pool_free(s->pool);
    sem_destroy(&s->started);
    sem_destroy(&s->go);
}

static bool is_ctx(void *p)
{
    for (unsigned i = 0; i < 8; i++)
        if (p == ctxs[i])
            return true;
    return false;
}

static void jobs_run_and_count(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    uint64_t c[MR_POOL_COUNTERS];
    struct shared s;
    uint64_t sum = 0;

    (void)state;
    pool_new(&s, 3);
    for (unsigned i = 0; i < 1000; i++) {
        struct mr_pool_job job = job_of(note_job, NULL,
                                        (struct targs){ &s, i, 0, NULL });

        assert_int_equal(mr_pool_submit(s.pool, &job, &err), 0);
        sum += i;
    }
    assert_int_equal(mr_pool_wait(s.pool, &err), 0);
    assert_int_equal(s.ran, 1000);
    mr_pool_counters(s.pool, c);
    assert_int_equal(c[0], 1000);
    assert_int_equal(c[1], sum);
    for (unsigned i = 2; i < MR_POOL_COUNTERS; i++)
        assert_int_equal(c[i], 0);
    for (unsigned i = 0; i < 8; i++) {
        assert_true(is_ctx(s.ctx_seen[i]));
        assert_true(s.ctx_seen[i] != ctxs[3]);   /* only 3 workers */
    }
    pool_free(&s);
}

/* Four jobs held at once run on four workers, each with its own context
 * and its own named thread. */
static void each_worker_its_context(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct shared s;

    (void)state;
    pool_new(&s, 4);
    for (unsigned i = 0; i < 4; i++) {
        struct mr_pool_job job = job_of(blocking_job, NULL,
                                        (struct targs){ &s, i, 0, NULL });

        assert_int_equal(mr_pool_submit(s.pool, &job, &err), 0);
    }
    for (unsigned i = 0; i < 4; i++)
        sem_wait(&s.started);
    for (unsigned i = 0; i < 4; i++)
        sem_post(&s.go);
    assert_int_equal(mr_pool_wait(s.pool, &err), 0);
    assert_int_equal(s.finished, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_true(is_ctx(s.ctx_seen[i]) && s.ctx_seen[i] != ctxs[4]);
        assert_false(pthread_equal(s.thread_seen[i], pthread_self()));
        assert_memory_equal(s.name_seen[i], "mr/test_", 8);
        for (unsigned j = 0; j < i; j++)
            assert_ptr_not_equal(s.ctx_seen[i], s.ctx_seen[j]);
    }
    pool_free(&s);
}

/* Submit gives back the descriptor the worker finished, obj and all. */
static void descriptors_exchanged(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    int a, b;
    struct shared s;
    struct mr_pool_job job;

    (void)state;
    pool_new(&s, 1);
    job = job_of(note_job, &a, (struct targs){ &s, 0, 0, NULL });
    assert_int_equal(mr_pool_submit(s.pool, &job, &err), 0);
    assert_null(job.run);                /* the worker held nothing yet */
    assert_null(job.obj);
    job = job_of(note_job, &b, (struct targs){ &s, 1, 0, NULL });
    assert_int_equal(mr_pool_submit(s.pool, &job, &err), 0);
    assert_ptr_equal(job.obj, &a);       /* the first job came back */
    assert_true(job.run == note_job);
    assert_int_equal(args_of(&job).idx, 0);
    assert_int_equal(mr_pool_wait(s.pool, &err), 0);
    assert_int_equal(s.ran, 2);
    pool_free(&s);
}

/* Submitting a job that fails returns 0, or its error when the worker
 * was quicker than submit's last look at the pool. */
static bool submitted_failing(struct mr_pool *p, struct mr_pool_job *job,
                              struct mr_error *err, int code)
{
    int r = mr_pool_submit(p, job, err);

    return r == 0 || r == code;
}

static void error_collected(void **state)
{
    struct mr_error err = MR_ERROR_INIT, err2 = MR_ERROR_INIT;
    struct shared s;
    struct mr_pool_job job;

    (void)state;
    pool_new(&s, 2);
    job = job_of(note_job, NULL, (struct targs){ &s, 7, -EIO, "job 7 broke" });
    assert_true(submitted_failing(s.pool, &job, &err, -EIO));
    assert_int_equal(mr_pool_wait(s.pool, &err), -EIO);
    assert_string_equal(err.msg, "job 7 broke");
    /* Later submits return it and run nothing; the job stays ours. */
    job = job_of(note_job, &s, (struct targs){ &s, 1, 0, NULL });
    assert_int_equal(mr_pool_submit(s.pool, &job, &err2), -EIO);
    assert_string_equal(err2.msg, "job 7 broke");
    assert_ptr_equal(job.obj, &s);
    assert_int_equal(mr_pool_wait(s.pool, NULL), -EIO);
    assert_int_equal(s.ran, 1);
    pool_free(&s);
}

/* A job that fails after another has failed does not replace its error,
 * nor does the submitter's own. */
static void first_error_wins(void **state)
{
    struct mr_error err = MR_ERROR_INIT, mine = MR_ERROR_INIT;
    struct shared s;
    struct mr_pool_job job;

    (void)state;
    pool_new(&s, 2);
    job = job_of(late_failing_job, NULL,
                 (struct targs){ &s, 0, -ENOSPC, "second" });
    assert_int_equal(mr_pool_submit(s.pool, &job, &err), 0);
    sem_wait(&s.started);
    job = job_of(note_job, NULL, (struct targs){ &s, 1, -EIO, "first" });
    assert_true(submitted_failing(s.pool, &job, &err, -EIO));
    assert_int_equal(mr_pool_wait(s.pool, &err), -EIO);
    assert_string_equal(err.msg, "first");
    mr_error_set(&mine, -EINVAL, "third");
    mr_error_clear(&err);
    assert_int_equal(mr_pool_fail(s.pool, &mine, &err), -EIO);
    assert_string_equal(err.msg, "first");
    pool_free(&s);
}

static void *cancel_thread(void *arg)
{
    struct shared *s = arg;
    struct mr_error why = MR_ERROR_INIT;

    mr_error_set(&why, -ECANCELED, "test: cancelled");
    mr_pool_cancel(s->pool, &why);
    return NULL;
}

/* A submitter waiting for a worker is woken by a cancel, the job it had is
 * not run, and the running job finishes and is counted. */
static void cancel_wakes_and_skips(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    uint64_t c[MR_POOL_COUNTERS];
    struct shared s;
    struct mr_pool_job job;
    pthread_t t;

    (void)state;
    pool_new(&s, 1);
    job = job_of(blocking_job, NULL, (struct targs){ &s, 0, 0, NULL });
    assert_int_equal(mr_pool_submit(s.pool, &job, &err), 0);
    sem_wait(&s.started);
    assert_int_equal(pthread_create(&t, NULL, cancel_thread, &s), 0);
    /* The only worker is busy until `go`: this waits for the cancel. */
    job = job_of(note_job, NULL, (struct targs){ &s, 1, 0, NULL });
    assert_int_equal(mr_pool_submit(s.pool, &job, &err), -ECANCELED);
    assert_string_equal(err.msg, "test: cancelled");
    pthread_join(t, NULL);
    sem_post(&s.go);
    assert_int_equal(mr_pool_wait(s.pool, NULL), -ECANCELED);
    assert_int_equal(s.finished, 1);
    assert_int_equal(s.ran, 1);
    mr_pool_counters(s.pool, c);
    assert_int_equal(c[0], 1);
    pool_free(&s);
}

/* With no threads a job runs inside submit, on the caller's thread, with
 * context 0, and its error is submit's. */
static void no_threads_inline(void **state)
{
    struct mr_error err = MR_ERROR_INIT, why = MR_ERROR_INIT;
    uint64_t c[MR_POOL_COUNTERS];
    struct shared s;
    int a;
    struct mr_pool_job job;

    (void)state;
    pool_new(&s, 0);
    job = job_of(note_job, &a, (struct targs){ &s, 2, 0, NULL });
    assert_int_equal(mr_pool_submit(s.pool, &job, &err), 0);
    assert_int_equal(s.ran, 1);          /* before submit returned */
    assert_true(pthread_equal(s.thread_seen[2], pthread_self()));
    assert_ptr_equal(s.ctx_seen[2], ctxs[0]);
    assert_ptr_equal(job.obj, &a);       /* nothing to exchange with */
    job = job_of(note_job, NULL, (struct targs){ &s, 3, -EIO, "inline broke" });
    assert_int_equal(mr_pool_submit(s.pool, &job, &err), -EIO);
    assert_string_equal(err.msg, "inline broke");
    assert_int_equal(mr_pool_wait(s.pool, NULL), -EIO);
    mr_pool_counters(s.pool, c);
    assert_int_equal(c[0], 2);
    assert_int_equal(c[1], 5);
    pool_free(&s);

    /* Cancelled: nothing runs. */
    pool_new(&s, 0);
    mr_error_set(&why, -ECANCELED, "test: cancelled");
    mr_pool_cancel(s.pool, &why);
    job = job_of(note_job, NULL, (struct targs){ &s, 0, 0, NULL });
    assert_int_equal(mr_pool_submit(s.pool, &job, NULL), -ECANCELED);
    assert_int_equal(s.ran, 0);
    pool_free(&s);
}

/* Free joins: a job that was running has finished when free returns. */
static void free_joins(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct shared s;
    struct mr_pool_job job;

    (void)state;
    pool_new(&s, 2);
    job = job_of(blocking_job, NULL, (struct targs){ &s, 0, 0, NULL });
    assert_int_equal(mr_pool_submit(s.pool, &job, &err), 0);
    sem_wait(&s.started);
    sem_post(&s.go);
    mr_pool_free(s.pool);
    assert_int_equal(__atomic_load_n(&s.finished, __ATOMIC_SEQ_CST), 1);
    sem_destroy(&s.started);
    sem_destroy(&s.go);
}

static void bad_config(void **state)
{
    struct mr_pool_config cfg = { 2, NULL, NULL };
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    assert_null(mr_pool_new(&cfg, &err));
    assert_int_equal(err.code, -EINVAL);
    assert_string_equal(err.msg, "no worker contexts");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jobs_run_and_count),
        cmocka_unit_test(each_worker_its_context),
        cmocka_unit_test(descriptors_exchanged),
        cmocka_unit_test(error_collected),
        cmocka_unit_test(first_error_wins),
        cmocka_unit_test(cancel_wakes_and_skips),
        cmocka_unit_test(no_threads_inline),
        cmocka_unit_test(free_joins),
        cmocka_unit_test(bad_config),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
