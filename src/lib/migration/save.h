/*
 * The save thread's entry, called by the facade (migration.c) once the
 * checks passed and the state is `setup`.
 */
#ifndef MAPRAM_MIGRATION_SAVE_H
#define MAPRAM_MIGRATION_SAVE_H

#include "mapram/error.h"
#include "migration/transport.h"

struct mr_migration;

/* Snapshot the settings, open what `tr` can open without blocking and
 * start the save thread; on failure the state is `failed` with the error
 * recorded, and the error is returned. */
int mig_save_start(struct mr_migration *mig, const struct mr_mig_addr *a,
                   const struct mig_transport_ops *tr, struct mr_error *err);

#endif
