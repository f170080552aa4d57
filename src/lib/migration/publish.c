/*
 * Service: errors, statistics and settings snapshots, each under the
 * object's lock (see publish.h).
 */
#include <time.h>

#include "format/stream_defs.h"
#include "migration/object.h"
#include "migration/publish.h"

int64_t mig_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mig_set_out_error(struct mr_migration *mig, const struct mr_error *e)
{
    pthread_mutex_lock(&mig->lock);
    mr_error_propagate(&mig->out_err, e);
    pthread_mutex_unlock(&mig->lock);
}

void mig_set_out_abort(struct mr_migration *mig, void (*fn)(void *opaque),
                       void *opaque)
{
    pthread_mutex_lock(&mig->lock);
    mig->out_abort_fn = fn;
    mig->out_abort_opaque = opaque;
    pthread_mutex_unlock(&mig->lock);
}

void mig_set_in_abort(struct mr_migration *mig, void (*fn)(void *opaque),
                      void *opaque)
{
    pthread_mutex_lock(&mig->lock);
    mig->in_abort_fn = fn;
    mig->in_abort_opaque = opaque;
    pthread_mutex_unlock(&mig->lock);
}

void mig_set_in_error(struct mr_migration *mig, const struct mr_error *e)
{
    pthread_mutex_lock(&mig->lock);
    mr_error_propagate(&mig->in_err, e);
    pthread_mutex_unlock(&mig->lock);
}

void mig_snapshot(struct mr_migration *mig, struct mr_caps *caps,
                  struct mr_params *params)
{
    pthread_mutex_lock(&mig->lock);
    *caps = mig->caps;
    mr_params_copy(params, &mig->params);
    pthread_mutex_unlock(&mig->lock);
}

void mig_stats_update(struct mr_migration *mig, bool outgoing,
                      void (*fill)(struct mig_ram_stats *s, void *opaque),
                      void *opaque)
{
    pthread_mutex_lock(&mig->lock);
    fill(outgoing ? &mig->out_stats : &mig->in_stats, opaque);
    pthread_mutex_unlock(&mig->lock);
}

void mig_publish_in(struct mr_migration *mig, uint64_t total, uint64_t done)
{
    struct mig_ram_stats *s = &mig->in_stats;

    pthread_mutex_lock(&mig->lock);
    s->total = total;
    s->transferred = done;
    /* a legacy live stream may carry a page more than once */
    s->remaining = done < total ? total - done : 0;
    s->page_size = MR_TARGET_PAGE_SIZE;
    pthread_mutex_unlock(&mig->lock);
}
