/*
 * Service: what the save and load threads publish to the object under its
 * lock (the recorded errors, query-migrate's statistics) and the snapshot
 * of the settings a job runs with.  Also the clock every layer uses.
 */
#ifndef MAPRAM_MIGRATION_PUBLISH_H
#define MAPRAM_MIGRATION_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>

#include "mapram/error.h"
#include "migration/params.h"

struct mr_migration;
struct mig_ram_stats;

int64_t mig_now_ms(void);

/* Record the outgoing/incoming error (first wins). */
void mig_set_out_error(struct mr_migration *mig, const struct mr_error *e);
void mig_set_in_error(struct mr_migration *mig, const struct mr_error *e);

/* What migrate_cancel calls to interrupt the save thread (NULL: nothing);
 * cleared before what it interrupts goes away. */
void mig_set_out_abort(struct mr_migration *mig, void (*fn)(void *opaque),
                       void *opaque);
/* The same for the load thread, called when the VM goes away. */
void mig_set_in_abort(struct mr_migration *mig, void (*fn)(void *opaque),
                      void *opaque);

/* Snapshot caps and params under the lock (params: release them). */
void mig_snapshot(struct mr_migration *mig, struct mr_caps *caps,
                  struct mr_params *params);

/* Run `fill` on the outgoing or incoming statistics under the lock. */
void mig_stats_update(struct mr_migration *mig, bool outgoing,
                      void (*fill)(struct mig_ram_stats *s, void *opaque),
                      void *opaque);

/* Incoming progress: `total` bytes to load, `done` loaded. */
void mig_publish_in(struct mr_migration *mig, uint64_t total, uint64_t done);

#endif
