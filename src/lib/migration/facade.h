/*
 * The facade's entry points for the commands layer (commands.c): the
 * argument forms of migrate / migrate-incoming and capability sets.
 * Implemented in migration.c.  Not installed.
 */
#ifndef MAPRAM_MIGRATION_FACADE_H
#define MAPRAM_MIGRATION_FACADE_H

#include <jansson.h>
#include <stdbool.h>

#include "mapram/migration.h"
#include "migration/params.h"
#include "migration/uri.h"

/* Debug builds: assert what must hold whenever mig->lock is free (called
 * by query-migrate).  A no-op with NDEBUG. */
void mr_migration_check_invariants(struct mr_migration *mig);
/* Check the capability set `n` against the current one (QEMU's
 * migrate_caps_check) and apply it, all or nothing. */
int mig_apply_caps(struct mr_migration *mig, const struct mr_caps *n,
                   struct mr_error *err);
/* migrate after its URI was parsed: checks 4-6, transport checks, start. */
int mig_migrate_addr(struct mr_migration *mig, const struct mr_mig_addr *a,
                     struct mr_error *err);
/* migrate-incoming checks 1-5 in order, then start. */
int mig_incoming_args(struct mr_migration *mig, json_t *uri, json_t *channels,
                      bool exit_on_error, struct mr_error *err);

#endif
