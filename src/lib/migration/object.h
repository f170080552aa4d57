/*
 * The migration object's data (struct mr_migration), shared by every layer
 * of src/lib/migration (docs/migration.md).  Data only: no functions, so
 * including it never ties two modules together.  Not installed.
 */
#ifndef MAPRAM_MIGRATION_OBJECT_H
#define MAPRAM_MIGRATION_OBJECT_H

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
    /* Called (under the lock) by migrate_cancel: ends a wait the save
     * thread cannot poll, e.g. on a page socket (mig_set_out_abort). */
    void (*out_abort_fn)(void *opaque);
    void *out_abort_opaque;
    struct mig_ram_stats out_stats;
    int64_t out_start_ms;

    /* incoming */
    bool incoming_started;
    atomic_bool load_cancel; /* set by mr_migration_free */
    void (*in_abort_fn)(void *opaque);  /* and then called (under the lock) */
    void *in_abort_opaque;
    bool load_thread_live;
    pthread_t load_thread;
    struct mig_ram_stats in_stats;
    struct mig_lazy *lazy;   /* a lazy load's state (load_lazy.c) */
};

/* The globalstate section (the source's run state, like QEMU's). */
#define MIG_GLOBALSTATE_IDSTR "globalstate"
#define MIG_GLOBALSTATE_BYTES 100
/* Device sections: be32 length + bytes, bounded on load. */
#define MIG_DEVICE_MAX_BYTES (64u << 20)
#define MIG_RAM_SECTION_ID 1

#endif
