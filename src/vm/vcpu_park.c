/* The vCPU parking handshake (vcpu_park.h). */
#include <errno.h>

#include "vcpu_park.h"

void vcpu_park_init(struct vcpu_park *p)
{
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->run_wanted = p->parked = p->quit = false;
    p->failed = 0;
    mr_error_clear(&p->fail_err);
}

void vcpu_park_destroy(struct vcpu_park *p)
{
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
}

bool vcpu_park_wait_for_run(struct vcpu_park *p)
{
    p->parked = true;
    pthread_cond_broadcast(&p->cond);
    while (!p->run_wanted && !p->quit)
        pthread_cond_wait(&p->cond, &p->lock);
    if (p->quit)
        return false;
    p->parked = false;
    return true;
}

void vcpu_park_wait_parked(struct vcpu_park *p)
{
    while (!p->parked)
        pthread_cond_wait(&p->cond, &p->lock);
}

void vcpu_park_quit(struct vcpu_park *p)
{
    pthread_mutex_lock(&p->lock);
    p->quit = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

void vcpu_park_fail(struct vcpu_park *p, struct machine *m,
                    const struct mr_error *err)
{
    p->failed = err->code < 0 ? err->code : -EIO;
    p->fail_err = *err;
    p->run_wanted = false;
    p->parked = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (m->on_vcpu_fatal)
        m->on_vcpu_fatal(m->fatal_opaque, err);
    pthread_mutex_lock(&p->lock);
}

int vcpu_park_failure(struct vcpu_park *p, struct mr_error *err)
{
    if (p->failed < 0)
        mr_error_propagate(err, &p->fail_err);
    return p->failed;
}
