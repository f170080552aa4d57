/*
 * Multifd over sockets, load side (docs/multifd.md, "Over sockets"): the
 * page sockets are accepted with the main one and read by the receiver's
 * threads straight into guest RAM; the main stream's legacy records are
 * parsed as for a legacy stream, and each MULTIFD_FLUSH is the barrier
 * that completes an epoch before the stream is read further.  A zero
 * entry clears a page only if it arrived earlier in this migration (fresh
 * RAM is zero already), as QEMU does.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migration/load_job.h"
#include "migration/publish.h"
#include "migration/ram_format.h"
#include "multifd/sock_recv.h"
#include "util/bitmap.h"

struct mig_sock_load {
    struct mr_sock_recv *r;
    struct mr_mfd_block *mb;
    struct mr_mfd_blocks blocks;
    unsigned long **received;   /* per block: pages this migration sent */
};

static int prepare(void *opaque, unsigned ch, const struct mr_mfd_packet *p,
                   size_t block, struct iovec *iov, struct mr_error *err)
{
    struct load_job *j = opaque;
    uint8_t *host = j->mig->blocks[block].host;

    (void)ch;
    (void)err;
    for (uint32_t i = 0; i < p->normal_pages; i++)
        iov[i] = (struct iovec){ host + p->offsets[i], MR_MFD_PAGE_SIZE };
    return 0;
}

static int done(void *opaque, unsigned ch, const struct mr_mfd_packet *p,
                size_t block, struct mr_error *err)
{
    struct load_job *j = opaque;
    unsigned long *seen;
    uint8_t *host;

    (void)ch;
    (void)err;
    if (p->normal_pages + p->zero_pages == 0)
        return 0;
    seen = j->sockl->received[block];
    host = j->mig->blocks[block].host;
    for (uint32_t i = 0; i < p->normal_pages; i++)
        mr_bitmap_set_atomic(seen, p->offsets[i] / MR_MFD_PAGE_SIZE);
    for (uint32_t i = p->normal_pages; i < p->normal_pages + p->zero_pages;
         i++) {
        uint64_t page = p->offsets[i] / MR_MFD_PAGE_SIZE;

        if (mr_bitmap_test(seen, page))
            memset(host + p->offsets[i], 0, MR_MFD_PAGE_SIZE);
        else
            mr_bitmap_set_atomic(seen, page);
    }
    return 0;
}

static int sock_state(struct load_job *j)
{
    struct mr_migration *mig = j->mig;
    struct mig_sock_load *sl = calloc(1, sizeof(*sl));

    if (!sl)
        return -ENOMEM;
    j->sockl = sl;
    sl->mb = calloc(mig->nblocks ? mig->nblocks : 1, sizeof(*sl->mb));
    sl->received = calloc(mig->nblocks ? mig->nblocks : 1,
                          sizeof(*sl->received));
    if (!sl->mb || !sl->received)
        return -ENOMEM;
    for (size_t b = 0; b < mig->nblocks; b++) {
        if (mig->blocks[b].page_size != MR_MFD_PAGE_SIZE)
            return -EINVAL;
        sl->mb[b].name = mig->blocks[b].name;
        sl->mb[b].used_length = mig->blocks[b].used_length;
        sl->received[b] = mr_bitmap_new(mig->blocks[b].used_length /
                                        MR_MFD_PAGE_SIZE);
        if (!sl->received[b])
            return -ENOMEM;
    }
    sl->blocks = (struct mr_mfd_blocks){ sl->mb, mig->nblocks };
    return 0;
}

static void abort_receiver(void *opaque)
{
    static const struct mr_error gone = { -ECANCELED, "Migration cancelled" };

    mr_sock_recv_abort(opaque, &gone);
}

/* The load thread, from the transport: every socket of the migration.
 * The transport keeps its own descriptor of the main socket. */
static int sock_accept(void *opaque, int lfd, int *main_fd,
                       struct mr_error *err)
{
    struct load_job *j = opaque;
    struct mr_sock_recv_config cfg = {
        .nchannels = j->ch.nchan,
        .expected_pid = 0,
        .accept_timeout_ms = INT_MAX,
        .sink = { .prepare = prepare, .done = done, .opaque = j },
    };
    int rc = sock_state(j), fd;

    if (rc)
        return mr_error_set(err, rc, "multifd: cannot set up the receive "
                            "side: %s", strerror(-rc));
    if (mr_sock_recv_new(&cfg, &j->sockl->r, err))
        return err->code;
    mr_sock_recv_set_blocks(j->sockl->r, &j->sockl->blocks);
    mig_set_in_abort(j->mig, abort_receiver, j->sockl->r);
    if (load_cancelled(j))
        return mr_error_set(err, -ECANCELED, "Migration cancelled");
    if (mr_sock_recv_accept(j->sockl->r, lfd, &fd, err))
        return err->code;
    *main_fd = dup(fd);
    if (*main_fd < 0)
        return mr_error_set(err, -errno, "dup: %s", strerror(errno));
    return 0;
}

/* MULTIFD_FLUSH: every page of the epoch is in RAM before we read on. */
static int on_flush(struct load_job *j)
{
    struct mr_sock_recv_counters n;

    if (mr_sock_recv_sync(j->sockl->r, &j->c.err))
        return j->c.err.code;
    mr_sock_recv_counters(j->sockl->r, &n);
    j->done_bytes = n.page_bytes;
    load_publish(j);
    return 0;
}

/* The main stream's records are the legacy ones. */
static int sock_begin(struct load_job *j)
{
    return mig_ram_load_legacy.begin(j);
}

static void sock_mem_size(struct load_job *j, uint64_t total)
{
    mig_ram_load_legacy.mem_size(j, total);
}

static int sock_block(struct load_job *j, int b,
                      const struct mr_ram_block_entry *e)
{
    return mig_ram_load_legacy.block(j, b, e);
}

/* No populate-ahead (the legacy format's): the channel threads already
 * fault guest RAM in, in parallel, and one more thread touching it only
 * competes with them (1 GiB over TCP with 4 channels: 1.03-1.14 s with
 * it, 0.81-1.00 s without, docs/performance.md). */
static void sock_blocks_done(struct load_job *j)
{
    (void)j;
}

static int sock_payload(struct load_job *j)
{
    return mig_ram_legacy_records(j, on_flush);
}

/* A receive thread that failed while the parser read the main stream. */
static int sock_fetch_all(struct load_job *j)
{
    return mr_sock_recv_error(j->sockl->r, &j->c.err);
}

static void sock_release(struct load_job *j)
{
    struct mig_sock_load *sl = j->sockl;

    mig_ram_load_legacy.release(j);
    if (!sl)
        return;
    mig_set_in_abort(j->mig, NULL, NULL);
    mr_sock_recv_free(sl->r);
    for (size_t b = 0; sl->received && b < j->mig->nblocks; b++)
        free(sl->received[b]);
    free(sl->received);
    free(sl->mb);
    free(sl);
    j->sockl = NULL;
}

const struct mig_ram_load_ops mig_ram_load_sock = {
    .name = "multifd-socket",
    .wire_mapped = false,
    .nchannels = mig_ram_multifd_channels,
    .accept = sock_accept,
    .begin = sock_begin,
    .mem_size = sock_mem_size,
    .block = sock_block,
    .blocks_done = sock_blocks_done,
    .payload = sock_payload,
    .fetch_all = sock_fetch_all,
    .release = sock_release,
};
