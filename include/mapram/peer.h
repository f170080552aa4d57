/*
 * The tool as QEMU's peer on the multifd socket wire: a QEMU 10 saves
 * over multifd sockets to mapram, which writes the file itself
 * (mr_peer_save_*), or mapram reads a file and feeds a QEMU 10 that
 * waits with -incoming defer (mr_peer_restore_*).  docs/peer-save.md,
 * docs/peer-restore.md; the wire: docs/multifd.md, "Over sockets".
 */
#ifndef MAPRAM_PEER_H
#define MAPRAM_PEER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mapram/error.h"
#include "mapram/image.h"

/* ---- restore: a file sent to a QEMU destination ---- */

struct mr_peer_restore;

struct mr_peer_restore_info {
    enum mr_container kind;     /* mapram's own, bare QEMU, libvirt */
    bool checksums;             /* a CRC32C trailer: every extent verified
                                 * before its pages are sent */
    bool per_section;           /* the machine type syncs per section
                                 * (8.0 and older), else per round */
    bool was_running_known;     /* libvirt's header says */
    bool was_running;
    uint64_t ram_size;          /* sum of the blocks' used lengths */
    uint64_t data_bytes;        /* present page bytes to send */
    uint32_t blocks;
    char machine[256];          /* the machine type of the stream */
};

/*
 * Walk and check the file open on `fd` before anything is sent: stream
 * complete, mapped-ram, layout, the stream CRC when sealed, a trailer
 * announced by mapram's VMDESCRIPTION present.  `fd_direct` (-1: none) is
 * the same file opened with O_DIRECT for the page reads; a descriptor that
 * refuses O_DIRECT falls back to `fd`.  offset < 0 finds the stream.
 */
int mr_peer_restore_open(int fd, int fd_direct, int64_t offset,
                         struct mr_peer_restore **out, struct mr_error *err);
const struct mr_peer_restore_info *
mr_peer_restore_info(const struct mr_peer_restore *r);

struct mr_peer_restore_link {
    const char *path;           /* the UNIX socket the destination listens on */
    int peer_pid;               /* SO_PEERCRED must show it (> 0) */
    unsigned channels;          /* the destination's multifd-channels */
    uint8_t uuid[16];           /* the destination's VM UUID */
    const volatile sig_atomic_t *cancel;  /* non-zero: stop (may be NULL) */
    /* Page bytes handed to the channels / to send, bytes written on all
     * sockets. */
    void (*progress)(void *opaque, uint64_t done, uint64_t total,
                     uint64_t wire_bytes);
    void *opaque;
};

/*
 * Connect the main and N page sockets and send the file as a multifd
 * socket stream: block list, setup sync, every present page in packets
 * after its extent's checksum matched, the final sync, then devices, EOF
 * and VMDESCRIPTION.  Any failure cuts every socket before a device
 * section was sent, so the destination's load fails and its guest never
 * runs.  The destination's own completion is the caller's to watch.
 */
int mr_peer_restore_send(struct mr_peer_restore *r,
                         const struct mr_peer_restore_link *l,
                         struct mr_error *err);

/* Bytes written on the main socket by the last send. */
uint64_t mr_peer_restore_sent(const struct mr_peer_restore *r);

void mr_peer_restore_free(struct mr_peer_restore *r);

/* A fresh 0700 directory for the rendezvous socket (under
 * $XDG_RUNTIME_DIR, else /tmp); removed with its sockets by
 * mr_peer_restore_dir_remove. */
int mr_peer_restore_dir(char *out, size_t cap, struct mr_error *err);
void mr_peer_restore_dir_remove(const char *dir);

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
