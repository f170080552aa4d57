/*
 * Migration addresses (docs/qmp.md, "migrate"): `file:PATH[,offset=SIZE]`, the
 * `channels` list, and the transport compatibility checks of
 * docs/multifd.md, "When multifd over a file applies", with QEMU's messages.
 * `unix:` and `tcp:` addresses are parsed into path / host and port; the
 * other schemes are recognised so that their errors are the right ones.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "migration/uri.h"

static const struct {
    const char *prefix;
    enum mr_transport transport;
} schemes[] = {
    { "tcp:", MR_TRANSPORT_SOCKET }, { "unix:", MR_TRANSPORT_SOCKET },
    { "vsock:", MR_TRANSPORT_SOCKET }, { "fd:", MR_TRANSPORT_SOCKET },
    { "exec:", MR_TRANSPORT_EXEC }, { "rdma:", MR_TRANSPORT_RDMA },
};

static int parse_file(const char *spec, struct mr_mig_addr *out,
                      struct mr_error *err)
{
    const char *opt = strstr(spec, ",offset=");
    size_t len = opt ? (size_t)(opt - spec) : strlen(spec);
    int rc;

    if (len >= sizeof(out->path))
        return mr_error_set(err, -ENAMETOOLONG, "file URI path is too long");
    memcpy(out->path, spec, len);
    out->path[len] = '\0';
    out->offset = 0;
    if (opt) {
        opt += strlen(",offset=");
        rc = mr_parse_size(opt, 1, &out->offset);
        if (rc)
            return mr_error_set(err, rc, "file URI has bad offset %s: %s",
                                opt, strerror(-rc));
    }
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *src, size_t len,
                    const char *what, struct mr_error *err)
{
    if (len >= cap)
        return mr_error_set(err, -ENAMETOOLONG, "%s is too long", what);
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

static int parse_unix(const char *spec, struct mr_mig_addr *out,
                      struct mr_error *err)
{
    if (!*spec)
        return mr_error_set(err, -EINVAL, "unix socket path is empty");
    out->socket = MR_SOCKET_UNIX;
    return copy_str(out->path, sizeof(out->path), spec, strlen(spec),
                    "unix socket path", err);
}

/* HOST:PORT, HOST possibly a bracketed IPv6 address; QEMU's options after
 * a comma are not supported. */
static int parse_inet(const char *spec, struct mr_mig_addr *out,
                      struct mr_error *err)
{
    const char *host = spec, *colon, *end;
    size_t hlen;
    int rc;

    if (*spec == '[') {
        end = strchr(spec, ']');
        if (!end || end[1] != ':')
            return mr_error_set(err, -EINVAL, "error parsing IPv6 address "
                                "'%s'", spec);
        host = spec + 1;
        hlen = (size_t)(end - host);
        colon = end + 1;
    } else {
        colon = strrchr(spec, ':');
        if (!colon)
            return mr_error_set(err, -EINVAL, "error parsing address '%s'",
                                spec);
        hlen = (size_t)(colon - spec);
    }
    if (!colon[1] || strchr(colon + 1, ','))
        return mr_error_set(err, -EINVAL, "error parsing address '%s'", spec);
    out->socket = MR_SOCKET_INET;
    rc = copy_str(out->host, sizeof(out->host), host, hlen, "host name", err);
    if (rc)
        return rc;
    return copy_str(out->port, sizeof(out->port), colon + 1,
                    strlen(colon + 1), "port", err);
}

int mr_uri_parse(const char *uri, struct mr_mig_addr *out,
                 struct mr_error *err)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(uri, "file:", 5) == 0) {
        out->transport = MR_TRANSPORT_FILE;
        snprintf(out->scheme, sizeof(out->scheme), "file");
        return parse_file(uri + 5, out, err);
    }
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i].prefix);
        if (strncmp(uri, schemes[i].prefix, n) == 0) {
            out->transport = schemes[i].transport;
            snprintf(out->scheme, sizeof(out->scheme), "%.*s", (int)n - 1,
                     uri);
            if (strcmp(out->scheme, "unix") == 0)
                return parse_unix(uri + n, out, err);
            if (strcmp(out->scheme, "tcp") == 0)
                return parse_inet(uri + n, out, err);
            return 0;
        }
    }
    return mr_error_set(err, -EINVAL, "unknown migration protocol: %s", uri);
}

static int parse_file_addr(json_t *addr, int idx, struct mr_mig_addr *out,
                           struct mr_error *err)
{
    json_t *fn = json_object_get(addr, "filename");
    json_t *off = json_object_get(addr, "offset");

    if (!fn)
        return mr_error_set(err, -EINVAL, "Parameter 'channels[%d].addr."
                            "filename' is missing", idx);
    if (!json_is_string(fn))
        return mr_error_set(err, -EINVAL, "Invalid parameter type for "
                            "'channels[%d].addr.filename', expected: string",
                            idx);
    if (!off)
        return mr_error_set(err, -EINVAL, "Parameter 'channels[%d].addr."
                            "offset' is missing", idx);
    if (!json_is_integer(off) || json_integer_value(off) < 0)
        return mr_error_set(err, -EINVAL, "Invalid parameter type for "
                            "'channels[%d].addr.offset', expected: integer",
                            idx);
    if (strlen(json_string_value(fn)) >= sizeof(out->path))
        return mr_error_set(err, -ENAMETOOLONG, "file path is too long");
    out->transport = MR_TRANSPORT_FILE;
    snprintf(out->scheme, sizeof(out->scheme), "file");
    snprintf(out->path, sizeof(out->path), "%s", json_string_value(fn));
    out->offset = (uint64_t)json_integer_value(off);
    return 0;
}

static const char *json_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* `{"transport":"socket","type":"inet"|"unix",...}`; the other socket
 * types stay recognised only. */
static int parse_socket_addr(json_t *addr, int idx, struct mr_mig_addr *out,
                             struct mr_error *err)
{
    const char *type = json_str(addr, "type"), *a, *b;
    int rc;

    memset(out, 0, sizeof(*out));
    out->transport = MR_TRANSPORT_SOCKET;
    snprintf(out->scheme, sizeof(out->scheme), "socket");
    if (!type)
        return mr_error_set(err, -EINVAL, "Parameter 'channels[%d].addr."
                            "type' is missing", idx);
    if (strcmp(type, "unix") == 0) {
        a = json_str(addr, "path");
        if (!a)
            return mr_error_set(err, -EINVAL, "Parameter 'channels[%d].addr."
                                "path' is missing", idx);
        snprintf(out->scheme, sizeof(out->scheme), "unix");
        return parse_unix(a, out, err);
    }
    if (strcmp(type, "inet") != 0)
        return 0;
    a = json_str(addr, "host");
    b = json_str(addr, "port");
    if (!a || !b)
        return mr_error_set(err, -EINVAL, "Parameter 'channels[%d].addr.%s' "
                            "is missing", idx, a ? "port" : "host");
    snprintf(out->scheme, sizeof(out->scheme), "tcp");
    out->socket = MR_SOCKET_INET;
    rc = copy_str(out->host, sizeof(out->host), a, strlen(a), "host name",
                  err);
    if (rc)
        return rc;
    return copy_str(out->port, sizeof(out->port), b, strlen(b), "port", err);
}

static int parse_addr(json_t *addr, int idx, struct mr_mig_addr *out,
                      struct mr_error *err)
{
    static const char *const names[] = { "socket", "exec", "rdma", "file" };
    static const enum mr_transport kinds[] = {
        MR_TRANSPORT_SOCKET, MR_TRANSPORT_EXEC, MR_TRANSPORT_RDMA,
        MR_TRANSPORT_FILE };
    json_t *t = json_object_get(addr, "transport");

    if (!json_is_object(addr))
        return mr_error_set(err, -EINVAL, "Parameter 'channels[%d].addr' is "
                            "missing", idx);
    if (!json_is_string(t))
        return mr_error_set(err, -EINVAL, "Parameter 'channels[%d].addr."
                            "transport' is missing", idx);
    for (int i = 0; i < 4; i++) {
        if (strcmp(json_string_value(t), names[i]) != 0)
            continue;
        if (kinds[i] == MR_TRANSPORT_FILE)
            return parse_file_addr(addr, idx, out, err);
        if (kinds[i] == MR_TRANSPORT_SOCKET)
            return parse_socket_addr(addr, idx, out, err);
        memset(out, 0, sizeof(*out));
        out->transport = kinds[i];
        snprintf(out->scheme, sizeof(out->scheme), "%s", names[i]);
        return 0;
    }
    return mr_error_set(err, -EINVAL, "Parameter 'channels[%d].addr.transport'"
                        " does not accept value '%s'", idx,
                        json_string_value(t));
}

int mr_channels_parse(json_t *channels, bool incoming, struct mr_mig_addr *out,
                      struct mr_error *err)
{
    int main_idx = -1, ncpr = 0;
    size_t i;
    json_t *c;

    if (incoming && json_array_size(channels) > 1)
        return mr_error_set(err, -EINVAL, "Channel list must have only one "
                            "entry, for type 'main'");
    json_array_foreach(channels, i, c) {
        json_t *type = json_object_get(c, "channel-type");
        const char *t = json_is_string(type) ? json_string_value(type) : NULL;

        if (!t)
            return mr_error_set(err, -EINVAL, "Parameter 'channels[%zu]."
                                "channel-type' is missing", i);
        if (strcmp(t, "main") == 0) {
            if (main_idx >= 0)
                return mr_error_set(err, -EINVAL, "Channel list has more "
                                    "than one main entry");
            main_idx = (int)i;
        } else if (strcmp(t, "cpr") == 0) {
            if (ncpr++)
                return mr_error_set(err, -EINVAL, "Channel list has more "
                                    "than one cpr entry");
        } else {
            return mr_error_set(err, -EINVAL, "Parameter 'channels[%zu]."
                                "channel-type' does not accept value '%s'",
                                i, t);
        }
    }
    if (main_idx < 0)
        return mr_error_set(err, -EINVAL, "Channel list has no main entry");
    return parse_addr(json_object_get(json_array_get(channels, main_idx),
                                      "addr"), main_idx, out, err);
}

int mr_addr_from_args(json_t *uri, json_t *channels, bool incoming,
                      struct mr_mig_addr *out, struct mr_error *err)
{
    if (!uri == !channels)
        return mr_error_set(err, -EINVAL,
                            "need either 'uri' or 'channels' argument");
    if (uri)
        return mr_uri_parse(json_string_value(uri), out, err);
    return mr_channels_parse(channels, incoming, out, err);
}

int mr_transport_check(const struct mr_caps *caps, const struct mr_params *p,
                       const struct mr_mig_addr *addr, struct mr_error *err)
{
    bool file = addr->transport == MR_TRANSPORT_FILE;
    bool mapped = caps->on[MR_CAP_MAPPED_RAM];
    bool multifd = caps->on[MR_CAP_MULTIFD] ||
                   caps->on[MR_CAP_POSTCOPY_PREEMPT];

    if (mapped && !file)
        return mr_error_set(err, -EINVAL, "Migration requires seekable "
                            "transport (e.g. file)");
    if (multifd && file && !mapped)
        return mr_error_set(err, -EINVAL, "Migration requires multi-channel "
                            "URIs (e.g. tcp)");
    if (caps->on[MR_CAP_MULTIFD] && mr_direct_io_effective(caps, p) && !file)
        return mr_error_set(err, -EINVAL, "Migration requires a transport "
                            "that allows for extra fds (e.g. file)");
    if (p->mode == MR_MODE_CPR_TRANSFER && file)
        return mr_error_set(err, -EINVAL, "Migration requires streamable "
                            "transport (eg unix)");
    if (!file && (addr->transport != MR_TRANSPORT_SOCKET ||
                  addr->socket == MR_SOCKET_NONE))
        return mr_error_set(err, -ENOTSUP, "mapram supports only file:, "
                            "unix: and tcp: migration, not '%s'",
                            addr->scheme);
    return 0;
}
