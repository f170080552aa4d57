/*
 * Forward-only sources (source.h, mr_source_init_stream): a socket read
 * into a sliding window, so that readers may step back a little (a
 * cursor refilling from its position, a page straddling a buffer) but
 * never ask a sender to send a byte twice.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/source.h"

#define STREAM_WINDOW_MIN (4u << 20)

/* Make room for more bytes: drop the older half of a full window. */
static void stream_slide(struct mr_stream_in *in)
{
    size_t keep = in->cap / 2, drop;

    if (in->len < in->cap)
        return;
    drop = in->len - keep;
    memmove(in->buf, in->buf + drop, keep);
    in->base += drop;
    in->len = keep;
}

/* Read once from the sender into the window: bytes, 0 at the end. */
static int64_t stream_more(struct mr_stream_in *in)
{
    int64_t n;

    stream_slide(in);
    n = in->read(in->opaque, in->buf + in->len, in->cap - in->len);
    if (n > 0)
        in->len += (size_t)n;
    return n;
}

static int64_t stream_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
    struct mr_stream_in *in = opaque;
    size_t at, n;

    if (off < in->base)
        return -ESPIPE;  /* behind the window: a reader's bug */
    while (off >= in->base + in->len) {
        int64_t r = stream_more(in);

        if (r <= 0)
            return r;
        if (off < in->base)
            return -ESPIPE;
    }
    at = (size_t)(off - in->base);
    n = in->len - at < len ? in->len - at : len;
    memcpy(buf, in->buf + at, n);
    return (int64_t)n;
}

int mr_source_init_stream(struct mr_source *src, struct mr_stream_in *in,
                          int64_t (*read)(void *opaque, void *buf, size_t len),
                          void *opaque, size_t window, struct mr_error *err)
{
    memset(in, 0, sizeof(*in));
    in->read = read;
    in->opaque = opaque;
    in->cap = window < STREAM_WINDOW_MIN ? STREAM_WINDOW_MIN : window;
    in->buf = malloc(in->cap);
    if (!in->buf)
        return mr_error_set(err, -ENOMEM, "out of memory");
    src->pread = stream_pread;
    src->opaque = in;
    src->size = UINT64_MAX;
    src->stream = true;
    return 0;
}

void mr_stream_in_free(struct mr_stream_in *in)
{
    free(in->buf);
    in->buf = NULL;
    in->len = in->cap = 0;
}
