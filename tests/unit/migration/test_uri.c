/* Unit tests: migration URIs, channels and transport checks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "migration/uri.h"

static const char *uri_msg(const char *uri, struct mr_mig_addr *a)
{
    static struct mr_error err;

    mr_error_clear(&err);
    return mr_uri_parse(uri, a, &err) ? err.msg : "";
}

static void test_file_uri(void **state)
{
    struct mr_mig_addr a;

    (void)state;
    assert_string_equal(uri_msg("file:/tmp/x", &a), "");
    assert_int_equal(a.transport, MR_TRANSPORT_FILE);
    assert_string_equal(a.path, "/tmp/x");
    assert_int_equal(a.offset, 0);
    assert_string_equal(uri_msg("file:/dev/fdset/1,offset=0x1000", &a), "");
    assert_string_equal(a.path, "/dev/fdset/1");
    assert_int_equal(a.offset, 4096);
    assert_string_equal(uri_msg("file:/a,b,offset=1.5M", &a), "");
    assert_string_equal(a.path, "/a,b");
    assert_int_equal(a.offset, 3 << 19);
    assert_string_equal(uri_msg("file:/x,offset=0x20M", &a),
                        "file URI has bad offset 0x20M: Invalid argument");
    assert_string_equal(uri_msg("file:/x,offset=-1", &a),
                        "file URI has bad offset -1: Invalid argument");
    assert_string_equal(uri_msg("file:/x,offset=16E", &a),
                        "file URI has bad offset 16E: Numerical result out of "
                        "range");
    assert_string_equal(uri_msg("ftp:/x", &a),
                        "unknown migration protocol: ftp:/x");
    assert_string_equal(uri_msg("tcp:localhost:4444", &a), "");
    assert_int_equal(a.transport, MR_TRANSPORT_SOCKET);
    assert_int_equal(a.socket, MR_SOCKET_INET);
    assert_string_equal(a.host, "localhost");
    assert_string_equal(a.port, "4444");
    assert_string_equal(uri_msg("exec:cat", &a), "");
    assert_int_equal(a.transport, MR_TRANSPORT_EXEC);
}

static void test_socket_uri(void **state)
{
    struct mr_mig_addr a;

    (void)state;
    assert_string_equal(uri_msg("unix:/run/m.sock", &a), "");
    assert_int_equal(a.socket, MR_SOCKET_UNIX);
    assert_string_equal(a.path, "/run/m.sock");
    assert_string_equal(a.scheme, "unix");
    assert_string_equal(uri_msg("unix:", &a), "unix socket path is empty");
    assert_string_equal(uri_msg("tcp:[::1]:0", &a), "");
    assert_string_equal(a.host, "::1");
    assert_string_equal(a.port, "0");
    assert_string_equal(uri_msg("tcp::4444", &a), "");
    assert_string_equal(a.host, "");
    assert_string_equal(uri_msg("tcp:localhost", &a),
                        "error parsing address 'localhost'");
    assert_string_equal(uri_msg("tcp:h:", &a), "error parsing address 'h:'");
    assert_string_equal(uri_msg("tcp:[::1", &a),
                        "error parsing IPv6 address '[::1'");
    assert_string_equal(uri_msg("fd:3", &a), "");
    assert_int_equal(a.socket, MR_SOCKET_NONE);
}

static const char *chan_msg(const char *json, bool incoming,
                            struct mr_mig_addr *a)
{
    static struct mr_error err;
    json_t *c = json_loads(json, 0, NULL);
    int rc;

    assert_non_null(c);
    mr_error_clear(&err);
    rc = mr_channels_parse(c, incoming, a, &err);
    json_decref(c);
    return rc ? err.msg : "";
}

static void test_socket_channels(void **state)
{
    struct mr_mig_addr a;

    (void)state;
    assert_string_equal(chan_msg("[{\"channel-type\": \"main\", \"addr\": "
        "{\"transport\": \"socket\", \"type\": \"inet\", \"host\": "
        "\"127.0.0.1\", \"port\": \"4444\"}}]", true, &a), "");
    assert_int_equal(a.socket, MR_SOCKET_INET);
    assert_string_equal(a.host, "127.0.0.1");
    assert_string_equal(a.port, "4444");
    assert_string_equal(chan_msg("[{\"channel-type\": \"main\", \"addr\": "
        "{\"transport\": \"socket\", \"type\": \"unix\", \"path\": "
        "\"/run/x.sock\"}}]", true, &a), "");
    assert_int_equal(a.socket, MR_SOCKET_UNIX);
    assert_string_equal(a.path, "/run/x.sock");
    assert_string_equal(chan_msg("[{\"channel-type\": \"main\", \"addr\": "
        "{\"transport\": \"socket\", \"type\": \"inet\", \"host\": "
        "\"h\"}}]", true, &a), "Parameter 'channels[0].addr.port' is missing");
}

static void test_channels(void **state)
{
    struct mr_mig_addr a;

    (void)state;
    assert_string_equal(chan_msg("[{\"channel-type\": \"main\", \"addr\": "
        "{\"transport\": \"file\", \"filename\": \"/f\", \"offset\": 8192}}]",
        false, &a), "");
    assert_string_equal(a.path, "/f");
    assert_int_equal(a.offset, 8192);
    assert_string_equal(chan_msg("[{\"channel-type\": \"main\", \"addr\": "
        "{\"transport\": \"file\", \"filename\": \"/f\"}}]", false, &a),
        "Parameter 'channels[0].addr.offset' is missing");
    assert_string_equal(chan_msg("[{\"channel-type\": \"main\", \"addr\": "
        "{\"transport\": \"file\", \"filename\": \"/f\", \"offset\": \"1\"}}]",
        false, &a), "Invalid parameter type for 'channels[0].addr.offset', "
        "expected: integer");
    assert_string_equal(chan_msg("[{\"channel-type\": \"main\", \"addr\": {}},"
        "{\"channel-type\": \"main\", \"addr\": {}}]", false, &a),
        "Channel list has more than one main entry");
    assert_string_equal(chan_msg("[{\"channel-type\": \"cpr\", \"addr\": {}}]",
        false, &a), "Channel list has no main entry");
    assert_string_equal(chan_msg("[{\"channel-type\": \"main\", \"addr\": {}},"
        "{\"channel-type\": \"cpr\", \"addr\": {}}]", true, &a),
        "Channel list must have only one entry, for type 'main'");
}

static void test_args(void **state)
{
    struct mr_mig_addr a;
    struct mr_error err = MR_ERROR_INIT;
    json_t *u = json_string("file:/x");
    json_t *c = json_array();

    (void)state;
    assert_int_not_equal(mr_addr_from_args(u, c, false, &a, &err), 0);
    assert_string_equal(err.msg, "need either 'uri' or 'channels' argument");
    mr_error_clear(&err);
    assert_int_not_equal(mr_addr_from_args(NULL, NULL, false, &a, &err), 0);
    assert_string_equal(err.msg, "need either 'uri' or 'channels' argument");
    mr_error_clear(&err);
    assert_int_equal(mr_addr_from_args(u, NULL, false, &a, &err), 0);
    json_decref(u);
    json_decref(c);
}

static const char *tcheck(const char *uri, bool mapped, bool multifd,
                          bool dio, int mode)
{
    static struct mr_error err;
    struct mr_mig_addr a;
    struct mr_caps c = { { 0 } };
    struct mr_params p;

    mr_params_init(&p);
    c.on[MR_CAP_MAPPED_RAM] = mapped;
    c.on[MR_CAP_MULTIFD] = multifd;
    p.direct_io = dio;
    p.mode = mode;
    mr_error_clear(&err);
    assert_int_equal(mr_uri_parse(uri, &a, &err), 0);
    return mr_transport_check(&c, &p, &a, &err) ? err.msg : "";
}

static void test_transport(void **state)
{
    (void)state;
    assert_string_equal(tcheck("file:/x", true, true, true, 0), "");
    assert_string_equal(tcheck("file:/x", false, false, false, 0), "");
    assert_string_equal(tcheck("tcp:h:1", true, true, false, 0),
                        "Migration requires seekable transport (e.g. file)");
    assert_string_equal(tcheck("file:/x", false, true, false, 0),
                        "Migration requires multi-channel URIs (e.g. tcp)");
    assert_string_equal(tcheck("file:/x", true, false, false,
                               MR_MODE_CPR_TRANSFER),
                        "Migration requires streamable transport (eg unix)");
    assert_string_equal(tcheck("unix:/s", false, false, false, 0), "");
    assert_string_equal(tcheck("tcp:h:1", false, false, false, 0), "");
    assert_string_equal(tcheck("exec:cat", false, false, false, 0),
                        "mapram supports only file:, unix: and tcp: "
                        "migration, not 'exec'");
    assert_string_equal(tcheck("fd:3", false, false, false, 0),
                        "mapram supports only file:, unix: and tcp: "
                        "migration, not 'fd'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_uri),
        cmocka_unit_test(test_socket_uri),
        cmocka_unit_test(test_socket_channels),
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_transport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
