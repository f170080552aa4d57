/*
 * The page writer of `mr_peer_save`: the multifd receiver's sink.  Each
 * packet's data is read straight into the channel's aligned buffer at the
 * slot of its page, zero pages between data pages are bridged (zeros
 * written, bit set), and the run goes to the file at pages_offset + offset
 * in one O_DIRECT write (buffered when O_DIRECT is refused), by a pool of
 * writer threads so that several requests are in flight while the
 * channels go on receiving; a channel's writes are all complete before it
 * enters a SYNC barrier (peer_pages_drain).  Bitmap bits
 * and one CRC32C per page are kept in memory; the bitmaps and the extent
 * checksums are computed from them at the end, so a page re-sent in a
 * later epoch simply overwrites its slot, its bit and its CRC.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/mapped_ram.h"
#include "mapram/crc32c.h"
#include "peer/peer_save_internal.h"

#define SLOTS MR_MFD_PACKET_PAGES
#define BUFS_PER_CHANNEL 8      /* packets in flight per channel */
#define WRITERS 8               /* requests in flight in all */

enum slot { SLOT_NONE, SLOT_DATA, SLOT_ZERO };

struct run {
    uint64_t offset;            /* block-relative */
    size_t slot, bytes;
};

/* One packet's buffer and the writes it needs. */
struct job {
    uint8_t *buf;               /* SLOTS pages, 4 KiB aligned */
    unsigned ch;
    struct blk *k;
    size_t nruns;
    struct run runs[SLOTS];
    struct job *next;           /* in the queue or the channel's free list */
};

struct chan_buf {
    struct job jobs[BUFS_PER_CHANNEL];
    struct job *free;
    struct job *cur;            /* between prepare and done */
    unsigned busy;              /* queued or being written */
    bool spread;                /* slot = (offset - lo) / page; else index */
    uint64_t lo;
    uint8_t kind[SLOTS];
};

struct blk {
    struct peer_block b;
    uint64_t pages;
    uint8_t *bitmap;            /* on-disk layout (le64 words) */
    uint32_t *crc;              /* CRC32C of each page, from 0 */
};

struct peer_pages {
    const struct mr_sys *sys;
    int fd, fd_direct;
    int direct;                 /* atomic: still writing with O_DIRECT */
    unsigned nchannels;
    uint32_t zero_crc;
    struct blk *blocks;
    size_t nblocks;
    struct mr_mfd_block *mfd;
    struct mr_mfd_blocks mfd_list;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head, *tail;    /* queued writes */
    bool stop, failed;
    struct mr_error err;        /* first write error */
    pthread_t writer[WRITERS];
    unsigned nwriters;
    struct chan_buf ch[];
};

static void *writer_main(void *opaque);
static int failed_locked(struct peer_pages *pp, struct mr_error *err);

uint32_t peer_crc32c_append(uint32_t a, uint32_t b, uint64_t len)
{
    /* CRC32C is affine: crc(a, X) = crc(a, 0^n) ^ crc(0, X) ^ crc(0, 0^n) */
    return mr_crc32c_zeros(a, len) ^ b ^ mr_crc32c_zeros(0, len);
}

int peer_pages_new(const struct mr_sys *sys, int fd, int fd_direct,
                   unsigned nchannels, struct peer_pages **out,
                   struct mr_error *err)
{
    struct peer_pages *pp = calloc(1, sizeof(*pp) +
                                   nchannels * sizeof(pp->ch[0]));

    if (!pp)
        return mr_error_set(err, -ENOMEM, "out of memory");
    pp->sys = sys;
    pp->fd = fd;
    pp->fd_direct = fd_direct;
    pp->direct = fd_direct >= 0;
    pp->nchannels = nchannels;
    pp->zero_crc = mr_crc32c_zeros(0, PEER_PAGE_SIZE);
    pthread_mutex_init(&pp->lock, NULL);
    pthread_cond_init(&pp->cond, NULL);
    *out = pp;
    for (unsigned i = 0; i < nchannels; i++)
        for (unsigned j = 0; j < BUFS_PER_CHANNEL; j++) {
            struct job *jb = &pp->ch[i].jobs[j];

            if (posix_memalign((void **)&jb->buf, PEER_PAGE_SIZE,
                               SLOTS * PEER_PAGE_SIZE))
                return mr_error_set(err, -ENOMEM, "out of memory for "
                                    "channel buffers");
            jb->ch = i;
            jb->next = pp->ch[i].free;
            pp->ch[i].free = jb;
        }
    for (; pp->nwriters < WRITERS; pp->nwriters++) {
        int rc = pthread_create(&pp->writer[pp->nwriters], NULL, writer_main,
                                pp);

        if (rc)
            return mr_error_set(err, -rc, "cannot start a writer: %s",
                                strerror(rc));
    }
    return 0;
}

int peer_pages_set_blocks(struct peer_pages *pp, const struct peer_block *b,
                          size_t n, struct mr_error *err)
{
    pp->blocks = calloc(n, sizeof(*pp->blocks));
    pp->mfd = calloc(n, sizeof(*pp->mfd));
    if (!pp->blocks || !pp->mfd)
        return mr_error_set(err, -ENOMEM, "out of memory");
    pp->nblocks = n;
    for (size_t i = 0; i < n; i++) {
        struct blk *k = &pp->blocks[i];

        k->b = b[i];
        k->pages = b[i].used_length / PEER_PAGE_SIZE;
        k->bitmap = calloc(1, mr_mapped_ram_bitmap_size(k->pages));
        k->crc = calloc(k->pages, sizeof(uint32_t));
        if (!k->bitmap || !k->crc)
            return mr_error_set(err, -ENOMEM, "out of memory for the page "
                                "bitmap of RAM block %s", k->b.name);
        pp->mfd[i].name = k->b.name;
        pp->mfd[i].used_length = k->b.used_length;
    }
    pp->mfd_list.v = pp->mfd;
    pp->mfd_list.n = n;
    return 0;
}

const struct mr_mfd_blocks *peer_pages_mfd_blocks(struct peer_pages *pp)
{
    return &pp->mfd_list;
}

bool peer_pages_direct(const struct peer_pages *pp)
{
    return __atomic_load_n(&pp->direct, __ATOMIC_RELAXED);
}

static void bit_set(struct blk *k, uint64_t page)
{
    __atomic_fetch_or(&k->bitmap[page / 8], (uint8_t)(1u << (page % 8)),
                      __ATOMIC_RELAXED);
}

static void bit_clear(struct blk *k, uint64_t page)
{
    __atomic_fetch_and(&k->bitmap[page / 8], (uint8_t)~(1u << (page % 8)),
                       __ATOMIC_RELAXED);
}

int peer_pages_prepare(void *opaque, unsigned ch,
                       const struct mr_mfd_packet *p, size_t block,
                       struct iovec *iov, struct mr_error *err)
{
    struct peer_pages *pp = opaque;
    struct chan_buf *c = &pp->ch[ch];
    uint32_t n = p->normal_pages + p->zero_pages;
    uint64_t lo = UINT64_MAX, hi = 0;

    (void)block;
    pthread_mutex_lock(&pp->lock);
    while (!c->free && !pp->failed)
        pthread_cond_wait(&pp->cond, &pp->lock);
    if (failed_locked(pp, err) < 0) {
        pthread_mutex_unlock(&pp->lock);
        return err->code;
    }
    c->cur = c->free;
    c->free = c->cur->next;
    c->cur->nruns = 0;
    pthread_mutex_unlock(&pp->lock);
    for (uint32_t i = 0; i < n; i++) {
        lo = p->offsets[i] < lo ? p->offsets[i] : lo;
        hi = p->offsets[i] > hi ? p->offsets[i] : hi;
    }
    /* All of the packet inside SLOTS pages: data lands at its own slot
     * (a page listed twice in one packet would break this: refused) */
    c->spread = hi - lo < (uint64_t)SLOTS * PEER_PAGE_SIZE;
    c->lo = lo;
    memset(c->kind, SLOT_NONE, sizeof(c->kind));
    for (uint32_t i = 0; i < p->normal_pages; i++) {
        size_t slot = c->spread ? (size_t)((p->offsets[i] - lo) /
                                           PEER_PAGE_SIZE) : i;

        if (c->spread && c->kind[slot] != SLOT_NONE)
            return mr_error_set(err, -EINVAL, "multifd: page 0x%" PRIx64
                                " listed twice in one packet",
                                p->offsets[i]);
        c->kind[slot] = SLOT_DATA;
        iov[i].iov_base = c->cur->buf + slot * PEER_PAGE_SIZE;
        iov[i].iov_len = PEER_PAGE_SIZE;
    }
    return 0;
}

static int write_run(struct peer_pages *pp, struct blk *k, const uint8_t *buf,
                     uint64_t offset, size_t bytes, struct mr_error *err)
{
    off_t at = (off_t)(k->b.pages_offset + offset);
    int rc;

    if (__atomic_load_n(&pp->direct, __ATOMIC_RELAXED)) {
        rc = mr_sys_pwrite_all(pp->sys, pp->fd_direct, buf, bytes, at);
        if (rc != -EINVAL)
            goto out;
        /* O_DIRECT refused after all: buffered from here on */
        __atomic_store_n(&pp->direct, 0, __ATOMIC_RELAXED);
    }
    rc = mr_sys_pwrite_all(pp->sys, pp->fd, buf, bytes, at);
out:
    if (rc < 0)
        return mr_error_set(err, rc, "cannot write pages of RAM block %s at "
                            "file offset 0x%" PRIx64 ": %s", k->b.name,
                            (uint64_t)at, strerror(-rc));
    return 0;
}

static void *writer_main(void *opaque)
{
    struct peer_pages *pp = opaque;

    pthread_mutex_lock(&pp->lock);
    for (;;) {
        struct mr_error e = MR_ERROR_INIT;
        struct job *j;

        while (!pp->stop && !pp->head)
            pthread_cond_wait(&pp->cond, &pp->lock);
        if (!pp->head)
            break;
        j = pp->head;
        pp->head = j->next;
        if (!pp->head)
            pp->tail = NULL;
        pthread_mutex_unlock(&pp->lock);
        for (size_t i = 0; i < j->nruns &&
             !__atomic_load_n(&pp->failed, __ATOMIC_RELAXED); i++)
            if (write_run(pp, j->k, j->buf + j->runs[i].slot * PEER_PAGE_SIZE,
                          j->runs[i].offset, j->runs[i].bytes, &e) < 0)
                break;
        pthread_mutex_lock(&pp->lock);
        if (mr_error_is_set(&e) && !pp->failed) {
            pp->failed = true;
            pp->err = e;
        }
        j->next = pp->ch[j->ch].free;
        pp->ch[j->ch].free = j;
        pp->ch[j->ch].busy--;
        pthread_cond_broadcast(&pp->cond);
    }
    pthread_mutex_unlock(&pp->lock);
    return NULL;
}

/* The first write error, if any (lock held). */
static int failed_locked(struct peer_pages *pp, struct mr_error *err)
{
    return pp->failed ? mr_error_propagate(err, &pp->err) : 0;
}

static void add_run(struct job *j, uint64_t offset, size_t slot, size_t bytes)
{
    j->runs[j->nruns++] = (struct run){ offset, slot, bytes };
}

static int submit(struct peer_pages *pp, struct chan_buf *c, struct blk *k,
                  struct mr_error *err)
{
    struct job *j = c->cur;
    int rc;

    c->cur = NULL;
    pthread_mutex_lock(&pp->lock);
    if (!j->nruns) {
        j->next = c->free;
        c->free = j;
    } else {
        j->k = k;
        j->next = NULL;
        if (pp->tail)
            pp->tail->next = j;
        else
            pp->head = j;
        pp->tail = j;
        c->busy++;
        pthread_cond_broadcast(&pp->cond);
    }
    rc = failed_locked(pp, err);
    pthread_mutex_unlock(&pp->lock);
    return rc;
}

int peer_pages_drain(void *opaque, unsigned ch, struct mr_error *err)
{
    struct peer_pages *pp = opaque;
    int rc;

    pthread_mutex_lock(&pp->lock);
    while (pp->ch[ch].busy && !pp->failed)
        pthread_cond_wait(&pp->cond, &pp->lock);
    rc = failed_locked(pp, err);
    pthread_mutex_unlock(&pp->lock);
    return rc;
}

int peer_pages_drain_all(struct peer_pages *pp, struct mr_error *err)
{
    for (unsigned i = 0; i < pp->nchannels; i++)
        if (peer_pages_drain(pp, i, err) < 0)
            return err->code;
    return 0;
}

/* Spread packet: runs of data slots with zero slots bridged inside. */
static void done_spread(struct peer_pages *pp, struct chan_buf *c,
                        struct blk *k, const struct mr_mfd_packet *p)
{
    uint64_t base = c->lo / PEER_PAGE_SIZE;
    uint8_t *buf = c->cur->buf;

    for (uint32_t i = p->normal_pages; i < p->normal_pages + p->zero_pages; i++)
        c->kind[(p->offsets[i] - c->lo) / PEER_PAGE_SIZE] = SLOT_ZERO;
    for (size_t s = 0; s < SLOTS;) {
        size_t e, last;

        if (c->kind[s] != SLOT_DATA) {
            if (c->kind[s] == SLOT_ZERO)
                bit_clear(k, base + s);
            s++;
            continue;
        }
        /* [s, last] ends with a data slot; only zero/data inside */
        for (e = s, last = s; e < SLOTS && c->kind[e] != SLOT_NONE; e++)
            if (c->kind[e] == SLOT_DATA)
                last = e;
        for (size_t q = s; q <= last; q++) {
            uint8_t *page = buf + q * PEER_PAGE_SIZE;

            if (c->kind[q] == SLOT_ZERO) {
                memset(page, 0, PEER_PAGE_SIZE);
                k->crc[base + q] = pp->zero_crc;
            } else {
                k->crc[base + q] = mr_crc32c(0, page, PEER_PAGE_SIZE);
            }
            bit_set(k, base + q);
        }
        add_run(c->cur, (base + s) * PEER_PAGE_SIZE, s,
                (last - s + 1) * PEER_PAGE_SIZE);
        s = last + 1;
    }
}

/* Scattered packet: data pages in list order, runs where contiguous. */
static void done_list(struct chan_buf *c, struct blk *k,
                      const struct mr_mfd_packet *p)
{
    uint8_t *buf = c->cur->buf;

    for (uint32_t i = 0; i < p->normal_pages;) {
        uint32_t j = i + 1;

        while (j < p->normal_pages &&
               p->offsets[j] == p->offsets[j - 1] + PEER_PAGE_SIZE)
            j++;
        for (uint32_t q = i; q < j; q++) {
            uint64_t page = p->offsets[q] / PEER_PAGE_SIZE;

            k->crc[page] = mr_crc32c(0, buf + q * PEER_PAGE_SIZE,
                                     PEER_PAGE_SIZE);
            bit_set(k, page);
        }
        add_run(c->cur, p->offsets[i], i, (size_t)(j - i) * PEER_PAGE_SIZE);
        i = j;
    }
    for (uint32_t i = p->normal_pages; i < p->normal_pages + p->zero_pages; i++)
        bit_clear(k, p->offsets[i] / PEER_PAGE_SIZE);
}

int peer_pages_done(void *opaque, unsigned ch, const struct mr_mfd_packet *p,
                    size_t block, struct mr_error *err)
{
    struct peer_pages *pp = opaque;
    struct chan_buf *c = &pp->ch[ch];
    struct blk *k = &pp->blocks[block];

    if (!p->normal_pages) {
        for (uint32_t i = 0; i < p->zero_pages; i++)
            bit_clear(k, p->offsets[i] / PEER_PAGE_SIZE);
        return 0;
    }
    if (c->spread)
        done_spread(pp, c, k, p);
    else
        done_list(c, k, p);
    return submit(pp, c, k, err);
}

int peer_pages_zero(struct peer_pages *pp, size_t block, uint64_t offset,
                    struct mr_error *err)
{
    (void)err;
    bit_clear(&pp->blocks[block], offset / PEER_PAGE_SIZE);
    return 0;
}

int peer_pages_write_bitmaps(struct peer_pages *pp, struct mr_stream_writer *w,
                             struct mr_error *err)
{
    for (size_t i = 0; i < pp->nblocks; i++) {
        struct blk *k = &pp->blocks[i];

        if (mr_sw_pwrite(w, k->bitmap, mr_mapped_ram_bitmap_size(k->pages),
                         k->b.bitmap_offset) < 0)
            return mr_error_propagate(err, &w->err);
    }
    return 0;
}

static uint32_t extent_crc(const struct peer_pages *pp, const struct blk *k,
                           uint64_t first, uint64_t end)
{
    uint32_t crc = 0;

    for (uint64_t p = first; p < end;) {
        uint64_t q = p;

        while (q < end && !mr_bitmap_le64_test(k->bitmap, q))
            q++;
        if (q > p)
            crc = mr_crc32c_zeros(crc, (q - p) * PEER_PAGE_SIZE);
        for (p = q; p < end && mr_bitmap_le64_test(k->bitmap, p); p++)
            crc = peer_crc32c_append(crc, k->crc[p], PEER_PAGE_SIZE);
    }
    (void)pp;
    return crc;
}

int peer_pages_cksum(struct peer_pages *pp, struct mr_cksum *ck,
                     struct mr_error *err)
{
    for (size_t i = 0; i < pp->nblocks; i++) {
        struct blk *k = &pp->blocks[i];
        struct mr_cksum_block *cb;
        uint64_t per;

        if (mr_cksum_add_block(ck, k->b.name, PEER_PAGE_SIZE,
                               k->b.used_length, k->b.pages_offset, err) < 0)
            return err->code;
        cb = &ck->blocks[ck->nblocks - 1];
        per = cb->extent_pages;
        for (uint64_t e = 0; e < cb->nr_extents; e++) {
            uint64_t end = (e + 1) * per < k->pages ? (e + 1) * per : k->pages;

            cb->crc[e] = extent_crc(pp, k, e * per, end);
        }
    }
    return 0;
}

void peer_pages_free(struct peer_pages *pp)
{
    if (!pp)
        return;
    pthread_mutex_lock(&pp->lock);
    pp->stop = true;
    pthread_cond_broadcast(&pp->cond);
    pthread_mutex_unlock(&pp->lock);
    for (unsigned i = 0; i < pp->nwriters; i++)
        pthread_join(pp->writer[i], NULL);
    for (unsigned i = 0; i < pp->nchannels; i++)
        for (unsigned j = 0; j < BUFS_PER_CHANNEL; j++)
            free(pp->ch[i].jobs[j].buf);
    pthread_mutex_destroy(&pp->lock);
    pthread_cond_destroy(&pp->cond);
    for (size_t i = 0; i < pp->nblocks; i++) {
        free(pp->blocks[i].bitmap);
        free(pp->blocks[i].crc);
    }
    free(pp->blocks);
    free(pp->mfd);
    free(pp);
}
