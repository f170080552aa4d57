/*
 * Multifd over sockets, save side (docs/multifd.md, "Over sockets"): the
 * main stream carries the legacy RAM records without pages, and every
 * page travels on the page sockets in packets of up to 128 pages of one
 * block, straight from guest RAM (no copy), zero pages as offsets only.
 * Each pass ends with a sync: a SYNC on every channel, then MULTIFD_FLUSH
 * on the main stream (per-round mode, the one mapram-vm's machine uses).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/stream_defs.h"
#include "migration/publish.h"
#include "migration/ram_format.h"
#include "migration/save_job.h"
#include "multifd/sock_send.h"
#include "multifd/zero.h"

/* The packet being filled: pages of one block, normal then zero. */
struct mig_sock_save {
    struct mr_sock_send *s;
    size_t block;
    uint32_t normal, zero;
    uint64_t normal_off[MR_MFD_PACKET_PAGES];
    uint64_t zero_off[MR_MFD_PACKET_PAGES];
    struct iovec iov[MR_MFD_PACKET_PAGES];
};

static int sock_alloc(struct save_job *j)
{
    for (size_t b = 0; b < j->mig->nblocks; b++)
        if (save_blk(j, b)->page_size != MR_MFD_PAGE_SIZE)
            return mr_error_set(&j->err, -EINVAL, "multifd over a socket "
                                "needs 4 KiB pages; block %s has %llu",
                                save_blk(j, b)->name, (unsigned long long)
                                save_blk(j, b)->page_size);
    j->sock = calloc(1, sizeof(*j->sock));
    return j->sock ? 0 : mr_error_set(&j->err, -ENOMEM, "out of memory");
}

/* The transport connected the page sockets; the sender takes them over. */
static int lend_fd(void *opaque, unsigned id, struct mr_error *err)
{
    struct save_job *j = opaque;
    int fd = j->ch.fds[id];

    (void)err;
    j->ch.fds[id] = -1;
    return fd;
}

static void abort_sender(void *opaque)
{
    mr_sock_send_abort(opaque);
}

static int sync_all(struct save_job *j)
{
    if (mr_sock_send_sync(j->sock->s, &j->err))
        return j->err.code;
    mr_sw_put_be64(&j->w, RAM_SAVE_FLAG_MULTIFD_FLUSH);
    return 0;
}

/* After the block list: handshakes, then the first SYNC on every channel
 * before any page, and its MULTIFD_FLUSH. */
static int sock_start(struct save_job *j)
{
    static const uint8_t no_uuid[MR_MFD_UUID_SIZE];

    if (mr_sock_send_open(j->ch.nchan, no_uuid, lend_fd, j, &j->sock->s,
                          &j->err))
        return j->err.code;
    mig_set_out_abort(j->mig, abort_sender, j->sock->s);
    return sync_all(j);
}

static int flush_packet(struct save_job *j)
{
    struct mig_sock_save *ss = j->sock;
    uint64_t off[MR_MFD_PACKET_PAGES];
    struct mr_sock_send_pkt p = {
        .block = save_blk(j, ss->block)->name,
        .offsets = off,
        .normal_pages = ss->normal,
        .zero_pages = ss->zero,
        .iov = ss->iov,
        .iovcnt = (int)ss->normal,
    };

    if (ss->normal + ss->zero == 0)
        return 0;
    memcpy(off, ss->normal_off, ss->normal * sizeof(off[0]));
    memcpy(off + ss->normal, ss->zero_off, ss->zero * sizeof(off[0]));
    ss->normal = ss->zero = 0;
    if (mr_sock_send_packet(ss->s, &p, &j->err))
        return j->err.code;
    return 0;
}

/* Pages [first, first + n) of block b into packets; zero pages are found
 * here with zero-page-detection multifd or legacy (the destination needs
 * no record of which), all are data with none. */
static int sock_send(struct save_job *j, size_t b, uint64_t first,
                     uint64_t n)
{
    struct mig_sock_save *ss = j->sock;
    struct mr_ram_block *rb = save_blk(j, b);
    bool test = j->params.zero_page_detection != MR_ZPD_NONE;
    int rc;

    if (ss->block != b && (rc = flush_packet(j)))
        return rc;
    ss->block = b;
    for (uint64_t page = first; page < first + n; page++) {
        uint8_t *p = rb->host + page * MR_MFD_PAGE_SIZE;

        if (ss->normal + ss->zero == MR_MFD_PACKET_PAGES &&
            (rc = flush_packet(j)))
            return rc;
        if (test && mr_page_is_zero(p, MR_MFD_PAGE_SIZE)) {
            ss->zero_off[ss->zero++] = page * MR_MFD_PAGE_SIZE;
            j->thread_zero++;
            continue;
        }
        ss->iov[ss->normal] = (struct iovec){ p, MR_MFD_PAGE_SIZE };
        ss->normal_off[ss->normal++] = page * MR_MFD_PAGE_SIZE;
        j->legacy_normal++;
    }
    return 0;
}

/* Every pass wraps the scan: the partial packet, then a sync. */
static int sock_pass_done(struct save_job *j)
{
    int rc = flush_packet(j);

    return rc ? rc : sync_all(j);
}

static int sock_nothing(struct save_job *j)
{
    (void)j;
    return 0;
}

static int sock_no_crc(struct save_job *j, uint64_t end)
{
    (void)j;
    (void)end;
    return 0;
}

static void sock_release(struct save_job *j)
{
    if (!j->sock || !j->sock->s)
        return;
    mig_set_out_abort(j->mig, NULL, NULL);
    if (j->err.code)
        mr_sock_send_abort(j->sock->s);
    mr_sock_send_close(j->sock->s);
    j->sock->s = NULL;
}

static void sock_free(struct save_job *j)
{
    free(j->sock);
    j->sock = NULL;
}

const struct mig_ram_save_ops mig_ram_save_sock = {
    .name = "multifd-socket",
    .wire_mapped = false,
    .nchannels = mig_ram_multifd_channels,
    .alloc = sock_alloc,
    .sink = mig_ram_plain_sink,
    .start = sock_start,
    .send = sock_send,
    .pass_done = sock_pass_done,
    .finish = sock_nothing,
    .stream_crc = sock_no_crc,
    .release = sock_release,
    .free = sock_free,
};
