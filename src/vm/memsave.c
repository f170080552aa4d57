/* The pmemsave/memsave copies (memsave.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "memsave.h"

#define WRITE_MAX_BYTES (1u << 30)

struct memsave_job {
    struct memsave *ms;
    struct memsave_job *next;     /* ms->jobs, under ms->lock */
    pthread_t thread;
    int fd;
    const uint8_t *src;
    uint64_t size;
    char *path;
    struct mr_qmp_deferred *reply;
    bool done;                    /* under ms->lock */
};

struct memsave {
    pthread_mutex_t lock;
    struct memsave_job *jobs;
    int cancel_fd;                /* eventfd, readable once shutting down */
};

struct memsave *memsave_new(struct mr_error *err)
{
    struct memsave *ms = calloc(1, sizeof(*ms));

    if (ms)
        ms->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!ms || ms->cancel_fd < 0) {
        mr_error_set(err, -ENOMEM, "cannot create the memory save worker");
        free(ms);
        return NULL;
    }
    pthread_mutex_init(&ms->lock, NULL);
    return ms;
}

/* A non-blocking descriptor that is full: wait for room or cancellation. */
static int wait_writable(int fd, int cancel_fd)
{
    struct pollfd p[2] = { { fd, POLLOUT, 0 }, { cancel_fd, POLLIN, 0 } };

    while (poll(p, 2, -1) < 0)
        if (errno != EINTR)
            return -errno;
    return p[1].revents ? -ECANCELED : 0;
}

static int copy_out(int fd, const uint8_t *p, uint64_t size, int cancel_fd)
{
    while (size) {
        ssize_t n = write(fd, p, size > WRITE_MAX_BYTES ? WRITE_MAX_BYTES
                                                        : size);
        int rc = 0;

        if (n < 0 && errno == EAGAIN)
            rc = wait_writable(fd, cancel_fd);
        else if (n < 0 && errno != EINTR)
            rc = -errno;
        else if (n == 0)
            rc = -ENOSPC;
        if (rc < 0)
            return rc;
        if (n > 0) {
            p += n;
            size -= (uint64_t)n;
        }
    }
    return 0;
}

static void *job_main(void *opaque)
{
    struct memsave_job *job = opaque;
    struct mr_error err = MR_ERROR_INIT;
    int rc = copy_out(job->fd, job->src, job->size, job->ms->cancel_fd);

    if (close(job->fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0)
        mr_error_set(&err, rc, "writing memory to '%s' failed", job->path);
    mr_qmp_deferred_finish(job->reply, NULL, &err);
    pthread_mutex_lock(&job->ms->lock);
    job->done = true;
    pthread_mutex_unlock(&job->ms->lock);
    return NULL;
}

static void job_free(struct memsave_job *job)
{
    pthread_join(job->thread, NULL);
    free(job->path);
    free(job);
}

/* Join the copies that have finished. */
static void reap(struct memsave *ms)
{
    struct memsave_job **pp = &ms->jobs, *done = NULL, *j;

    pthread_mutex_lock(&ms->lock);
    while ((j = *pp)) {
        if (j->done) {
            *pp = j->next;
            j->next = done;
            done = j;
        } else {
            pp = &j->next;
        }
    }
    pthread_mutex_unlock(&ms->lock);
    while ((j = done)) {
        done = j->next;
        job_free(j);
    }
}

/* O_NONBLOCK: a FIFO without a reader fails now instead of blocking, and
 * a full one makes write() return, so the copy can be cancelled. */
static int open_target(const char *path, struct mr_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK,
                  0666);

    if (fd < 0)
        return mr_error_set(err, -errno, "Could not open '%s': %s", path,
                            strerror(errno));
    return fd;
}

static int launch(struct memsave *ms, struct memsave_job *job,
                  struct mr_qmp_call *call, struct mr_error *err)
{
    int rc;

    job->reply = mr_qmp_call_defer(call);
    if (!job->reply)
        return mr_error_set(err, -ENOMEM, "out of memory");
    pthread_mutex_lock(&ms->lock);
    rc = pthread_create(&job->thread, NULL, job_main, job);
    if (rc == 0) {
        job->next = ms->jobs;
        ms->jobs = job;
    }
    pthread_mutex_unlock(&ms->lock);
    if (rc) {
        struct mr_error e = MR_ERROR_INIT;

        mr_error_set(&e, -rc, "cannot start the copy: %s", strerror(rc));
        mr_qmp_deferred_finish(job->reply, NULL, &e);
        return -rc; /* answered through the deferred reply */
    }
    return 0;
}

int memsave_start(struct memsave *ms, struct mr_qmp_call *call, struct vm *vm,
                  uint64_t gpa, uint64_t size, const char *path,
                  struct mr_error *err)
{
    struct memsave_job *job;
    int fd, rc;

    if (gpa > vm->machine.ram_bytes || size > vm->machine.ram_bytes - gpa)
        return mr_error_set(err, -EINVAL, "Invalid addr 0x%016llx/size %lld "
                            "specified", (unsigned long long)gpa,
                            (long long)size);
    reap(ms);
    fd = open_target(path, err);
    if (fd < 0)
        return fd;
    job = calloc(1, sizeof(*job));
    if (job)
        job->path = strdup(path);
    if (!job || !job->path) {
        close(fd);
        free(job);
        return mr_error_set(err, -ENOMEM, "out of memory");
    }
    *job = (struct memsave_job){ .ms = ms, .fd = fd, .path = job->path,
                                 .src = vm->machine.ram + gpa, .size = size };
    rc = launch(ms, job, call, err);
    if (rc < 0) {
        close(fd);
        free(job->path);
        free(job);
    }
    return rc < 0 && mr_error_is_set(err) ? rc : 0;
}

void memsave_free(struct memsave *ms)
{
    uint64_t one = 1;
    struct memsave_job *j;

    if (!ms)
        return;
    if (write(ms->cancel_fd, &one, sizeof(one)) < 0) {
        /* cannot fail for an eventfd counter this small */
    }
    while ((j = ms->jobs)) {
        ms->jobs = j->next;
        job_free(j);
    }
    close(ms->cancel_fd);
    pthread_mutex_destroy(&ms->lock);
    free(ms);
}
