/*
 * Fuzz target: arbitrary bytes as the main socket of a QEMU multifd
 * migration, fed to mapram's socket-to-file transcoder
 * (src/lib/peer/peer_save_stream.c) in pieces whose sizes the input's
 * first byte picks, as recv() may cut them.  The file-side stream goes
 * nowhere; the block layout handed out must fit the mapped-ram rules
 * (1 MiB aligned pages areas after their headers, no overlaps).
 */
#include <stdlib.h>
#include <string.h>

#include "format/stream_defs.h"
#include "fuzz.h"
#include "peer/peer_save_internal.h"

struct feed {
    const uint8_t *p;
    size_t left, piece;
};

static ssize_t feed_read(void *opaque, void *buf, size_t cap)
{
    struct feed *f = opaque;
    size_t n = f->piece < cap ? f->piece : cap;

    if (n > f->left)
        n = f->left;
    memcpy(buf, f->p, n);
    f->p += n;
    f->left -= n;
    return (ssize_t)n;
}

static int feed_reply(void *opaque, const void *buf, size_t len,
                      struct mr_error *err)
{
    (void)opaque, (void)buf, (void)len, (void)err;
    return 0;
}

static int feed_blocks(void *opaque, const struct peer_block *b, size_t n,
                       struct mr_error *err)
{
    uint64_t end = 0;

    (void)opaque, (void)err;
    for (size_t i = 0; i < n; i++) {
        if (b[i].pages_offset % MAPPED_RAM_FILE_OFFSET_ALIGNMENT ||
            b[i].bitmap_offset < end || b[i].pages_offset <= b[i].bitmap_offset)
            abort();
        end = b[i].pages_offset + b[i].used_length;
    }
    return 0;
}

static int feed_sync(void *opaque, struct mr_error *err)
{
    (void)opaque, (void)err;
    return 0;
}

static int feed_zero(void *opaque, size_t block, uint64_t offset,
                     struct mr_error *err)
{
    (void)opaque, (void)block, (void)offset, (void)err;
    return 0;
}

static int discard(void *opaque, const void *buf, size_t len, uint64_t off,
                   struct mr_error *err)
{
    (void)opaque, (void)buf, (void)len, (void)off, (void)err;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct feed f = { data + 1, size ? size - 1 : 0,
                      size ? (size_t)data[0] + 1 : 1 };
    struct peer_stream_ops ops = { feed_read, feed_reply, feed_blocks,
                                   feed_sync, feed_zero, &f };
    struct mr_stream_sink sink = { discard, NULL };
    struct mr_stream_writer w;
    struct mr_error err = MR_ERROR_INIT;
    struct peer_stream_result res;
    struct peer_block *blocks = NULL;
    size_t nblocks = 0;

    if (mr_sw_init(&w, &sink, 4096, &err))
        return 0;
    peer_stream_transcode(&ops, &w, &blocks, &nblocks, &res, &err);
    if (nblocks > PEER_MAX_BLOCKS)
        abort();
    free(blocks);
    mr_sw_destroy(&w);
    return 0;
}
