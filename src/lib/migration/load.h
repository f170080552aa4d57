/*
 * The load thread's entry, called by the facade (migration.c) once the
 * checks passed and the incoming state is `setup`.
 */
#ifndef MAPRAM_MIGRATION_LOAD_H
#define MAPRAM_MIGRATION_LOAD_H

#include <stdbool.h>

#include "mapram/error.h"
#include "migration/transport.h"

struct mr_migration;

/* Snapshot the settings, open the inputs through `tr` and start the load
 * thread.  An open failure is returned and the state stays `setup`. */
int mig_load_start(struct mr_migration *mig, const struct mr_mig_addr *a,
                   const struct mig_transport_ops *tr, bool exit_on_error,
                   struct mr_error *err);

#endif
