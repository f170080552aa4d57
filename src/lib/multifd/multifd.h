/*
 * Page channels ("multifd" over a file): N threads, each with its own
 * descriptor, moving whole pages between guest RAM and fixed file offsets
 * (docs/multifd.md; the pool itself: docs/io.md).  The migration code above knows nothing of
 * threads, iovecs or I/O engines; it queues pages (save) or byte ranges
 * (load), flushes, and syncs.
 *
 * Save: pages are collected into batches of at most MR_MULTIFD_BATCH_BYTES /
 * page size pages of one block; a full batch (or a flush) is handed to an
 * idle channel by swapping batch objects, never copying.  The channel
 * detects zero pages (if asked), updates the block's file bitmap with
 * atomic bit operations (set = stored, clear = zero), and writes the rest
 * with as few, as large, requests as it can at pages_offset + page * size.
 *
 * Load: a byte range of guest RAM is read from its file offset by the next
 * idle channel.
 *
 * With nchannels == 0 everything runs synchronously on the caller's thread
 * through `sync_fd` (mapped-ram without multifd).
 *
 * Errors: the first error of any channel is kept; every later call
 * returns it.  Short transfers are resumed, never ignored.
 */
#ifndef MAPRAM_MULTIFD_H
#define MAPRAM_MULTIFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Save batch size.  Mapped-ram has no packets, so a batch only bounds one
 * channel job.  2 MiB (QEMU's MULTIFD_PACKET_SIZE is 512 KiB) gives about
 * 1.5 MiB per O_DIRECT request with 20 % scattered zero pages instead of
 * 469 KiB, and a quarter of the hand-offs; a cancel still waits for at
 * most one 2 MiB job per channel.  The file layout does not depend on it. */
#define MR_MULTIFD_BATCH_BYTES (2ull << 20)

#include "mapram/error.h"

struct mr_multifd;

/* A RAM block as the channels see it (save side). */
struct mr_multifd_block {
    const char *name;
    uint8_t *host;               /* page-aligned */
    uint64_t used_length;
    uint64_t page_size;
    uint64_t pages_offset;       /* absolute file offset of page 0 */
    unsigned long *file_bitmap;  /* one bit per page, updated atomically */
};

enum mr_zero_page_detection {
    MR_ZERO_PAGE_NONE,     /* every queued page is written, bit set */
    MR_ZERO_PAGE_CHANNEL,  /* channels test pages (QEMU's "multifd") */
};

struct mr_multifd_config {
    unsigned nchannels;          /* 0: synchronous on sync_fd */
    const int *fds;              /* nchannels descriptors (borrowed) */
    int sync_fd;                 /* used when nchannels == 0 */
    bool direct_io;              /* fds carry O_DIRECT: keep I/O aligned */
    enum mr_zero_page_detection zero_detection;
    const struct mr_multifd_block *blocks; /* save side; NULL for load */
    size_t nblocks;
    const char *engine;          /* I/O engine name, NULL = default */
};

struct mr_multifd_stats {
    uint64_t normal_pages;       /* pages written */
    uint64_t zero_pages;         /* pages found zero and skipped */
    uint64_t bytes_written;      /* page bytes written (incl. any padding) */
    uint64_t bytes_read;
    uint64_t requests;           /* I/O requests issued */
};

struct mr_multifd *mr_multifd_new(const struct mr_multifd_config *cfg,
                                  struct mr_error *err);
/* Stops and joins the channels.  Does not close the descriptors. */
void mr_multifd_free(struct mr_multifd *m);

/* Save: queue page `page_index` of block `block_idx`. */
int mr_multifd_queue_page(struct mr_multifd *m, size_t block_idx,
                          uint64_t page_index, struct mr_error *err);
/* Hand the partially filled batch to a channel. */
int mr_multifd_flush(struct mr_multifd *m, struct mr_error *err);

/* Load: read `len` bytes at `file_offset` into `host`. */
int mr_multifd_queue_read(struct mr_multifd *m, void *host, uint64_t len,
                          uint64_t file_offset, struct mr_error *err);

/*
 * Load with verification: one extent of a block (format/cksum.h).  The
 * channel reads the extent's present pages, then computes the extent's
 * CRC32C as the loader sees it (absent pages as zeros) and fails the load
 * with a message naming the block and extent when it differs from `crc`.
 * The pointed-to block name and bitmap must outlive the next sync.
 */
struct mr_multifd_extent {
    const char *block;           /* name, for messages */
    uint8_t *host;               /* the block's memory (page 0) */
    uint64_t page_size;
    uint64_t num_pages;
    uint64_t pages_offset;       /* absolute file offset of page 0 */
    const uint8_t *bitmap;       /* on-disk (LE-64) file bitmap */
    uint64_t extent;
    uint32_t crc;
};
int mr_multifd_queue_extent(struct mr_multifd *m,
                            const struct mr_multifd_extent *x,
                            struct mr_error *err);

/*
 * Lazy fill (docs/lazy-load.md): pages [first, end) of a block read into
 * `buf` (page-aligned, room for end - first pages; absent pages zero: a
 * short gap between present runs is read with them, then zeroed), each
 * checksum extent in it checked against crc[] (none
 * when crc is NULL; first must then start an extent and end end one or
 * the block), then `done` called on the channel with 0, or the error
 * that left the range unverified (in err; nothing of it may be
 * installed).  done returns 0 or the error that fails the pool (set in
 * err).  The descriptor is the caller's and must live until done ran.
 */
struct mr_multifd_fill {
    const char *block;           /* name, for messages */
    uint8_t *buf;
    uint64_t page_size;
    uint64_t pages_offset;       /* absolute file offset of page 0 */
    const uint8_t *bitmap;       /* on-disk (LE-64) file bitmap */
    const uint32_t *crc;         /* per extent, NULL: no trailer */
    uint64_t nr_extents;
    uint64_t first, end;         /* block page indexes */
    int (*done)(struct mr_multifd_fill *f, int rc, struct mr_error *err);
    void *opaque;
};
int mr_multifd_queue_fill(struct mr_multifd *m, struct mr_multifd_fill *f,
                          struct mr_error *err);

/*
 * Save: compute every extent checksum of every block into `crc[b][e]`
 * (blocks in the order given to mr_multifd_new, format/cksum.h extents),
 * spread over the channels, then sync.  Call when no page I/O is pending
 * and guest memory no longer changes (after the final pass): the result
 * then matches exactly what a loader will read.
 */
int mr_multifd_checksum(struct mr_multifd *m, uint32_t *const *crc,
                        struct mr_error *err);

/* Wait until every channel has finished everything handed to it. */
int mr_multifd_sync(struct mr_multifd *m, struct mr_error *err);

/* Ask the channels to stop as soon as possible (cancel); later calls fail
 * with -ECANCELED unless an earlier error was recorded. */
void mr_multifd_cancel(struct mr_multifd *m);

void mr_multifd_get_stats(struct mr_multifd *m, struct mr_multifd_stats *st);

#endif
