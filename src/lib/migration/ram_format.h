/*
 * The RAM-format seam: legacy (pages inline in the stream,
 * ram_legacy_*.c), mapped-ram (pages at fixed file offsets through the
 * multifd channels, ram_mapped_*.c) and multifd over sockets (pages in
 * packets on the page sockets, ram_sock_*.c) are peers behind these
 * tables, chosen once per job from the mapped-ram and multifd
 * capabilities.  Calls are per setup, per batch or per block.
 */
#ifndef MAPRAM_MIGRATION_RAM_FORMAT_H
#define MAPRAM_MIGRATION_RAM_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/stream_write.h"
#include "migration/params.h"

struct save_job;
struct load_job;
struct mr_ram_block_entry;

struct mig_ram_save_ops {
    const char *name;
    bool wire_mapped;       /* the block list's form (mr_sw_ram_setup) */
    /* Page channels this format runs with. */
    unsigned (*nchannels)(const struct mr_caps *c, const struct mr_params *p);
    /* Per-block state, after the dirty bitmaps exist. */
    int (*alloc)(struct save_job *j);
    /* How the main stream is written (the transport, maybe wrapped). */
    struct mr_stream_sink (*sink)(struct save_job *j);
    /* After the block list was flushed: start the page channels. */
    int (*start)(struct save_job *j);
    /* A batch of dirty pages [first, first + n) of block b (bits cleared). */
    int (*send)(struct save_job *j, size_t b, uint64_t first, uint64_t n);
    /* End of a pass (before its EOS). */
    int (*pass_done)(struct save_job *j);
    /* END section, after the final pass: checksums, file bitmaps. */
    int (*finish)(struct save_job *j);
    /* The trailer's stream CRC over the main stream up to `end`. */
    int (*stream_crc)(struct save_job *j, uint64_t end);
    /* Stop the channels (cancelled when the job failed). */
    void (*release)(struct save_job *j);
    void (*free)(struct save_job *j);
};

struct mig_ram_load_ops {
    const char *name;
    bool wire_mapped;       /* the parser's form of the RAM records */
    unsigned (*nchannels)(const struct mr_caps *c, const struct mr_params *p);
    /* Load thread, for a transport that accepts connections: every socket
     * of the migration from listener `lfd`, *main_fd the main one (the
     * transport's to close).  `opaque` is the load job.  NULL: the
     * transport accepts the main socket alone. */
    int (*accept)(void *opaque, int lfd, int *main_fd, struct mr_error *err);
    /* Before the header is parsed (legacy: the read-ahead buffer). */
    int (*begin)(struct load_job *j);
    /* The START payload: announced total, then each matched block. */
    void (*mem_size)(struct load_job *j, uint64_t total);
    int (*block)(struct load_job *j, int b, const struct mr_ram_block_entry *e);
    /* The block list is complete (legacy: populate-ahead starts). */
    void (*blocks_done)(struct load_job *j);
    /* A RAM payload up to its EOS. */
    int (*payload)(struct load_job *j);
    /* Every page not in the stream, once the stream was checked. */
    int (*fetch_all)(struct load_job *j);
    void (*release)(struct load_job *j);
};

extern const struct mig_ram_save_ops mig_ram_save_legacy, mig_ram_save_mapped,
                                     mig_ram_save_sock;
extern const struct mig_ram_load_ops mig_ram_load_legacy, mig_ram_load_mapped,
                                     mig_ram_load_sock;

/* The page channels of a format: none, or multifd-channels with multifd. */
unsigned mig_ram_no_channels(const struct mr_caps *c, const struct mr_params *p);
unsigned mig_ram_multifd_channels(const struct mr_caps *c,
                                  const struct mr_params *p);

/* The main stream straight to the transport (legacy, multifd sockets). */
struct mr_stream_sink mig_ram_plain_sink(struct save_job *j);

/* Legacy records up to EOS, with `on_flush` at each MULTIFD_FLUSH (NULL:
 * ignored, as a destination without multifd does): the legacy payload,
 * and multifd over sockets' main stream. */
int mig_ram_legacy_records(struct load_job *j,
                           int (*on_flush)(struct load_job *j));

/* The format of a job, chosen once from the capabilities. */
const struct mig_ram_save_ops *mig_ram_save_format(const struct mr_caps *c);
const struct mig_ram_load_ops *mig_ram_load_format(const struct mr_caps *c);

#endif
