/*
 * `mapram restore --transport socket`: the tool reads the file and sends
 * it to a QEMU 10 destination over multifd UNIX sockets through
 * libmapram's peer layer (docs/peer-restore.md).
 */
#ifndef MAPRAM_CLI_RESTORE_SOCKET_H
#define MAPRAM_CLI_RESTORE_SOCKET_H

#include <stdbool.h>
#include <stdint.h>

#include "mapram/error.h"
#include "mapram/peer.h"
#include "mapram/qmp_client.h"

struct restore_socket {
    int fd, fd_direct;
    struct mr_peer_restore *peer;
};

struct restore_socket_opts {
    const char *path;
    unsigned channels;          /* 0: as recorded, else the default */
    bool paused, running;       /* --paused / --running */
    bool json;
};

/* Open and check the file (nothing is sent).  0 when it can go over
 * sockets; else an error saying why. */
int restore_socket_prepare(struct restore_socket *s, const char *path,
                           int64_t offset, struct mr_error *err);

/* Is the monitor's VM a QEMU (not mapram-vm)? */
bool restore_socket_is_qemu(struct mr_qmp_client *qmp);

/* Send the prepared file to the VM waiting with -incoming defer behind
 * `qmp`; *running says whether the guest runs afterwards. */
int restore_socket_run(struct restore_socket *s, struct mr_qmp_client *qmp,
                       const struct restore_socket_opts *o, bool *running,
                       struct mr_error *err);

void restore_socket_done(struct restore_socket *s);

#endif
