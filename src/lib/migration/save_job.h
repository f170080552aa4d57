/*
 * The save job's data: shared by the save thread (save.c) and the RAM
 * formats that write its pages (ram_legacy.c, ram_mapped.c).  Data only.
 */
#ifndef MAPRAM_MIGRATION_SAVE_JOB_H
#define MAPRAM_MIGRATION_SAVE_JOB_H

#include "format/cksum.h"
#include "format/stream_write.h"
#include "migration/object.h"
#include "migration/transport.h"
#include "multifd/multifd.h"

struct mig_ram_save_ops;
struct mig_sock_save;

struct save_job {
    struct mr_migration *mig;
    const struct mig_ram_save_ops *fmt;   /* chosen once per job */
    struct mr_caps caps;
    struct mr_params params;
    struct mig_chan ch;
    struct mr_stream_writer w;
    bool w_ready;
    struct mr_multifd *mf;
    struct mr_multifd_block *mblocks;
    struct mr_sw_ram_block *swb;
    unsigned long **dirty;
    bool dirty_log_on, stopped_vm;
    enum mr_runstate prev_run;
    const char *last_block;       /* legacy CONTINUE */
    uint64_t legacy_normal, thread_zero, dirty_syncs;
    uint64_t remaining_pages, downtime_start_bytes;
    int64_t window_ms, downtime_start_ms, setup_done_ms;
    uint64_t window_bytes, pass_bytes;
    struct mr_cksum ck;             /* mapped-ram: extent checksums */
    struct mr_cksum_log log;        /* mapped-ram: main-stream writes */
    struct mig_sock_save *sock;     /* multifd over sockets: the packets */
    struct mr_error err;
};

static inline struct mr_ram_block *save_blk(struct save_job *j, size_t i)
{
    return &j->mig->blocks[i];
}

static inline uint64_t save_blk_pages(struct save_job *j, size_t i)
{
    return save_blk(j, i)->used_length / save_blk(j, i)->page_size;
}

#endif
