/*
 * The pieces of `mr_peer_save` (peer_save.c): the main-stream transcoder
 * (peer_save_stream.c), which turns QEMU's socket stream into the
 * mapped-ram stream of a file, and the page writer (peer_save_pages.c),
 * the receiver's sink that puts each page at its mapped-ram offset and
 * computes the checksum trailer.  See docs/peer-save.md.
 */
#ifndef MAPRAM_PEER_SAVE_INTERNAL_H
#define MAPRAM_PEER_SAVE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "format/cksum.h"
#include "format/multifd_wire.h"
#include "format/stream_write.h"
#include "io/sys.h"
#include "mapram/error.h"

#define PEER_PAGE_SIZE          4096u
#define PEER_MAX_BLOCKS         1024
/* Device state, EOF and VMDESCRIPTION after the RAM: kept in memory to
 * find the stream's end (docs/peer-save.md, "The end of the stream"). */
#define PEER_TAIL_MAX_BYTES     (64u << 20)

struct peer_block {
    char name[256];
    uint64_t used_length;
    uint64_t gpa;               /* with x-ignore-shared only */
    uint64_t bitmap_offset;     /* absolute, in the file */
    uint64_t pages_offset;
};

/* What the transcoder needs from around it: bytes in, replies out, the
 * block layout, the barrier and legacy ZERO records. */
struct peer_stream_ops {
    /* Up to cap bytes of the main stream: > 0, 0 at EOF, or -errno. */
    ssize_t (*read)(void *opaque, void *buf, size_t cap);
    /* Bytes on the return path (PONG). */
    int (*reply)(void *opaque, const void *buf, size_t len,
                 struct mr_error *err);
    /* The block list is read and laid out in the file. */
    int (*blocks)(void *opaque, const struct peer_block *b, size_t n,
                  struct mr_error *err);
    /* MULTIFD_FLUSH (or EOS per section): the epoch is complete. */
    int (*sync)(void *opaque, struct mr_error *err);
    /* A ZERO record (legacy zero-page detection). */
    int (*zero)(void *opaque, size_t block, uint64_t offset,
                struct mr_error *err);
    void *opaque;
};

struct peer_stream_result {
    bool return_path;           /* OPEN_RETURN_PATH was in the stream */
    bool per_section;           /* no MULTIFD_FLUSH: EOS is the marker */
    uint64_t main_bytes;        /* read from the main socket */
    uint64_t syncs;
    char machine[256];
};

/*
 * Read the socket stream to its end (its VMDESCRIPTION, or EOF after the
 * EOF record), validating every item, and write the mapped-ram stream
 * through `w` (positioned at the stream offset).  Blocks go to *blocks
 * (caller frees).  Not thread-safe; one call per stream.
 */
int peer_stream_transcode(const struct peer_stream_ops *ops,
                          struct mr_stream_writer *w,
                          struct peer_block **blocks, size_t *nblocks,
                          struct peer_stream_result *res,
                          struct mr_error *err);

/* ---- the page writer ---- */

struct peer_pages;

int peer_pages_new(const struct mr_sys *sys, int fd, int fd_direct,
                   unsigned nchannels, struct peer_pages **out,
                   struct mr_error *err);
/* Take the laid-out blocks (copied). */
int peer_pages_set_blocks(struct peer_pages *pp, const struct peer_block *b,
                          size_t n, struct mr_error *err);
const struct mr_mfd_blocks *peer_pages_mfd_blocks(struct peer_pages *pp);
/* The receiver's sink callbacks (opaque = the peer_pages). */
int peer_pages_prepare(void *opaque, unsigned ch,
                       const struct mr_mfd_packet *p, size_t block,
                       struct iovec *iov, struct mr_error *err);
int peer_pages_done(void *opaque, unsigned ch, const struct mr_mfd_packet *p,
                    size_t block, struct mr_error *err);
/* Wait until the channel's writes are done (the sink's drain). */
int peer_pages_drain(void *opaque, unsigned ch, struct mr_error *err);
int peer_pages_drain_all(struct peer_pages *pp, struct mr_error *err);
int peer_pages_zero(struct peer_pages *pp, size_t block, uint64_t offset,
                    struct mr_error *err);
/* The bitmaps, through the stream writer (so the stream CRC covers them). */
int peer_pages_write_bitmaps(struct peer_pages *pp, struct mr_stream_writer *w,
                             struct mr_error *err);
/* The checksum table of every block from the pages' CRCs. */
int peer_pages_cksum(struct peer_pages *pp, struct mr_cksum *ck,
                     struct mr_error *err);
bool peer_pages_direct(const struct peer_pages *pp);
void peer_pages_free(struct peer_pages *pp);

/* CRC32C of `a` followed by a block of `len` bytes whose own CRC32C
 * (from 0) is `b`: the chaining the extent checksums need. */
uint32_t peer_crc32c_append(uint32_t a, uint32_t b, uint64_t len);

#endif
