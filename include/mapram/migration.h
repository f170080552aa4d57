/*
 * The migration engine: save a VM's RAM and device state to a file, or load
 * it back, in QEMU 10's stream format (docs/stream-format.md), optionally
 * mapped-ram with multifd channels, direct I/O and fdsets.
 *
 * One `struct mr_migration` per VM; nothing is global.  The object holds the
 * capabilities and parameters (QEMU's defaults), the outgoing and incoming
 * migration states, and at most one running save thread and one load
 * thread.  The VM is reached only through `struct mr_vm_ops`
 * (include/mapram/vm.h).
 *
 * Threading: every function here may be called from any one thread at a
 * time (the monitor thread, or an embedder's main thread); the save and
 * load run on their own threads and report through the state, the stats
 * (query-migrate) and, when the `events` capability is on, MIGRATION and
 * MIGRATION_PASS events.
 */
#ifndef MAPRAM_MIGRATION_H
#define MAPRAM_MIGRATION_H

#include <jansson.h>
/* jansson's json_t stays in this API for now: parameters, query-migrate
 * and events are QMP's JSON shapes, shared with the QMP commands.  A
 * JSON-free embedder path (typed setters, a stats struct) is planned. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mapram/error.h"
#include "mapram/vm.h"

struct mr_migration;
struct mr_fdset_registry;
struct mr_qmp_server;

/* QEMU's MigrationStatus, in its enum order (docs/qmp.md, "Migration states and events"). */
enum mr_mig_status {
    MR_MIG_NONE,
    MR_MIG_SETUP,
    MR_MIG_CANCELLING,
    MR_MIG_CANCELLED,
    MR_MIG_ACTIVE,
    MR_MIG_POSTCOPY_ACTIVE,
    MR_MIG_POSTCOPY_PAUSED,
    MR_MIG_POSTCOPY_RECOVER_SETUP,
    MR_MIG_POSTCOPY_RECOVER,
    MR_MIG_COMPLETED,
    MR_MIG_FAILED,
    MR_MIG_COLO,
    MR_MIG_PRE_SWITCHOVER,
    MR_MIG_DEVICE,
    MR_MIG_WAIT_UNPLUG,
    MR_MIG__MAX
};

const char *mr_mig_status_name(enum mr_mig_status st);

/*
 * Create the migration context of one VM.  `blocks` is copied (the names
 * and host mappings must outlive the object).  `fdsets` may be NULL (then
 * /dev/fdset paths fail as unknown sets).  Events reach the embedder only
 * through mr_migration_on_event().
 */
struct mr_migration *mr_migration_new(const struct mr_vm_ops *ops, void *vm,
                                      const struct mr_ram_block *blocks,
                                      size_t nblocks,
                                      struct mr_fdset_registry *fdsets,
                                      struct mr_error *err);
/* Cancels and joins a running save or load, then frees everything. */
void mr_migration_free(struct mr_migration *mig);

/* Register the QMP and HMP migration commands (docs/qmp.md, "Capabilities" through "migrate-incoming", and "HMP"). */
int mr_migration_register_commands(struct mr_migration *mig,
                                   struct mr_qmp_server *srv,
                                   struct mr_error *err);

/* `-incoming URI` at start-up ("defer" only marks the VM as waiting, which
 * its runstate inmigrate already says, and returns 0).  Same as
 * migrate-incoming with exit-on-error true. */
int mr_migration_incoming(struct mr_migration *mig, const char *uri,
                          struct mr_error *err);

/*
 * Called on the load thread when an incoming migration fails.  When
 * `exit_on_error` is true the embedder is expected to print `err->msg` and
 * exit with status 1 (QEMU's default, docs/qmp.md, "migrate-incoming"); otherwise the state
 * is `failed` and the process keeps waiting in inmigrate.  Without a hook,
 * nothing exits.
 */
typedef void (*mr_migration_load_failed_fn)(void *opaque, bool exit_on_error,
                                            const struct mr_error *err);
void mr_migration_on_load_failed(struct mr_migration *mig,
                                 mr_migration_load_failed_fn fn, void *opaque);

/* Autostart after a load (no -S, no `stop` while inmigrate; default true).
 * The VM host calls this from -S and from stop/cont in inmigrate. */
void mr_migration_set_autostart(struct mr_migration *mig, bool autostart);

/* Ask the embedder instead (a VM host that tracks -S and stop/cont during
 * inmigrate itself): `fn(opaque)` is read once, when a load has finished. */
void mr_migration_autostart_from(struct mr_migration *mig,
                                 bool (*fn)(void *opaque), void *opaque);

/* The event observer (a QMP server's emitter, tests): called on the save or
 * load thread with the event name and its data (borrowed) for every event
 * the `events` capability lets through. */
typedef void (*mr_migration_event_fn)(void *opaque, const char *name,
                                      json_t *data);
void mr_migration_on_event(struct mr_migration *mig, mr_migration_event_fn fn,
                           void *opaque);

/* --- the embedder API (what the QMP commands call) --- */

int mr_migration_set_capability(struct mr_migration *mig, const char *name,
                                bool on, struct mr_error *err);
/* migrate-set-parameters with a JSON object of members. */
int mr_migration_set_parameters(struct mr_migration *mig, json_t *members,
                                struct mr_error *err);
/* migrate with a URI (file:PATH[,offset=N]).  Returns once the save thread
 * runs, or with the error that failed it. */
int mr_migration_start(struct mr_migration *mig, const char *uri,
                       struct mr_error *err);
/* migrate-incoming with a URI. */
int mr_migration_start_incoming(struct mr_migration *mig, const char *uri,
                                bool exit_on_error, struct mr_error *err);
/* migrate_cancel */
void mr_migration_cancel(struct mr_migration *mig);
/* migrate-continue from pre-switchover. */
int mr_migration_continue(struct mr_migration *mig, struct mr_error *err);

enum mr_mig_status mr_migration_state(struct mr_migration *mig);
enum mr_mig_status mr_migration_incoming_state(struct mr_migration *mig);
/* The recorded error (error-desc) of the outgoing, else incoming side. */
void mr_migration_last_error(struct mr_migration *mig, struct mr_error *out);
/* query-migrate's MigrationInfo (new reference). */
json_t *mr_migration_query(struct mr_migration *mig);
/* Wait until the save (outgoing=true) or load thread has finished. */
void mr_migration_join(struct mr_migration *mig, bool outgoing);

#endif
