/*
 * Service: the engine's events, delivered to the embedder's callback
 * (see events.h).
 */
#include "migration/events.h"
#include "migration/object.h"

void mig_emit(struct mr_migration *mig, const char *name, json_t *data)
{
    bool on;

    pthread_mutex_lock(&mig->lock);
    on = mig->caps.on[MR_CAP_EVENTS];
    pthread_mutex_unlock(&mig->lock);
    if (on && mig->event_fn)
        mig->event_fn(mig->event_opaque, name, data);
    json_decref(data);
}

void mig_state_changed(void *opaque, enum mr_mig_status to)
{
    mig_emit(opaque, "MIGRATION",
             json_pack("{s:s}", "status", mr_mig_status_name(to)));
}
