/*
 * Service: the transports by kind, and an unopened connection (see
 * transport.h).  A new transport is one more file and one row here.
 */
#include <string.h>

#include "migration/transport.h"

const struct mig_transport_ops *mig_transport_for(const struct mr_mig_addr *a)
{
    static const struct mig_transport_ops *const by_kind[] = {
        [MR_TRANSPORT_FILE] = &mig_transport_file,
        [MR_TRANSPORT_SOCKET] = &mig_transport_socket,
    };

    if ((size_t)a->transport >= sizeof(by_kind) / sizeof(by_kind[0]))
        return NULL;
    /* unix: and tcp:; not vsock: or fd: */
    if (a->transport == MR_TRANSPORT_SOCKET && a->socket == MR_SOCKET_NONE)
        return NULL;
    return by_kind[a->transport];
}

void mig_chan_init(struct mig_chan *c, const struct mig_transport_ops *ops,
                   struct mr_fdset_registry *fdsets,
                   const struct mr_mig_addr *a, unsigned nchan, bool dio,
                   bool loading)
{
    memset(c, 0, sizeof(*c));
    c->ops = ops;
    c->fdsets = fdsets;
    c->addr = *a;
    c->nchan = nchan < MIG_MAX_CHANNELS ? nchan : MIG_MAX_CHANNELS;
    c->dio = dio;
    c->loading = loading;
    c->main_fd = -1;
    c->listen_fd = -1;
    for (size_t i = 0; i < MIG_MAX_CHANNELS; i++)
        c->fds[i] = -1;
}
