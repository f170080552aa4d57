/*
 * The tool as QEMU's peer on the multifd socket wire: `mapram save`
 * receiving what a QEMU 10 source sends and writing mapram's file, and
 * `mapram restore` reading a file and sending it to a QEMU 10 destination
 * (docs/multifd.md "Over sockets", docs/peer-restore.md).  QMP stays with
 * the caller: these functions only read files and talk on sockets.
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

#endif
