/*
 * The tool as QEMU's peer on the multifd socket wire: a QEMU 10 saves
 * over multifd sockets to mapram, which writes the file itself
 * (mr_peer_save_*), or mapram reads a file and feeds a QEMU 10 that
 * waits with -incoming defer (mr_peer_restore_*).  docs/peer-save.md,
 * docs/peer-restore.md; the wire: docs/multifd.md, "Over sockets".
 */
#ifndef MAPRAM_PEER_H
#define MAPRAM_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include "mapram/error.h"

/* ---- save: QEMU sends, mapram writes the file ---- */

struct mr_peer_save;

struct mr_peer_save_config {
    int listen_fd;              /* listening UNIX/TCP socket (caller's), or
                                   -1: a UNIX socket in a new private (0700)
                                   directory, see mr_peer_save_uri */
    int expected_pid;           /* accept only this peer (SO_PEERCRED); <= 0: any */
    unsigned channels;          /* the VM's multifd-channels */
    uint8_t uuid[16];           /* the VM's UUID (query-uuid), in handshakes */
    int accept_timeout_ms;      /* for all channels to connect */
    int fd;                     /* the file, writable: stream, bitmaps, trailer */
    int fd_direct;              /* the same file with O_DIRECT for pages, or -1 */
    int fd_read;                /* the same file readable, for the final check; or -1 */
    uint64_t stream_offset;     /* where the QEVM stream starts (header before) */
    uint64_t max_ram_bytes;     /* the block list may add up to this (0: any) */
};

struct mr_peer_save_progress {
    uint64_t ram_total;         /* bytes of RAM blocks (0 until the block list) */
    uint64_t page_bytes;        /* page data received */
    uint64_t zero_pages;
    uint64_t main_bytes;        /* (at the end) main stream bytes */
    uint64_t stream_size;       /* (at the end) bytes from stream_offset to the footer's end */
    bool return_path;
    bool direct_io;             /* pages went out with O_DIRECT */
    bool finished;              /* mr_peer_save_run has returned */
};

int mr_peer_save_new(const struct mr_peer_save_config *cfg,
                     struct mr_peer_save **out, struct mr_error *err);

/* With listen_fd -1: "unix:PATH" for the VM's `migrate`; else NULL.  The
 * directory goes away once all channels are in, or with the object. */
const char *mr_peer_save_uri(const struct mr_peer_save *ps);

/*
 * Accept the VM's main and page sockets, receive and write the file's
 * stream at stream_offset (mapped-ram layout, every page at its offset),
 * the bitmaps, the checksum trailer and footer, each step made durable
 * with fdatasync.  0 when the file is complete and durable (the caller's
 * header still says PART).  The main socket stays open for
 * mr_peer_save_finish.
 */
int mr_peer_save_run(struct mr_peer_save *ps, struct mr_error *err);

/* Thread-safe snapshot for a progress display. */
void mr_peer_save_progress(struct mr_peer_save *ps,
                           struct mr_peer_save_progress *out);

/* From any thread: make a running mr_peer_save_run fail with `why`. */
void mr_peer_save_abort(struct mr_peer_save *ps, const char *why);

/*
 * End the exchange: with a return path, SHUT(0) if `ok` (the VM then
 * reports completed) or SHUT(1) (the VM fails its migration); then every
 * socket is closed.
 */
int mr_peer_save_finish(struct mr_peer_save *ps, bool ok, struct mr_error *err);

void mr_peer_save_free(struct mr_peer_save *ps);

#endif
