/*
 * The restore peer's page path: a block's bitmap, then chunks of whole
 * checksum extents read with one large (O_DIRECT where allowed) request
 * each, every extent's CRC32C compared with the trailer, and only then
 * the chunk's present pages handed to the channels in packets of at most
 * 128 consecutive pages (zero pages listed after the data pages, without
 * data).  Two chunk buffers: one is read and verified while the channels
 * send the other.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "format/cksum.h"
#include "format/mapped_ram.h"
#include "image/verify.h"
#include "io/sys.h"
#include "mapram/crc32c.h"
#include "multifd/zero.h"
#include "peer/peer_restore_internal.h"

#define CHUNK_EXTENTS 16        /* 16 MiB reads with 1 MiB extents */
#define READ_PIECES 4           /* concurrent requests per read */
#define ULL(x) ((unsigned long long)(x))

struct block_send {
    struct mr_peer_restore *r;
    const struct mr_walk_block *b;
    const struct mr_cksum_block *cb;    /* NULL: no trailer */
    uint8_t *bm;
    uint64_t per;               /* pages per extent */
    uint64_t chunk_pages;
    bool have_zero_crc;
    uint32_t zero_crc;          /* of a whole extent of zeros */
    uint8_t *buf[2];
    struct mr_sock_send_ticket ticket[2];
};

/* One piece of a span, read on its own thread. */
struct piece {
    int fd;
    uint8_t *buf;
    size_t len;
    uint64_t off;
    ssize_t got;
    pthread_t t;
};

static void *read_piece(void *arg)
{
    struct piece *p = arg;

    p->got = mr_sys_pread_all(mr_sys_default(), p->fd, p->buf, p->len,
                              (off_t)p->off);
    return NULL;
}

/* [off, off + len) in up to READ_PIECES concurrent reads of at least
 * 1 MiB (a virtual disk reads a 16 MiB span about twice as fast with four
 * requests in flight as with one); 0, the first error, or short. */
static ssize_t read_pieces(int fd, uint8_t *buf, size_t len, uint64_t off)
{
    struct piece p[READ_PIECES];
    size_t n = len >> 20, each;
    ssize_t total = 0;

    n = n < 1 ? 1 : n > READ_PIECES ? READ_PIECES : n;
    each = (len / n + 4095) & ~(size_t)4095;
    for (size_t i = 0; i < n; i++) {
        size_t at = i * each;

        p[i] = (struct piece){ fd, buf + at, at < len ? (len - at < each ?
                               len - at : each) : 0, off + at, 0, 0 };
        if (i == 0 || pthread_create(&p[i].t, NULL, read_piece, &p[i]))
            p[i].t = 0;     /* the first piece, or no thread: read here */
    }
    for (size_t i = 0; i < n; i++) {
        if (!p[i].t)
            read_piece(&p[i]);
        else
            pthread_join(p[i].t, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i].got < 0)
            return p[i].got;
        if ((size_t)p[i].got < p[i].len)
            return total + p[i].got;
        total += p[i].got;
    }
    return total;
}

/* One span [off, off + len) into buf; O_DIRECT first, buffered when the
 * descriptor refuses it. */
static int read_span(struct mr_peer_restore *r, void *buf, size_t len,
                     uint64_t off, struct mr_error *err)
{
    ssize_t n = -EINVAL;

    if (r->fd_direct >= 0) {
        n = read_pieces(r->fd_direct, buf, len, off);
        if (n == -EINVAL)
            r->fd_direct = -1;  /* the caller still owns and closes it */
    }
    if (r->fd_direct < 0)
        n = read_pieces(r->fd, buf, len, off);
    if (n < 0)
        return mr_error_set(err, (int)n, "Unable to read from file: %s",
                            strerror((int)-n));
    if ((size_t)n < len)
        return mr_error_set(err, -EIO, "truncated: needed %zu bytes at "
                            "offset 0x%" PRIx64 ", read %zd", len, off, n);
    return 0;
}

static void zero_absent(struct block_send *bs, uint8_t *buf, uint64_t first,
                        uint64_t end)
{
    uint64_t ps = bs->b->entry.page_size;

    for (uint64_t p = first; p < end; p++)
        if (!mr_bitmap_le64_test(bs->bm, p))
            memset(buf + (p - first) * ps, 0, (size_t)ps);
}

/* Pages [first, end) of the block into buf; false when none is present. */
static int read_chunk(struct block_send *bs, uint8_t *buf, uint64_t first,
                      uint64_t end, bool *any, struct mr_error *err)
{
    const struct mr_walk_block *b = bs->b;
    uint64_t ps = b->entry.page_size, lo, hi, a, z;

    *any = false;
    lo = end;
    hi = first;
    for (uint64_t from = first;
         mr_bitmap_le64_next_run(bs->bm, end, from, &a, &z); from = z) {
        if (a < lo)
            lo = a;
        hi = z;
    }
    if (lo >= hi)
        return 0;
    *any = true;
    if (read_span(bs->r, buf + (lo - first) * ps, (size_t)((hi - lo) * ps),
                  b->entry.pages_offset + lo * ps, err) < 0)
        return mr_error_prefix(err, "RAM block %s: ", b->entry.idstr);
    if (bs->cb)
        zero_absent(bs, buf, first, end);
    return 0;
}

static uint32_t extent_crc(struct block_send *bs, const uint8_t *buf,
                           uint64_t pages, bool any)
{
    size_t len = (size_t)(pages * bs->b->entry.page_size);

    if (any || pages != bs->per)
        return mr_crc32c(0, buf, len);
    if (!bs->have_zero_crc) {
        uint8_t *z = calloc(1, len);

        bs->zero_crc = z ? mr_crc32c(0, z, len) : 0;
        bs->have_zero_crc = z != NULL;
        free(z);
        if (!z)
            return mr_crc32c(0, buf, len);
    }
    return bs->zero_crc;
}

static int verify_chunk(struct block_send *bs, uint8_t *buf, uint64_t first,
                        uint64_t end, bool any, struct mr_error *err)
{
    uint64_t ps = bs->b->entry.page_size;

    for (uint64_t p = first; p < end; p += bs->per) {
        uint64_t e = p / bs->per, n = end - p < bs->per ? end - p : bs->per;
        uint32_t got;

        if (!any && n != bs->per)   /* a short last extent of zeros */
            memset(buf + (p - first) * ps, 0, (size_t)(n * ps));
        got = extent_crc(bs, buf + (p - first) * ps, n, any);

        if (got != bs->cb->crc[e])
            return mr_error_set(err, -EBADMSG, "checksum mismatch in RAM "
                                "block %s extent %llu (file offset 0x%llx): "
                                "expected 0x%08x, computed 0x%08x",
                                bs->cb->name, ULL(e),
                                ULL(bs->cb->pages_offset + p * ps),
                                bs->cb->crc[e], got);
    }
    return 0;
}

/* Pages [a, a + n) (n <= 128, all present) as one packet. */
static int send_packet(struct block_send *bs, uint8_t *buf, uint64_t first,
                       uint64_t a, uint32_t n,
                       struct mr_sock_send_ticket *t, struct mr_error *err)
{
    uint64_t ps = bs->b->entry.page_size, zeros[MR_MFD_PACKET_PAGES];
    uint64_t offs[MR_MFD_PACKET_PAGES];
    struct iovec iov[MR_MFD_PACKET_PAGES];
    struct mr_sock_send_pkt pkt = { .block = bs->b->entry.idstr,
                                    .offsets = offs, .iov = iov,
                                    .ticket = t };

    for (uint32_t i = 0; i < n; i++) {
        uint8_t *page = buf + (a + i - first) * ps;

        if (mr_page_is_zero(page, (size_t)ps)) {
            zeros[pkt.zero_pages++] = (a + i) * ps;
            continue;
        }
        offs[pkt.normal_pages++] = (a + i) * ps;
        if (pkt.iovcnt && (uint8_t *)iov[pkt.iovcnt - 1].iov_base +
                          iov[pkt.iovcnt - 1].iov_len == page)
            iov[pkt.iovcnt - 1].iov_len += ps;
        else
            iov[pkt.iovcnt++] = (struct iovec){ page, (size_t)ps };
    }
    memcpy(offs + pkt.normal_pages, zeros, pkt.zero_pages * sizeof(*zeros));
    bs->r->data_done += n * ps;
    return mr_sock_send_packet(bs->r->chans, &pkt, err);
}

static int send_chunk(struct block_send *bs, uint8_t *buf, uint64_t first,
                      uint64_t end, struct mr_sock_send_ticket *t,
                      struct mr_error *err)
{
    uint64_t a, z;

    for (uint64_t from = first;
         mr_bitmap_le64_next_run(bs->bm, end, from, &a, &z); from = z) {
        for (uint64_t p = a; p < z; p += MR_MFD_PACKET_PAGES) {
            uint64_t n = z - p < MR_MFD_PACKET_PAGES ? z - p
                                                     : MR_MFD_PACKET_PAGES;

            if (send_packet(bs, buf, first, p, (uint32_t)n, t, err) < 0)
                return err->code;
        }
    }
    return 0;
}

static int one_chunk(struct block_send *bs, unsigned slot, uint64_t first,
                     struct mr_error *err)
{
    struct mr_peer_restore *r = bs->r;
    uint64_t end = first + bs->chunk_pages;
    bool any;

    if (end > bs->b->num_pages)
        end = bs->b->num_pages;
    if (mr_peer_cancelled(r, err) < 0 ||
        mr_sock_send_wait(r->chans, &bs->ticket[slot], err) < 0 ||
        read_chunk(bs, bs->buf[slot], first, end, &any, err) < 0 ||
        (bs->cb && verify_chunk(bs, bs->buf[slot], first, end, any, err) < 0))
        return err->code;
    if (any && send_chunk(bs, bs->buf[slot], first, end, &bs->ticket[slot],
                          err) < 0)
        return err->code;
    mr_peer_progress(r);
    return 0;
}

static int check_block(struct block_send *bs, struct mr_error *err)
{
    const struct mr_walk_block *b = bs->b;
    const struct mr_cksum_block *cb = bs->cb;

    if (b->entry.page_size != MR_MFD_PAGE_SIZE)
        return mr_error_set(err, -ENOTSUP, "RAM block %s: page size %" PRIu64
                            " (multifd sockets carry 4 KiB pages)",
                            b->entry.idstr, b->entry.page_size);
    if (cb && (cb->page_size != b->entry.page_size ||
               cb->pages_offset != b->entry.pages_offset ||
               cb->used_length != b->entry.used_length))
        return mr_error_set(err, -EINVAL, "checksum trailer: RAM block %s "
                            "layout differs from the stream's", cb->name);
    return 0;
}

static int send_block(struct block_send *bs, struct mr_error *err)
{
    struct mr_peer_restore *r = bs->r;
    unsigned k = 0;
    int rc = 0;

    if (r->w.have_cksum) {
        bs->cb = mr_cksum_find(&r->w.cksum, bs->b->entry.idstr);
        if (!bs->cb)
            return mr_error_set(err, -EINVAL, "checksum trailer has no "
                                "entry for RAM block %s", bs->b->entry.idstr);
    }
    if (check_block(bs, err) < 0)
        return err->code;
    bs->per = mr_cksum_extent_pages(bs->b->entry.page_size);
    bs->chunk_pages = bs->per * CHUNK_EXTENTS;
    bs->bm = mr_verify_read_bitmap(&r->src, bs->b, err);
    if (!bs->bm)
        return err->code;
    for (uint64_t p = 0; !rc && p < bs->b->num_pages; p += bs->chunk_pages)
        rc = one_chunk(bs, k++ % 2, p, err);
    for (unsigned i = 0; !rc && i < 2; i++)
        rc = mr_sock_send_wait(r->chans, &bs->ticket[i], err);
    free(bs->bm);
    bs->bm = NULL;
    return rc;
}

int mr_peer_send_pages(struct mr_peer_restore *r, struct mr_error *err)
{
    struct block_send bs = { .r = r };
    size_t cap = (size_t)CHUNK_EXTENTS * (1u << 20);
    int rc = 0;

    for (int i = 0; i < 2; i++)
        if (posix_memalign((void **)&bs.buf[i], 4096, cap))
            bs.buf[i] = NULL;
    if (!bs.buf[0] || !bs.buf[1])
        rc = mr_error_set(err, -ENOMEM, "out of memory for read buffers");
    for (size_t i = 0; !rc && i < r->w.nr_blocks; i++) {
        bs.b = &r->w.blocks[i];
        bs.cb = NULL;
        if (mr_cksum_extent_pages(bs.b->entry.page_size) * CHUNK_EXTENTS *
            bs.b->entry.page_size > cap)
            rc = mr_error_set(err, -ENOTSUP, "RAM block %s: extents too "
                              "large", bs.b->entry.idstr);
        else
            rc = send_block(&bs, err);
    }
    /* a failed send may leave packets in flight from these buffers: the
     * channels must be stopped before they are freed */
    if (rc)
        mr_sock_send_abort(r->chans);
    else
        rc = mr_sock_send_sync(r->chans, err);
    if (rc)
        mr_sock_send_close(r->chans), r->chans = NULL;
    free(bs.buf[0]);
    free(bs.buf[1]);
    return rc;
}
