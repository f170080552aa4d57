/*
 * What a handler may ask of the request it runs for (mr_qmp_call_*): its
 * table's opaque, the server, descriptors received with the request, the
 * error class, and the connection's negotiation (qmp_capabilities).
 * Helpers at the bottom of the monitor: they call no other file of it.
 */
#include <string.h>

#include "qmp/qmp_internal.h"

void *mr_qmp_call_opaque(struct mr_qmp_call *call)
{
    return call->opaque;
}

struct mr_qmp_server *mr_qmp_call_server(struct mr_qmp_call *call)
{
    return call->srv;
}

int mr_qmp_call_take_fd(struct mr_qmp_call *call)
{
    struct mr_qmp_conn *conn = call->conn;
    int fd;

    if (!conn || conn->nr_fdq == 0)
        return -1;
    fd = conn->fdq[0];
    memmove(conn->fdq, conn->fdq + 1, (conn->nr_fdq - 1) * sizeof(int));
    conn->nr_fdq--;
    return fd;
}

void mr_qmp_call_set_error_class(struct mr_qmp_call *call, const char *cls)
{
    call->error_class = cls;
}

bool mr_qmp_call_negotiated(struct mr_qmp_call *call)
{
    return call->conn && call->conn->negotiated;
}

void mr_qmp_call_negotiate(struct mr_qmp_call *call, bool oob)
{
    if (!call->conn)
        return;
    call->conn->oob = oob;
    /* Events go to negotiated connections; emitters read this locked. */
    pthread_mutex_lock(&call->srv->lock);
    call->conn->negotiated = true;
    pthread_mutex_unlock(&call->srv->lock);
}
