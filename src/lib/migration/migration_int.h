/*
 * Inside the migration object: shared by migration.c (object, settings,
 * query), save.c (the save thread), load.c (the load thread) and
 * commands.c (QMP/HMP).  Not installed.
 */
#ifndef MAPRAM_MIGRATION_INT_H
#define MAPRAM_MIGRATION_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mapram/migration.h"
#include "migration/params.h"
#include "migration/state.h"
#include "migration/uri.h"

/* What query-migrate shows about RAM; written by the save or load thread
 * under mig->lock. */
struct mig_ram_stats {
    uint64_t transferred, remaining, total, duplicate, normal;
    uint64_t dirty_sync_count, multifd_bytes, page_size;
    uint64_t downtime_bytes;
    double mbps;
    uint64_t pages_per_second;
    int64_t setup_time_ms, total_time_ms, downtime_ms, expected_downtime_ms;
};

struct mr_migration {
    const struct mr_vm_ops *ops;
    void *vm;
    struct mr_ram_block *blocks;
    size_t nblocks;
    struct mr_fdset_registry *fdsets;
    struct mr_qmp_server *srv;

    mr_migration_event_fn event_fn;
    void *event_opaque;
    mr_migration_load_failed_fn load_failed_fn;
    void *load_failed_opaque;

    pthread_mutex_t lock;   /* caps, params, errors, stats, thread flags */
    pthread_cond_t cond;    /* migrate-continue, thread exits */
    struct mr_caps caps;
    struct mr_params params;
    atomic_bool autostart;
    bool (*autostart_fn)(void *opaque);
    void *autostart_opaque;

    struct mr_mig_state out, in;
    struct mr_error out_err, in_err;

    /* outgoing */
    bool save_thread_live;  /* joinable */
    pthread_t save_thread;
    atomic_bool cancel_req;
    bool continue_req;
    struct mig_ram_stats out_stats;
    int64_t out_start_ms;

    /* incoming */
    bool incoming_started;
    atomic_bool load_cancel; /* set by mr_migration_free */
    bool load_thread_live;
    pthread_t load_thread;
    struct mig_ram_stats in_stats;
};

int64_t mig_now_ms(void);
/* Debug builds: assert what must hold whenever mig->lock is free (called
 * by query-migrate).  A no-op with NDEBUG. */
void mr_migration_check_invariants(struct mr_migration *mig);
/* Emit an event if the `events` capability is on (data is stolen). */
void mig_emit(struct mr_migration *mig, const char *name, json_t *data);
/* Record the outgoing/incoming error (first wins). */
void mig_set_out_error(struct mr_migration *mig, const struct mr_error *e);
void mig_set_in_error(struct mr_migration *mig, const struct mr_error *e);
/* Check the capability set `n` against the current one (QEMU's
 * migrate_caps_check) and apply it, all or nothing. */
int mig_apply_caps(struct mr_migration *mig, const struct mr_caps *n,
                   struct mr_error *err);
/* Snapshot caps and params under the lock. */
void mig_snapshot(struct mr_migration *mig, struct mr_caps *caps,
                  struct mr_params *params);
/* Close a descriptor that may be an fdset duplicate. */
void mig_close_fd(struct mr_migration *mig, int fd);
/* Open `path` (or /dev/fdset/N) with `flags`, QEMU's messages. */
int mig_open(struct mr_migration *mig, const char *path, int flags,
             struct mr_error *err);

/* migrate after its URI was parsed: checks 4-6, fdset rules, start. */
int mig_migrate_addr(struct mr_migration *mig, const struct mr_mig_addr *a,
                     struct mr_error *err);
/* migrate-incoming checks 1-5 in order, then start. */
int mig_incoming_args(struct mr_migration *mig, json_t *uri, json_t *channels,
                      bool exit_on_error, struct mr_error *err);

/* save.c / load.c */
int mig_start_outgoing(struct mr_migration *mig, const struct mr_mig_addr *a,
                       struct mr_error *err);
int mig_start_incoming(struct mr_migration *mig, const struct mr_mig_addr *a,
                       bool exit_on_error, struct mr_error *err);

/* The globalstate section (the source's run state, like QEMU's). */
#define MIG_GLOBALSTATE_IDSTR "globalstate"
#define MIG_GLOBALSTATE_BYTES 100
/* Device sections: be32 length + bytes, bounded on load. */
#define MIG_DEVICE_MAX_BYTES (64u << 20)
#define MIG_RAM_SECTION_ID 1

#endif
