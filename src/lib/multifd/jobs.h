/*
 * The jobs a page channel runs, each a peer behind the pool's descriptor
 * (pool.h), one file each: page writes (jobs_write.c), range reads
 * (jobs_read.c), extent checksums and verified extent loads (jobs_cksum.c),
 * verified fills into a bounce buffer (jobs_fill.c).
 * A channel (the worker context) is only a descriptor and its I/O engine.
 */
#ifndef MAPRAM_MULTIFD_JOBS_H
#define MAPRAM_MULTIFD_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "io/engine.h"
#include "multifd/batch.h"
#include "multifd/multifd.h"
#include "multifd/pool.h"

struct mr_channel {
    unsigned id;
    int fd;
    bool on_caller;              /* nchannels == 0: the caller's sync_fd */
    struct mr_io_engine *io;
};

/* What the jobs count (pool counters). */
enum {
    MR_CNT_NORMAL_PAGES,
    MR_CNT_ZERO_PAGES,
    MR_CNT_BYTES_WRITTEN,
    MR_CNT_BYTES_READ,
    MR_CNT_REQUESTS,
};

/* ---- jobs_write.c: one save batch ---------------------------------------- */

/* Pages of one block to save, with the scratch a channel needs to write
 * them, all sized for `cap` pages.  It travels as the job's obj. */
struct mr_page_batch {
    const struct mr_multifd_block *block;
    size_t npages;
    uint64_t *pages;             /* block-relative page indexes */
    uint8_t *kind;               /* MR_PAGE_* of pages[i] */
    struct mr_page_run *runs;
    struct iovec *iov;
    struct mr_io_req *reqs;
};

struct mr_page_batch *mr_page_batch_new(size_t cap);
void mr_page_batch_free(struct mr_page_batch *bt);

/* Test the pages for zero (if `detect`), clear the bits of those skipped,
 * write the rest in runs bridging up to `zero_gap` zero pages, and set the
 * bits of every run written. */
struct mr_pool_job mr_job_write(struct mr_page_batch *bt, bool detect,
                                unsigned zero_gap);

/* ---- jobs_read.c: one byte range ------------------------------------------ */

struct mr_pool_job mr_job_read(void *host, uint64_t len, uint64_t offset);
/* The same read, called by other jobs on their channel. */
int mr_channel_read(struct mr_channel *c, void *host, uint64_t len,
                    uint64_t offset, uint64_t *count, struct mr_error *e);

/* ---- jobs_cksum.c: extent checksums ---------------------------------------- */

/* Save: CRC32C of extents [first, first + n) of block `b` into out[]. */
struct mr_pool_job mr_job_checksum(const struct mr_multifd_block *b,
                                   uint64_t first, uint64_t n, uint32_t *out);
/* Load: read the extent's present pages and check its CRC. */
struct mr_pool_job mr_job_verify_extent(const struct mr_multifd_extent *x);

/* ---- jobs_fill.c: one verified range into a bounce buffer ------------------ */

struct mr_pool_job mr_job_fill(struct mr_multifd_fill *f);

#endif
