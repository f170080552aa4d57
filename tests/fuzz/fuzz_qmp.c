/*
 * Fuzz target for the QMP request-processing core: arbitrary client bytes
 * fed to a socketless connection (dispatch.c) of a server with the fdset
 * commands registered, in pieces whose sizes the input chooses, sometimes
 * with a descriptor attached.  Whatever comes in, every reply must be one
 * JSON object on one line ending in "\r\n", and nothing may leak.
 *
 * Built with -Dfuzz=true (clang, libFuzzer) as fuzz_qmp; in every build
 * replay_qmp (replay.c) runs the checked-in corpus through it.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mapram/fdset.h"
#include "qmp/qmp_internal.h"

/* Every line a complete JSON object, CRLF-terminated, no bare newline. */
static void check_output(const char *out, size_t len)
{
    const char *p = out, *end = out + len, *eol;

    while (p < end) {
        json_t *v;

        eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol || eol + 1 >= end || eol[1] != '\n' ||
            memchr(p, '\n', (size_t)(eol - p)))
            abort();
        v = json_loadb(p, (size_t)(eol - p), 0, NULL);
        if (!json_is_object(v))
            abort();
        json_decref(v);
        p = eol + 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mr_qmp_server_config cfg = { 10, 0, 2, "fuzz" };
    struct mr_fdset_registry *reg = mr_fdset_registry_new();
    struct mr_qmp_server *srv = mr_qmp_server_new(&cfg, NULL);
    struct mr_qmp_conn *conn;
    size_t off = 1, piece, len;
    char *out;

    if (!reg || !srv || size == 0 ||
        mr_fdset_register_commands(reg, srv, NULL) < 0)
        goto done;
    conn = mr_qmp_conn_new(srv, -1);
    if (!conn)
        goto done;
    mr_qmp_conn_greet(conn);
    /* The first byte picks the piece size: requests split anywhere. */
    piece = (size_t)(data[0] & 0x3f) + 1;
    while (off < size && !conn->dead) {
        size_t n = size - off < piece ? size - off : piece;
        int fd = -1;

        if (data[0] & 0x40 && memchr(data + off, '!', n))
            fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        mr_qmp_conn_feed(conn, (const char *)data + off, n, &fd, fd >= 0);
        off += n;
        out = mr_qmp_conn_take_output(conn, &len);
        if (out)
            check_output(out, len);
        free(out);
    }
    mr_qmp_conn_feed_eof(conn);
    out = mr_qmp_conn_take_output(conn, &len);
    if (out)
        check_output(out, len);
    free(out);
    mr_qmp_conn_free(conn);
done:
    mr_qmp_server_free(srv);
    mr_fdset_registry_free(reg);
    return 0;
}
