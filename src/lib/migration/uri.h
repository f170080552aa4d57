/*
 * Migration addresses: the `uri` string forms and the QMP `channels` list
 * (docs/qmp.md, "migrate" and "migrate-incoming"), and the transport checks of docs/multifd.md, "When multifd over a file applies"
 *   Pure: nothing here opens a file.
 */
#ifndef MAPRAM_MIGRATION_URI_H
#define MAPRAM_MIGRATION_URI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "mapram/error.h"
#include "migration/params.h"

enum mr_transport {
    MR_TRANSPORT_FILE,
    MR_TRANSPORT_SOCKET, /* tcp:, unix:, vsock:, fd: */
    MR_TRANSPORT_EXEC,
    MR_TRANSPORT_RDMA,
};

#define MR_URI_PATH_MAX 4096
#define MR_URI_HOST_MAX 256

enum mr_socket_kind {
    MR_SOCKET_NONE,  /* not a socket, or a socket form not parsed (fd:) */
    MR_SOCKET_UNIX,  /* path */
    MR_SOCKET_INET,  /* host, port */
};

struct mr_mig_addr {
    enum mr_transport transport;
    char scheme[16];             /* "file", "tcp", ... */
    char path[MR_URI_PATH_MAX];  /* file, and unix socket */
    uint64_t offset;
    enum mr_socket_kind socket;
    char host[MR_URI_HOST_MAX];  /* inet: without IPv6 brackets */
    char port[32];               /* inet: service string, as QMP has it */
};

/* Parse `file:PATH[,offset=SIZE]`, `unix:PATH`, `tcp:HOST:PORT` and
 * recognise the other schemes. */
int mr_uri_parse(const char *uri, struct mr_mig_addr *out,
                 struct mr_error *err);

/* Parse a `channels` list.  `incoming` applies migrate-incoming's
 * one-entry rule. */
int mr_channels_parse(json_t *channels, bool incoming, struct mr_mig_addr *out,
                      struct mr_error *err);

/* migrate / migrate-incoming argument form: exactly one of uri/channels. */
int mr_addr_from_args(json_t *uri, json_t *channels, bool incoming,
                      struct mr_mig_addr *out, struct mr_error *err);

/* The transport checks, in QEMU's order. */
int mr_transport_check(const struct mr_caps *caps, const struct mr_params *p,
                       const struct mr_mig_addr *addr, struct mr_error *err);

#endif
