/*
 * The sending side of QEMU 10's multifd socket wire (docs/multifd.md,
 * "Feeding a QEMU destination"): N page channels, each connected by the
 * caller's callback and handshaken at once, one send thread per channel,
 * packets of at most 128 pages of one block (normal offsets, then zero
 * offsets; data by iovec from the caller's buffer) dispatched to the first
 * idle channel, and `sync`: a SYNC packet on every channel, waiting until
 * all are written.  Generic: it knows nothing of files or of QMP, so the
 * engine's own socket transport can reuse it.
 */
#ifndef MAPRAM_MULTIFD_SOCK_SEND_H
#define MAPRAM_MULTIFD_SOCK_SEND_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "format/multifd_wire.h"
#include "mapram/error.h"

struct mr_sock_send;

/* Returns a connected stream socket for channel `id`, or -errno with a
 * message (the caller checks the peer here). */
typedef int (*mr_sock_send_connect_fn)(void *opaque, unsigned id,
                                       struct mr_error *err);

/* Counts packets in flight from one caller buffer. */
struct mr_sock_send_ticket {
    unsigned pending;
};

struct mr_sock_send_pkt {
    const char *block;          /* RAM block idstr */
    const uint64_t *offsets;    /* block-relative: normal, then zero */
    uint32_t normal_pages;
    uint32_t zero_pages;        /* normal + zero <= MR_MFD_PACKET_PAGES */
    const struct iovec *iov;    /* the normal pages' data, in offset */
    int iovcnt;                 /* order, normal_pages * 4096 bytes in all;
                                 * at most MR_MFD_PACKET_PAGES entries */
    struct mr_sock_send_ticket *ticket;  /* may be NULL */
};

/* Connect and handshake `n` channels (ids 0..n-1, `uuid` in each), start
 * their threads.  Nothing else is sent. */
int mr_sock_send_open(unsigned n, const uint8_t uuid[MR_MFD_UUID_SIZE],
                      mr_sock_send_connect_fn connect, void *opaque,
                      struct mr_sock_send **out, struct mr_error *err);

/* While waiting for the channels, look at *flag every 100 ms: once it is
 * non-zero, every channel is cut and the waits fail ("interrupted"), so a
 * signal stops a sender even when the peer has stopped reading. */
void mr_sock_send_watch(struct mr_sock_send *s,
                        const volatile sig_atomic_t *flag);

/* Hand one packet to the first idle channel (waits for one).  The data
 * must stay valid until the ticket's count is back to 0. */
int mr_sock_send_packet(struct mr_sock_send *s,
                        const struct mr_sock_send_pkt *p,
                        struct mr_error *err);

/* Wait until every packet counted by `t` was written (or a channel
 * failed: its error). */
int mr_sock_send_wait(struct mr_sock_send *s, struct mr_sock_send_ticket *t,
                      struct mr_error *err);

/* A SYNC on every channel after its current packet; returns once all
 * are written. */
int mr_sock_send_sync(struct mr_sock_send *s, struct mr_error *err);

/* Bytes written on all page channels so far (headers included). */
uint64_t mr_sock_send_bytes(struct mr_sock_send *s);

/* Stop at once: every channel socket is shut down, so the peer sees the
 * channels cut.  Safe from any thread. */
void mr_sock_send_abort(struct mr_sock_send *s);

/* Join the threads and close the sockets (NULL is fine). */
void mr_sock_send_close(struct mr_sock_send *s);

#endif
