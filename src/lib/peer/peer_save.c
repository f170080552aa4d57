/*
 * mr_peer_save (mapram/peer.h): a QEMU 10 source migrates over multifd
 * sockets and this writes the file.  The receiver core (multifd/sock_recv)
 * runs the page channels into the page writer (peer_save_pages.c) while
 * this thread transcodes the main stream (peer_save_stream.c); then the
 * bitmaps, fdatasync, the checksum trailer, fdatasync, the footer,
 * fdatasync - and only after that may the caller mark its header DONE and
 * answer SHUT(0).  docs/peer-save.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "format/cksum.h"
#include "mapram/image.h"
#include "mapram/peer.h"
#include "multifd/sock_recv.h"
#include "peer/peer_save_internal.h"
#include "util/sock.h"

struct mr_peer_save {
    struct mr_peer_save_config cfg;
    const struct mr_sys *sys;
    struct mr_sock_recv *recv;
    struct peer_pages *pages;
    struct mr_cksum_log log;
    struct peer_stream_result res;
    int main_fd;
    uint64_t ram_total;         /* atomic */
    uint64_t stream_size;
    bool finished;              /* atomic */
    bool durable;
    bool shut_sent;
    int own_lfd;                /* our listener in a private directory */
    char dir[256];
    char uri[300];
};

/* ---- the stream writer's sink: buffered writes, logged for the CRC ---- */

static int sink_pwrite(void *opaque, const void *buf, size_t len, uint64_t off,
                       struct mr_error *err)
{
    struct mr_peer_save *ps = opaque;
    int rc = mr_sys_pwrite_all(ps->sys, ps->cfg.fd, buf, len, (off_t)off);

    if (rc < 0)
        return mr_error_set(err, rc, "cannot write the stream at file "
                            "offset 0x%" PRIx64 ": %s", off, strerror(-rc));
    rc = mr_cksum_log_add(&ps->log, buf, len, off);
    if (rc < 0)
        return mr_error_set(err, rc, "stream checksum: %s", strerror(-rc));
    return 0;
}

/* ---- the transcoder's surroundings ---- */

static ssize_t op_read(void *opaque, void *buf, size_t cap)
{
    struct mr_peer_save *ps = opaque;
    ssize_t n;

    do {
        n = recv(ps->main_fd, buf, cap, 0);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static int op_reply(void *opaque, const void *buf, size_t len,
                    struct mr_error *err)
{
    struct mr_peer_save *ps = opaque;

    return mr_sock_write_full(ps->main_fd, buf, len, err);
}

/*
 * The file's size is set past the last pages area at once (a hole): page
 * writes then land inside the file, and O_DIRECT writes that extend a file
 * are serialised by ext4 (each waits for every write in flight).
 */
static int extend_file(struct mr_peer_save *ps, const struct peer_block *b,
                       size_t n, struct mr_error *err)
{
    uint64_t end = 0;
    struct stat st;

    for (size_t i = 0; i < n; i++)
        if (b[i].pages_offset + b[i].used_length > end)
            end = b[i].pages_offset + b[i].used_length;
    if (fstat(ps->cfg.fd, &st) == 0 && (uint64_t)st.st_size >= end)
        return 0;
    if (ps->sys->ftruncate(ps->cfg.fd, (off_t)end) < 0)
        return mr_error_set(err, -errno, "cannot size the file to 0x%" PRIx64
                            " bytes: %s", end, strerror(errno));
    return 0;
}

static int op_blocks(void *opaque, const struct peer_block *b, size_t n,
                     struct mr_error *err)
{
    struct mr_peer_save *ps = opaque;
    uint64_t total = 0;

    for (size_t i = 0; i < n; i++)
        total += b[i].used_length;
    if (ps->cfg.max_ram_bytes && total > ps->cfg.max_ram_bytes)
        return mr_error_set(err, -EFBIG, "the VM's RAM blocks add up to "
                            "0x%" PRIx64 " bytes, more than its RAM size "
                            "allows (0x%" PRIx64 ")", total,
                            ps->cfg.max_ram_bytes);
    if (peer_pages_set_blocks(ps->pages, b, n, err) < 0 ||
        extend_file(ps, b, n, err) < 0)
        return err->code;
    mr_sock_recv_set_blocks(ps->recv, peer_pages_mfd_blocks(ps->pages));
    __atomic_store_n(&ps->ram_total, total, __ATOMIC_RELAXED);
    return 0;
}

static int op_sync(void *opaque, struct mr_error *err)
{
    struct mr_peer_save *ps = opaque;

    return mr_sock_recv_sync(ps->recv, err);
}

static int op_zero(void *opaque, size_t block, uint64_t offset,
                   struct mr_error *err)
{
    struct mr_peer_save *ps = opaque;

    return peer_pages_zero(ps->pages, block, offset, err);
}

/* ---- public ---- */

/* A UNIX listener in a new 0700 directory of ours (docs/peer-save.md). */
static int listen_private(struct mr_peer_save *ps, struct mr_error *err)
{
    char path[sizeof(ps->dir) + 16];

    if (mr_sock_private_dir(NULL, ps->dir, sizeof(ps->dir), err) < 0)
        return err->code;
    snprintf(path, sizeof(path), "%s/mig.sock", ps->dir);
    ps->own_lfd = mr_sock_listen_unix(path, (int)ps->cfg.channels + 1, err);
    if (ps->own_lfd < 0)
        return err->code;
    ps->cfg.listen_fd = ps->own_lfd;
    snprintf(ps->uri, sizeof(ps->uri), "unix:%s", path);
    return 0;
}

const char *mr_peer_save_uri(const struct mr_peer_save *ps)
{
    return ps->uri[0] ? ps->uri : NULL;
}

/* Once every channel is there nobody else may connect. */
static void close_listener(struct mr_peer_save *ps)
{
    if (ps->own_lfd < 0)
        return;
    close(ps->own_lfd);
    ps->own_lfd = -1;
    mr_sock_private_dir_remove(ps->dir);
    ps->dir[0] = '\0';
}

int mr_peer_save_new(const struct mr_peer_save_config *cfg,
                     struct mr_peer_save **out, struct mr_error *err)
{
    struct mr_peer_save *ps = calloc(1, sizeof(*ps));
    struct mr_sock_recv_config rc = { 0 };

    if (!ps)
        return mr_error_set(err, -ENOMEM, "out of memory");
    ps->cfg = *cfg;
    ps->sys = mr_sys_default();
    ps->main_fd = -1;
    ps->own_lfd = -1;
    *out = ps;
    if (cfg->listen_fd < 0 && listen_private(ps, err) < 0)
        return err->code;
    if (peer_pages_new(ps->sys, cfg->fd, cfg->fd_direct, cfg->channels,
                       &ps->pages, err) < 0)
        return err->code;
    rc.nchannels = cfg->channels;
    memcpy(rc.uuid, cfg->uuid, sizeof(rc.uuid));
    rc.expected_pid = cfg->expected_pid;
    rc.accept_timeout_ms = cfg->accept_timeout_ms > 0 ?
                           cfg->accept_timeout_ms : 30000;
    rc.sink.prepare = peer_pages_prepare;
    rc.sink.done = peer_pages_done;
    rc.sink.drain = peer_pages_drain;
    rc.sink.opaque = ps->pages;
    return mr_sock_recv_new(&rc, &ps->recv, err);
}

static int sync_file(struct mr_peer_save *ps, struct mr_error *err)
{
    if (ps->sys->fdatasync(ps->cfg.fd) < 0)
        return mr_error_set(err, -errno, "cannot sync the file: %s",
                            strerror(errno));
    return 0;
}

/* Trailer after the stream, sync, footer after the trailer, sync. */
static int write_trailer(struct mr_peer_save *ps, uint64_t end,
                         struct mr_error *err)
{
    struct mr_cksum ck = { 0 };
    uint8_t footer[MR_CKSUM_FOOTER_BYTES];
    uint8_t *trailer = NULL;
    size_t len = 0;
    int rc;

    ck.flags = MR_CKSUM_F_STREAM_CRC;
    ck.stream_offset = ps->cfg.stream_offset;
    if (peer_pages_cksum(ps->pages, &ck, err) < 0 ||
        mr_cksum_log_crc(&ps->log, &ck, end, &ck.stream_crc, err) < 0)
        goto out;
    trailer = mr_cksum_encode(&ck, &len);
    if (!trailer) {
        mr_error_set(err, -ENOMEM, "out of memory for the checksum trailer");
        goto out;
    }
    rc = mr_sys_pwrite_all(ps->sys, ps->cfg.fd, trailer, len, (off_t)end);
    if (rc < 0) {
        mr_error_set(err, rc, "cannot write the checksum trailer: %s",
                     strerror(-rc));
        goto out;
    }
    if (sync_file(ps, err) < 0)
        goto out;
    mr_cksum_footer_encode(footer, end, len);
    rc = mr_sys_pwrite_all(ps->sys, ps->cfg.fd, footer, sizeof(footer),
                           (off_t)(end + len));
    if (rc < 0) {
        mr_error_set(err, rc, "cannot write the checksum footer: %s",
                     strerror(-rc));
        goto out;
    }
    if (sync_file(ps, err) < 0)
        goto out;
    ps->stream_size = end + len + sizeof(footer) - ps->cfg.stream_offset;
out:
    free(trailer);
    mr_cksum_free(&ck);
    return mr_error_is_set(err) ? err->code : 0;
}

/* Read the finished file back the way inspect and verify do. */
static int check_file(struct mr_peer_save *ps, struct mr_error *err)
{
    struct mr_walk w;
    int rc;

    if (ps->cfg.fd_read < 0)
        return 0;
    rc = mr_image_walk(ps->cfg.fd_read, (int64_t)ps->cfg.stream_offset, &w,
                       err);
    if (rc == 0 && !w.have_cksum)
        rc = mr_error_set(err, -EIO, "the file has no checksum trailer");
    mr_walk_free(&w);
    return rc < 0 ? mr_error_prefix(err, "the file written does not read "
                                    "back: ") : 0;
}

static int receive(struct mr_peer_save *ps, struct mr_error *err)
{
    struct mr_stream_sink sink = { sink_pwrite, ps };
    struct peer_stream_ops ops = { op_read, op_reply, op_blocks, op_sync,
                                   op_zero, ps };
    struct mr_stream_writer w;
    struct peer_block *blocks = NULL;
    size_t nblocks = 0;
    int rc;

    if (mr_sw_init(&w, &sink, ps->cfg.stream_offset, err) < 0)
        return err->code;
    rc = peer_stream_transcode(&ops, &w, &blocks, &nblocks, &ps->res, err);
    free(blocks);
    if (rc == 0 && (mr_sock_recv_error(ps->recv, err) < 0 ||
                    peer_pages_drain_all(ps->pages, err) < 0))
        rc = err->code;
    if (rc == 0 && (peer_pages_write_bitmaps(ps->pages, &w, err) < 0 ||
                    mr_sw_flush(&w) < 0))
        rc = mr_error_propagate(err, &w.err);
    if (rc == 0 && sync_file(ps, err) == 0)
        rc = write_trailer(ps, mr_sw_pos(&w), err);
    else if (rc == 0)
        rc = err->code;
    mr_sw_destroy(&w);
    return rc;
}

/* SHUT(v) on the return path, once (a source waiting for it takes a
 * closed socket for success: the answer must come first). */
static int send_shut(struct mr_peer_save *ps, uint8_t v, struct mr_error *err)
{
    uint8_t shut[8] = { 0, 1, 0, 4, 0, 0, 0, v };
    struct mr_error ignore = MR_ERROR_INIT;

    if (ps->shut_sent || ps->main_fd < 0 || !ps->res.return_path)
        return 0;
    ps->shut_sent = true;
    return mr_sock_write_full(ps->main_fd, shut, sizeof(shut),
                              err ? err : &ignore);
}

/* The main stream ended early: a source that lost a page channel closes
 * the main socket too, and its end may be seen first.  Give the channel
 * threads a moment to report what happened to them (the cause), before
 * the early end stands as the error. */
#define PEER_CAUSE_WAIT_MS 500

static void wait_for_cause(struct mr_peer_save *ps, const struct mr_error *e)
{
    struct timespec ts = { 0, 10 * 1000000L };
    struct mr_error probe = MR_ERROR_INIT;

    if (e->code != -EPIPE)
        return;
    for (int i = 0; i < PEER_CAUSE_WAIT_MS / 10; i++) {
        if (mr_sock_recv_error(ps->recv, &probe) < 0)
            return;
        nanosleep(&ts, NULL);
    }
}

int mr_peer_save_run(struct mr_peer_save *ps, struct mr_error *err)
{
    struct mr_error local = MR_ERROR_INIT;
    int rc = mr_sock_recv_accept(ps->recv, ps->cfg.listen_fd, &ps->main_fd,
                                 &local);

    close_listener(ps);
    if (rc == 0)
        rc = receive(ps, &local);
    if (rc < 0) {
        /* the first error anywhere is the cause: a channel's ENOSPC
         * shows as an early end of the main stream too */
        wait_for_cause(ps, &local);
        mr_sock_recv_abort(ps->recv, &local);
        send_shut(ps, 1, NULL);
        mr_sock_recv_error(ps->recv, err);
    } else if ((rc = check_file(ps, err)) == 0) {
        ps->durable = true;
    }
    __atomic_store_n(&ps->finished, true, __ATOMIC_RELEASE);
    return rc < 0 ? err->code : 0;
}

void mr_peer_save_progress(struct mr_peer_save *ps,
                           struct mr_peer_save_progress *out)
{
    struct mr_sock_recv_counters c;

    memset(out, 0, sizeof(*out));
    mr_sock_recv_counters(ps->recv, &c);
    out->ram_total = __atomic_load_n(&ps->ram_total, __ATOMIC_RELAXED);
    out->page_bytes = c.page_bytes;
    out->zero_pages = c.zero_pages;
    out->finished = __atomic_load_n(&ps->finished, __ATOMIC_ACQUIRE);
    out->direct_io = peer_pages_direct(ps->pages);
    if (out->finished) {
        out->main_bytes = ps->res.main_bytes;
        out->stream_size = ps->stream_size;
        out->return_path = ps->res.return_path;
    }
}

void mr_peer_save_abort(struct mr_peer_save *ps, const char *why)
{
    struct mr_error e = MR_ERROR_INIT;

    mr_error_set(&e, -ECANCELED, "%s", why);
    mr_sock_recv_abort(ps->recv, &e);
}

int mr_peer_save_finish(struct mr_peer_save *ps, bool ok, struct mr_error *err)
{
    int rc = send_shut(ps, ok && ps->durable ? 0 : 1, err);

    if (ps->main_fd >= 0)
        shutdown(ps->main_fd, SHUT_WR);
    return rc;
}

void mr_peer_save_free(struct mr_peer_save *ps)
{
    if (!ps)
        return;
    close_listener(ps);
    if (ps->dir[0])
        mr_sock_private_dir_remove(ps->dir);
    mr_sock_recv_free(ps->recv);
    peer_pages_free(ps->pages);
    mr_cksum_log_free(&ps->log);
    free(ps);
}
