/*
 * The receiving end of QEMU 10's multifd socket wire (docs/multifd.md,
 * "Over sockets"), generic over where pages go: accept and sort the main
 * socket and the N page sockets, one receive thread per page socket that
 * reads packet headers and puts the page data straight into memory the
 * sink names (guest RAM for an engine, an aligned O_DIRECT buffer for a
 * file writer), and the SYNC barrier the main-stream parser calls at each
 * MULTIFD_FLUSH (or each EOS in per-section mode).
 *
 * The page sockets are read all the time, whatever the main-stream parser
 * is doing: a source may be blocked on a full page socket before it can
 * send that socket's SYNC (docs/multifd.md, "Synchronisation").
 */
#ifndef MAPRAM_MULTIFD_SOCK_RECV_H
#define MAPRAM_MULTIFD_SOCK_RECV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "format/multifd_wire.h"
#include "mapram/error.h"

/*
 * Where pages go.  Called from the channel threads (`ch` is the channel
 * id); calls for one channel are serial, calls for different channels run
 * in parallel.  Within one sync epoch the source sends a page at most once,
 * and no page of the next epoch is delivered before every channel has
 * returned from its last `done` (and `drain`) of this one.
 */
struct mr_sock_recv_sink {
    /* A packet with normal pages: fill iov[0 .. p->normal_pages) with
     * where the data of each page (offset list order) is to be read. */
    int (*prepare)(void *opaque, unsigned ch, const struct mr_mfd_packet *p,
                   size_t block, struct iovec *iov, struct mr_error *err);
    /* The packet's data has arrived (or it had none: zero pages only). */
    int (*done)(void *opaque, unsigned ch, const struct mr_mfd_packet *p,
                size_t block, struct mr_error *err);
    /* Optional: at a SYNC, before the channel waits at the barrier,
     * finish whatever `done` left in flight (a sink that writes
     * asynchronously must have its epoch complete here). */
    int (*drain)(void *opaque, unsigned ch, struct mr_error *err);
    void *opaque;
};

struct mr_sock_recv_config {
    unsigned nchannels;                 /* 1 .. 255 */
    uint8_t uuid[MR_MFD_UUID_SIZE];     /* the source VM's, in handshakes */
    int expected_pid;                   /* SO_PEERCRED must match; <= 0: any */
    int accept_timeout_ms;              /* for all N + 1 connections */
    struct mr_sock_recv_sink sink;
};

struct mr_sock_recv;

struct mr_sock_recv_counters {
    uint64_t packets, pages, zero_pages, page_bytes, syncs;
};

int mr_sock_recv_new(const struct mr_sock_recv_config *cfg,
                     struct mr_sock_recv **out, struct mr_error *err);

/*
 * Accept on `lfd` until the main socket and every page socket are there.
 * Each accepted socket's peer pid is checked first; then 4 bytes are
 * peeked: "QEVM" is the main socket, anything else must be a 64-byte
 * handshake, which is checked (magic, version, uuid, id below N, id not
 * seen).  A page socket's thread starts as soon as it is filed.  Any
 * refused connection fails the whole receive.  *main_fd is the main
 * socket (owned by the receiver: closed by mr_sock_recv_free).
 */
int mr_sock_recv_accept(struct mr_sock_recv *r, int lfd, int *main_fd,
                        struct mr_error *err);

/* The RAM blocks packets are checked against; must be set before the
 * first barrier is released (page packets only follow that first SYNC). */
void mr_sock_recv_set_blocks(struct mr_sock_recv *r,
                             const struct mr_mfd_blocks *blocks);

/* The barrier: wait until every channel sits at a SYNC, then release
 * them all.  Fails if any channel failed or ended first. */
int mr_sock_recv_sync(struct mr_sock_recv *r, struct mr_error *err);

/* Stop everything from any thread (shuts the sockets down); waits that
 * are in progress return with `why` as the error. */
void mr_sock_recv_abort(struct mr_sock_recv *r, const struct mr_error *why);

/* The first error of any channel, if there is one (0 otherwise). */
int mr_sock_recv_error(struct mr_sock_recv *r, struct mr_error *err);

void mr_sock_recv_counters(struct mr_sock_recv *r,
                           struct mr_sock_recv_counters *out);

/* Abort if needed, join the threads, close every socket. */
void mr_sock_recv_free(struct mr_sock_recv *r);

#endif
