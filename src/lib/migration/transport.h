/*
 * Service: the transport seam.  A job's main stream and page channels are
 * opened, written, read and closed through one ops table, chosen once from
 * the parsed address (mig_transport_for): the file transport
 * (transport_file.c) and the socket transport (transport_socket.c).
 */
#ifndef MAPRAM_MIGRATION_TRANSPORT_H
#define MAPRAM_MIGRATION_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/source.h"
#include "mapram/error.h"
#include "migration/uri.h"

#define MIG_MAX_CHANNELS 256

struct mr_fdset_registry;
struct mr_source;
struct mig_transport_ops;

/* Asked by a thread that waits: true once the job is cancelled. */
typedef bool (*mig_cancelled_fn)(void *opaque);

/* One job's connection: what the threads and the multifd channels use. */
struct mig_chan {
    const struct mig_transport_ops *ops;
    struct mr_fdset_registry *fdsets;
    struct mr_mig_addr addr;
    bool dio;                    /* the page channels are O_DIRECT */
    bool loading;
    bool main_pending;           /* save: main stream still to be opened */
    unsigned nchan;              /* page channels (0: none) */
    int main_fd;
    int listen_fd;               /* load over a socket: until accepted */
    uint64_t stream_pos;         /* save over a socket: bytes written */
    struct mr_stream_in in;      /* load over a socket: the read window */
    mig_cancelled_fn cancelled;  /* the waiting thread's, once it runs */
    void *cancel_opaque;
    /* Load over a socket with page channels: the RAM format accepts them
     * all (ram_format.h, `accept`); NULL: the main socket alone. */
    int (*accept)(void *opaque, int lfd, int *main_fd, struct mr_error *err);
    void *accept_opaque;
    int fds[MIG_MAX_CHANNELS];
};

struct mig_transport_ops {
    const char *name;
    /* Positional (a file: trailers, bitmaps written in place) or a
     * forward-only stream (a socket). */
    bool seekable;
    /* Up-front checks of migrate / migrate-incoming (fdset rules). */
    int (*check)(struct mr_fdset_registry *fdsets, const struct mr_mig_addr *a,
                 bool source, bool multifd, bool dio, struct mr_error *err);
    /* Save, monitor thread: open the main stream unless that would block
     * (then main_pending is set and open_save_finish completes it). */
    int (*open_save)(struct mig_chan *c, struct mr_error *err);
    /* Save, migration thread: the main stream if pending (waiting, until
     * `cancelled`), then the page channels. */
    int (*open_save_finish)(struct mig_chan *c, mig_cancelled_fn cancelled,
                            void *opaque, struct mr_error *err);
    /* Load, monitor thread: the main stream and the page channels, or (a
     * socket) only what lets the peer connect. */
    int (*open_load)(struct mig_chan *c, struct mr_error *err);
    /* Load, load thread: wait for what open_load did not open, until
     * `cancelled` (NULL: nothing to wait for). */
    int (*open_load_finish)(struct mig_chan *c, mig_cancelled_fn cancelled,
                            void *opaque, struct mr_error *err);
    /* The main stream: positional writes (save), a source (load), and
     * making what was written durable. */
    int (*write_main)(struct mig_chan *c, const void *buf, size_t len,
                      uint64_t off, struct mr_error *err);
    int (*source)(struct mig_chan *c, struct mr_source *src,
                  struct mr_error *err);
    int (*sync_main)(struct mig_chan *c, struct mr_error *err);
    /* Close everything opened; safe to call twice. */
    void (*close)(struct mig_chan *c);
};

/* The implementations. */
extern const struct mig_transport_ops mig_transport_file;
extern const struct mig_transport_ops mig_transport_socket;

/* The transport of a parsed address (NULL: not implemented). */
const struct mig_transport_ops *mig_transport_for(const struct mr_mig_addr *a);

/* An unopened connection over `a`, with `nchan` page channels. */
void mig_chan_init(struct mig_chan *c, const struct mig_transport_ops *ops,
                   struct mr_fdset_registry *fdsets,
                   const struct mr_mig_addr *a, unsigned nchan, bool dio,
                   bool loading);

#endif
