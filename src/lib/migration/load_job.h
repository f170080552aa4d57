/*
 * The load job's data: shared by the load thread (load.c), its load mode
 * (load_eager.c) and the RAM formats that read its pages
 * (ram_legacy_load.c, ram_mapped_load.c).  Data and two one-liners only.
 */
#ifndef MAPRAM_MIGRATION_LOAD_JOB_H
#define MAPRAM_MIGRATION_LOAD_JOB_H

#include "format/cksum.h"
#include "format/layout.h"
#include "format/source.h"
#include "format/stream_parse.h"
#include "migration/object.h"
#include "migration/publish.h"
#include "migration/transport.h"

struct mig_ram_load_ops;
struct mig_load_mode_ops;
struct mr_populate;
struct mig_sock_load;

struct load_plan {
    size_t block;
    uint64_t pages_offset, num_pages, page_size;
    uint8_t *bitmap;            /* on-disk LE-64 form */
};

struct load_job {
    struct mr_migration *mig;
    const struct mig_ram_load_ops *fmt;    /* chosen once per job */
    const struct mig_load_mode_ops *mode;  /* chosen once per job */
    struct mr_caps caps;
    bool exit_on_error;
    const char *io_engine;         /* x-io-engine */
    uint64_t lazy_granule;         /* x-lazy-granule */
    uint64_t lazy_fill_cap;        /* x-lazy-fill-cap, MB/s (0: none) */
    bool lazy_wset;                /* x-lazy-working-set */
    struct mig_chan ch;
    struct mr_source src;
    struct mr_cursor c;
    uint8_t *readahead;            /* legacy streams: the cursor's buffer */
    struct mr_populate *legacy_pop; /* legacy streams: populate-ahead */
    uint64_t *populated;           /* legacy streams: checked front, per block */
    struct load_plan *plans;
    size_t nplans, plans_cap;
    struct mr_layout layout;       /* mapped-ram: the blocks checked so far */
    struct mr_device_state *devs;
    size_t ndevs, devs_cap;
    char src_run[MIG_GLOBALSTATE_BYTES + 1];
    bool have_globalstate, have_ram;
    uint32_t ram_sid;
    struct mr_ram_page_ctx pctx;    /* one per load: CONTINUE may refer to
                                     * a block named in an earlier section */
    struct mr_multifd *mf;
    struct mig_sock_load *sockl;    /* multifd over sockets: the receiver */
    uint64_t total_bytes, done_bytes;
    struct mr_cksum ck;
    bool have_ck;
    struct mr_error err;
};

/* Record an error in the cursor's sticky error (first wins). */
#define LOAD_FAIL(j, code, ...) mr_error_set(&(j)->c.err, (code), __VA_ARGS__)
#define ULL(x) ((unsigned long long)(x))

/* The VM is going away (mr_migration_free): stop between pieces. */
static inline bool load_cancelled(struct load_job *j)
{
    return atomic_load(&j->mig->load_cancel);
}

static inline void load_publish(struct load_job *j)
{
    mig_publish_in(j->mig, j->total_bytes, j->done_bytes);
}

#endif
