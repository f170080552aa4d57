/*
 * What the two halves of the restore peer share (peer_restore.c: checks
 * and the main socket; peer_restore_pages.c: read, verify, send pages).
 */
#ifndef MAPRAM_PEER_RESTORE_INTERNAL_H
#define MAPRAM_PEER_RESTORE_INTERNAL_H

#include "format/source.h"
#include "image/stream_walk.h"
#include "mapram/peer.h"
#include "multifd/sock_send.h"

struct mr_peer_restore {
    int fd;
    int fd_direct;              /* -1 once O_DIRECT was refused */
    struct mr_source src;
    struct mr_walk w;
    struct mr_peer_restore_info info;
    uint64_t config_end;        /* first item after the configuration */
    /* during a send */
    const struct mr_peer_restore_link *link;
    struct mr_sock_send *chans;
    int main_fd;
    uint64_t main_bytes;
    uint64_t data_done;         /* page bytes handed to the channels */
};

/* Every present page of every block, verified extent by extent when the
 * file has a trailer, in packets on r->chans. */
int mr_peer_send_pages(struct mr_peer_restore *r, struct mr_error *err);

/* Report progress to the caller's callback. */
void mr_peer_progress(struct mr_peer_restore *r);

/* Has the caller asked to stop?  Then an error saying so. */
int mr_peer_cancelled(const struct mr_peer_restore *r, struct mr_error *err);

#endif
