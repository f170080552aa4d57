/*
 * Service: events leave the engine only through the embedder's callback
 * (mr_migration_on_event), and only when the `events` capability is on.
 * The state machines report their transitions here as MIGRATION events.
 */
#ifndef MAPRAM_MIGRATION_EVENTS_H
#define MAPRAM_MIGRATION_EVENTS_H

#include <jansson.h>

#include "migration/state.h"

struct mr_migration;

/* Emit `name` with `data` (stolen) if the `events` capability is on. */
void mig_emit(struct mr_migration *mig, const char *name, json_t *data);

/* The state machines' transition hook (opaque: the migration object). */
void mig_state_changed(void *opaque, enum mr_mig_status to);

#endif
