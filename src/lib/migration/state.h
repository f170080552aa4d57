/*
 * The migration state machine: QEMU's MigrationStatus, a const table of
 * allowed transitions, and a compare-and-swap transition that reports each
 * change exactly once.  See the diagram in state.c.
 */
#ifndef MAPRAM_MIGRATION_STATE_H
#define MAPRAM_MIGRATION_STATE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "mapram/migration.h"

/* Called after every successful transition (the owner gates events on the
 * `events` capability). */
typedef void (*mr_mig_state_cb)(void *opaque, enum mr_mig_status to);

struct mr_mig_state {
    _Atomic int cur;
    bool incoming;          /* selects the destination's table */
    mr_mig_state_cb cb;
    void *opaque;
};

void mr_mig_state_init(struct mr_mig_state *s, bool incoming,
                       mr_mig_state_cb cb, void *opaque);
/* Is `from -> to` in the table of this side? */
bool mr_mig_state_allowed(bool incoming, enum mr_mig_status from,
                          enum mr_mig_status to);
/* Move from `from` to `to` if the state is still `from` and the table
 * allows it; reports the change.  False (and no report) otherwise. */
bool mr_mig_state_cas(struct mr_mig_state *s, enum mr_mig_status from,
                      enum mr_mig_status to);
enum mr_mig_status mr_mig_state_get(const struct mr_mig_state *s);
/* A new `migrate` forgets a finished migration: terminal -> none, silently
 * (QEMU's migrate_init).  False if the state is not terminal or none. */
bool mr_mig_state_reset(struct mr_mig_state *s);
bool mr_mig_status_is_terminal(enum mr_mig_status st);
/* setup, active, cancelling, device, pre-switchover, ...: a source-side
 * migration is in progress. */
bool mr_mig_status_is_running(enum mr_mig_status st);

#endif
