/*
 * Unit tests for QMP request processing (src/lib/qmp/dispatch.c,
 * commands.c, hmp.c) on a socketless connection: bytes in, lines out.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "qmp/qmp_internal.h"

struct fixture {
    struct mr_qmp_server *srv;
    struct mr_qmp_conn *conn;
};

static int taken_fd = -2; /* what test-take-fd saw */

static json_t *cmd_take_fd(struct mr_qmp_call *call, json_t *args,
                           struct mr_error *err)
{
    (void)args;
    (void)err;
    taken_fd = mr_qmp_call_take_fd(call);
    return json_pack("{s:b}", "got", taken_fd >= 0);
}

static json_t *cmd_fail(struct mr_qmp_call *call, json_t *args,
                        struct mr_error *err)
{
    (void)args;
    mr_qmp_call_set_error_class(call, "DeviceNotFound");
    mr_error_set(err, -ENOENT, "nothing here (%s)",
                 (const char *)mr_qmp_call_opaque(call));
    return json_string("leaked unless freed");
}

static json_t *cmd_echo(struct mr_qmp_call *call, json_t *args,
                        struct mr_error *err)
{
    (void)call;
    (void)err;
    return json_incref(args);
}

static struct mr_qmp_deferred *later; /* what test-later deferred */

static json_t *cmd_later(struct mr_qmp_call *call, json_t *args,
                         struct mr_error *err)
{
    (void)args;
    later = mr_qmp_call_defer(call);
    mr_error_set(err, -EIO, "ignored once deferred");
    return json_string("ignored too");
}

static void hmp_say(struct mr_qmp_call *call, const char *args, FILE *out)
{
    fprintf(out, "%s:[%s]\nsecond\n", (const char *)mr_qmp_call_opaque(call),
            args);
}

static const struct mr_qmp_arg echo_args[] = {
    { "v", MR_QMP_T_ANY, true },
    { NULL },
};

static const struct mr_qmp_command test_cmds[] = {
    { "test-take-fd", cmd_take_fd, NULL },
    { "test-fail", cmd_fail, NULL },
    { "test-echo", cmd_echo, echo_args },
    { "test-later", cmd_later, NULL },
    { NULL },
};

static const struct mr_hmp_command test_hmp[] = {
    { "say", hmp_say },
    { "info thing", hmp_say },
    { NULL },
};

static int setup(void **state)
{
    struct mr_qmp_server_config cfg = { 10, 0, 2, "pkg" };
    struct fixture *f = calloc(1, sizeof(*f));

    f->srv = mr_qmp_server_new(&cfg, NULL);
    assert_non_null(f->srv);
    assert_int_equal(mr_qmp_server_register(f->srv, test_cmds, "op", NULL), 0);
    assert_int_equal(mr_qmp_server_register_hmp(f->srv, test_hmp, "hop",
                                                NULL), 0);
    f->conn = mr_qmp_conn_new(f->srv, -1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    mr_qmp_conn_free(f->conn);
    mr_qmp_server_free(f->srv);
    free(f);
    return 0;
}

/* Feed `in`, return the output as lines parsed into a JSON array. */
static json_t *exchange(struct fixture *f, const char *in, const int *fds,
                        size_t nr_fds)
{
    json_t *lines = json_array();
    char *out, *p, *eol;
    size_t len;

    mr_qmp_conn_feed(f->conn, in, strlen(in), fds, nr_fds);
    out = mr_qmp_conn_take_output(f->conn, &len);
    for (p = out; (eol = strstr(p, "\r\n")); p = eol + 2) {
        json_t *v = json_loadb(p, (size_t)(eol - p), 0, NULL);

        assert_non_null(v);
        assert_null(memchr(p, '\n', (size_t)(eol - p)));
        json_array_append_new(lines, v);
    }
    assert_string_equal(p, ""); /* every line ends with \r\n */
    free(out);
    return lines;
}

static void expect_error(json_t *reply, const char *cls, const char *desc)
{
    json_t *e = json_object_get(reply, "error");

    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "class")), cls);
    assert_string_equal(json_string_value(json_object_get(e, "desc")), desc);
}

/* One request, one reply: returns the reply. */
static json_t *one(struct fixture *f, const char *in)
{
    json_t *lines = exchange(f, in, NULL, 0), *r;

    assert_int_equal(json_array_size(lines), 1);
    r = json_incref(json_array_get(lines, 0));
    json_decref(lines);
    return r;
}

static void negotiate(struct fixture *f)
{
    json_t *r = one(f, "{\"execute\": \"qmp_capabilities\"}");

    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
}

static void greeting_shape(void **state)
{
    struct fixture *f = *state;
    json_t *lines, *g;

    mr_qmp_conn_greet(f->conn);
    lines = exchange(f, "", NULL, 0);
    g = json_pack("{s:{s:{s:{s:i,s:i,s:i},s:s},s:[s]}}", "QMP", "version",
                  "qemu", "micro", 2, "minor", 0, "major", 10, "package",
                  "pkg", "capabilities", "oob");
    assert_true(json_equal(json_array_get(lines, 0), g));
    json_decref(g);
    json_decref(lines);
}

static void negotiation_mode_rules(void **state)
{
    struct fixture *f = *state;
    json_t *r;

    r = one(f, "{\"execute\": \"query-version\", \"id\": \"a\"}");
    expect_error(r, "CommandNotFound",
                 "Expecting capabilities negotiation with 'qmp_capabilities'");
    assert_string_equal(json_string_value(json_object_get(r, "id")), "a");
    json_decref(r);
    r = one(f, "{\"execute\": \"qmp_capabilities\", \"arguments\":"
               " {\"enable\": [\"nope\"]}}");
    expect_error(r, "GenericError",
                 "Parameter 'null' does not accept value 'nope'");
    json_decref(r);
    assert_false(f->conn->negotiated);
    negotiate(f);
    assert_true(f->conn->negotiated);
    r = one(f, "{\"execute\": \"qmp_capabilities\"}");
    expect_error(r, "CommandNotFound",
                 "Capabilities negotiation is already complete, command ignored");
    json_decref(r);
}

static void oob_rules(void **state)
{
    struct fixture *f = *state;
    json_t *r;

    r = one(f, "{\"exec-oob\": \"qmp_capabilities\"}");
    expect_error(r, "GenericError", "QMP input member 'exec-oob' is unexpected");
    json_decref(r);
    r = one(f, "{\"execute\": \"qmp_capabilities\", \"arguments\":"
               " {\"enable\": [\"oob\"]}}");
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
    assert_true(f->conn->oob);
    r = one(f, "{\"exec-oob\": \"query-version\"}");
    expect_error(r, "GenericError",
                 "The command query-version does not support OOB");
    json_decref(r);
}

static void request_shape_messages(void **state)
{
    static const char *const cases[][2] = {
        { "[]", "QMP input must be a JSON object" },
        { "\"x\"", "QMP input must be a JSON object" },
        { "{\"execute\": 1}", "QMP input member 'execute' must be a string" },
        { "{\"exec-oob\": []}", "QMP input member 'exec-oob' must be a string" },
        { "{\"execute\": \"a\", \"exec-oob\": \"b\"}",
          "QMP input member 'exec-oob' clashes with 'execute'" },
        { "{\"exec-oob\": \"b\", \"execute\": \"a\"}",
          "QMP input member 'execute' clashes with 'exec-oob'" },
        { "{\"execute\": \"a\", \"arguments\": []}",
          "QMP input member 'arguments' must be an object" },
        { "{\"execute\": \"a\", \"extra\": 1}",
          "QMP input member 'extra' is unexpected" },
        { "{\"arguments\": {}}", "QMP input lacks member 'execute'" },
        { "{}", "QMP input lacks member 'execute'" },
    };
    struct fixture *f = *state;
    size_t i;

    negotiate(f);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *r = one(f, cases[i][0]);

        expect_error(r, "GenericError", cases[i][1]);
        json_decref(r);
    }
}

static void ids_are_echoed_verbatim(void **state)
{
    struct fixture *f = *state;
    json_t *lines, *id = json_loads("{\"x\": [1, 2.5, null, \"s\"]}", 0, NULL);

    negotiate(f);
    lines = exchange(f, "{\"execute\": \"query-version\", \"id\":"
                        " {\"x\": [1, 2.5, null, \"s\"]}}"
                        "{\"execute\": \"nope\", \"id\": 7}"
                        "{\"id\": false}", NULL, 0);
    assert_int_equal(json_array_size(lines), 3);
    assert_true(json_equal(json_object_get(json_array_get(lines, 0), "id"),
                           id));
    expect_error(json_array_get(lines, 1), "CommandNotFound",
                 "The command nope has not been found");
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(lines, 1), "id")), 7);
    assert_true(json_is_false(json_object_get(json_array_get(lines, 2),
                                              "id")));
    json_decref(lines);
    json_decref(id);
}

static void builtins_answer(void **state)
{
    struct fixture *f = *state;
    json_t *r, *cmds;
    size_t i, found = 0;

    negotiate(f);
    r = one(f, "{\"execute\": \"query-version\"}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(
        json_object_get(r, "return"), "qemu"), "major")), 10);
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(r, "return"), "package")), "pkg");
    json_decref(r);
    r = one(f, "{\"execute\": \"query-commands\"}");
    cmds = json_object_get(r, "return");
    for (i = 0; i < json_array_size(cmds); i++) {
        const char *n = json_string_value(json_object_get(
            json_array_get(cmds, i), "name"));

        found += !strcmp(n, "qmp_capabilities") || !strcmp(n, "test-echo") ||
                 !strcmp(n, "human-monitor-command");
    }
    assert_int_equal(found, 3);
    assert_int_equal(json_array_size(cmds), 8);
    json_decref(r);
}

static void handler_errors_and_classes(void **state)
{
    struct fixture *f = *state;
    json_t *r;

    negotiate(f);
    r = one(f, "{\"execute\": \"test-fail\", \"id\": 1}");
    expect_error(r, "DeviceNotFound", "nothing here (op)");
    json_decref(r);
    r = one(f, "{\"execute\": \"test-echo\", \"arguments\": {\"w\": 1}}");
    expect_error(r, "GenericError", "Parameter 'w' is unexpected");
    json_decref(r);
    r = one(f, "{\"execute\": \"test-echo\"}");
    assert_int_equal(json_object_size(json_object_get(r, "return")), 0);
    json_decref(r);
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void unclaimed_fds_are_closed(void **state)
{
    struct fixture *f = *state;
    json_t *lines;
    int p[2];

    negotiate(f);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    /* The fds came with B's bytes: A (same chunk, earlier) cannot see them,
     * B takes one, the other is closed when B ends. */
    taken_fd = -2;
    lines = exchange(f, "{\"execute\": \"test-echo\"}"
                        "{\"execute\": \"test-take-fd\"}\r\n", p, 2);
    assert_int_equal(json_array_size(lines), 2);
    assert_int_equal(taken_fd, p[0]);
    assert_true(fd_is_open(p[0]));
    assert_false(fd_is_open(p[1]));
    close(p[0]);
    json_decref(lines);
    /* A request that does not take its fd gets it closed. */
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    close(p[1]);
    lines = exchange(f, "{\"execute\": \"query-version\"}\n", p, 1);
    assert_false(fd_is_open(p[0]));
    json_decref(lines);
}

static void fds_follow_a_split_request(void **state)
{
    struct fixture *f = *state;
    json_t *lines;
    int p[2];

    negotiate(f);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    close(p[1]);
    taken_fd = -2;
    lines = exchange(f, "{\"execute\": \"test-", p, 1);
    assert_int_equal(json_array_size(lines), 0);
    json_decref(lines);
    lines = exchange(f, "take-fd\"}", NULL, 0);
    assert_int_equal(json_array_size(lines), 1);
    assert_int_equal(taken_fd, p[0]);
    close(p[0]);
    json_decref(lines);
}

static void fd_flood_is_capped(void **state)
{
    struct fixture *f = *state;
    int fds[MR_QMP_MAX_QUEUED_FDS + 8], i, p[2];
    json_t *lines;

    negotiate(f);
    for (i = 0; i < MR_QMP_MAX_QUEUED_FDS + 8; i += 2) {
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        fds[i] = p[0];
        fds[i + 1] = p[1];
    }
    lines = exchange(f, "{\"execute\": \"test-", fds, 24);
    assert_int_equal(f->conn->nr_fdq, MR_QMP_MAX_QUEUED_FDS);
    for (i = MR_QMP_MAX_QUEUED_FDS; i < MR_QMP_MAX_QUEUED_FDS + 8; i++)
        assert_false(fd_is_open(fds[i]));
    json_decref(lines);
    mr_qmp_conn_feed_eof(f->conn);
    for (i = 0; i < MR_QMP_MAX_QUEUED_FDS; i++)
        assert_false(fd_is_open(fds[i]));
}

static void backlog_stashes_input_until_read(void **state)
{
    struct fixture *f = *state;
    size_t big = 100000, i, n = 0;
    char *req = malloc(big + 64), *in = malloc(15 * (big + 64) + 64);
    json_t *lines;
    int p[2];

    negotiate(f);
    snprintf(req, 64, "{\"execute\": \"test-echo\", \"arguments\": {\"v\": \"");
    n = strlen(req);
    memset(req + n, 'x', big);
    strcpy(req + n + big, "\"}}");
    in[0] = '\0';
    n = 0;
    for (i = 0; i < 15; i++) {
        strcpy(in + n, req);
        n += strlen(req);
    }
    strcpy(in + n, "{\"execute\": \"test-take-fd\"}\n");
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    close(p[1]);
    taken_fd = -2;
    lines = exchange(f, in, p, 1);
    /* About 1 MiB of replies, then the rest waits with its descriptor. */
    assert_true(json_array_size(lines) >= 10 && json_array_size(lines) < 15);
    assert_non_null(f->conn->stash);
    assert_int_equal(f->conn->nr_stash_fds, 1);
    assert_int_equal(taken_fd, -2);
    n = json_array_size(lines);
    json_decref(lines);
    mr_qmp_conn_resume(f->conn);
    lines = exchange(f, "", NULL, 0);
    assert_int_equal(n + json_array_size(lines), 16);
    assert_null(f->conn->stash);
    assert_int_equal(taken_fd, p[0]);
    close(p[0]);
    json_decref(lines);
    free(req);
    free(in);
}

static void parse_errors_have_no_id(void **state)
{
    struct fixture *f = *state;
    json_t *lines;

    negotiate(f);
    lines = exchange(f, "{\"execute\": x, \"id\": 1}\n{\"a\":1,\"a\":2}\n"
                        "{\"execute\": \"query-version\"}", NULL, 0);
    assert_int_equal(json_array_size(lines), 3);
    assert_null(json_object_get(json_array_get(lines, 0), "id"));
    assert_memory_equal(json_string_value(json_object_get(json_object_get(
        json_array_get(lines, 0), "error"), "desc")), "JSON parse error, ", 18);
    assert_non_null(json_object_get(json_array_get(lines, 2), "return"));
    json_decref(lines);
}

static void truncated_utf8_message_still_answers(void **state)
{
    struct fixture *f = *state;
    char req[1024] = "{\"execute\": \"";
    const char *desc;
    json_t *r;
    int i;

    negotiate(f);
    /* 0xc3 0xa9 is U+00E9; the message is cut inside one of them. */
    for (i = 0; i < 150; i++)
        strcat(req, "\xc3\xa9");
    strcat(req, "\"}");
    r = one(f, req);
    desc = json_string_value(json_object_get(json_object_get(r, "error"),
                                             "desc"));
    assert_non_null(desc);
    assert_memory_equal(desc, "The command \xc3\xa9", 14);
    assert_false(f->conn->dead);
    json_decref(r);
}

static const char *hmp(struct fixture *f, const char *line, json_t **keep)
{
    char req[512];

    snprintf(req, sizeof(req), "{\"execute\": \"human-monitor-command\","
             " \"arguments\": {\"command-line\": \"%s\"}}", line);
    *keep = one(f, req);
    return json_string_value(json_object_get(*keep, "return"));
}

static void hmp_bridge(void **state)
{
    struct fixture *f = *state;
    json_t *r;

    negotiate(f);
    assert_string_equal(hmp(f, "  say  a b ", &r), "hop:[a b ]\r\nsecond\r\n");
    json_decref(r);
    assert_string_equal(hmp(f, "info   thing x", &r),
                        "hop:[x]\r\nsecond\r\n");
    json_decref(r);
    assert_string_equal(hmp(f, "bogus 1 2", &r), "unknown command: 'bogus'\r\n");
    json_decref(r);
    assert_string_equal(hmp(f, "info bogus", &r),
                        "unknown command: 'info bogus'\r\n");
    json_decref(r);
    assert_string_equal(hmp(f, "info", &r), "info thing\r\n");
    json_decref(r);
    assert_string_equal(hmp(f, "help", &r), "help\r\nsay\r\ninfo thing\r\n");
    json_decref(r);
    assert_string_equal(hmp(f, "", &r), "");
    json_decref(r);
    r = one(f, "{\"execute\": \"human-monitor-command\", \"arguments\":"
               " {\"command-line\": \"say\", \"cpu-index\": 3}}");
    expect_error(r, "GenericError", "Parameter 'cpu-index' expects a CPU number");
    json_decref(r);
    r = one(f, "{\"execute\": \"human-monitor-command\"}");
    expect_error(r, "GenericError", "Parameter 'command-line' is missing");
    json_decref(r);
}

static void events_reach_negotiated_connections(void **state)
{
    struct fixture *f = *state;
    json_t *lines, *ev;

    pthread_mutex_lock(&f->srv->lock);
    f->conn->next = f->srv->conns;
    f->srv->conns = f->conn;
    pthread_mutex_unlock(&f->srv->lock);
    mr_qmp_server_emit_event(f->srv, "EARLY", NULL);
    lines = exchange(f, "", NULL, 0);
    assert_int_equal(json_array_size(lines), 0);
    json_decref(lines);
    negotiate(f);
    mr_qmp_server_emit_event(f->srv, "STOP", NULL);
    mr_qmp_server_emit_event(f->srv, "MIGRATION",
                             json_pack("{s:s}", "status", "setup"));
    lines = exchange(f, "", NULL, 0);
    assert_int_equal(json_array_size(lines), 2);
    ev = json_array_get(lines, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "event")),
                        "STOP");
    assert_null(json_object_get(ev, "data"));
    assert_true(json_is_integer(json_object_get(json_object_get(ev,
                                "timestamp"), "seconds")));
    assert_true(json_is_integer(json_object_get(json_object_get(ev,
                                "timestamp"), "microseconds")));
    ev = json_array_get(lines, 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(
        ev, "data"), "status")), "setup");
    json_decref(lines);
    pthread_mutex_lock(&f->srv->lock);
    f->srv->conns = f->conn->next;
    pthread_mutex_unlock(&f->srv->lock);
}

static void output_cap_drops_the_client(void **state)
{
    struct fixture *f = *state;
    size_t chunk = 1u << 20, i;
    char *big = calloc(1, chunk);

    pthread_mutex_lock(&f->srv->lock);
    for (i = 0; i <= MR_QMP_MAX_OUTPUT_BYTES / chunk; i++)
        mr_qmp_conn_append_locked(f->conn, big, chunk);
    pthread_mutex_unlock(&f->srv->lock);
    assert_true(f->conn->dead);
    assert_true(f->conn->out_len <= MR_QMP_MAX_OUTPUT_BYTES);
    free(big);
}

static void registration_rules(void **state)
{
    static const struct mr_qmp_command dup[] = {
        { "query-version", cmd_echo, NULL },
        { NULL },
    };
    struct fixture *f = *state;
    struct mr_error err = MR_ERROR_INIT;

    assert_int_equal(mr_qmp_server_register(f->srv, dup, NULL, &err), -EEXIST);
    assert_string_equal(err.msg,
                        "QMP command 'query-version' is already registered");
}

/* Once quiesced (shutdown begun), nothing that could start work runs:
 * registered commands and HMP are refused, the passive built-ins answer,
 * and a connection that had not negotiated yet still can. */
static void quiesce_refuses_work(void **state)
{
    struct fixture *f = *state;
    json_t *r;

    taken_fd = -2;
    mr_qmp_server_quiesce(f->srv);
    negotiate(f);
    r = one(f, "{\"execute\": \"test-take-fd\", \"id\": 7}");
    expect_error(r, "GenericError", MR_QMP_SHUTDOWN_DESC);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
    json_decref(r);
    assert_int_equal(taken_fd, -2); /* the handler never ran */
    r = one(f, "{\"execute\": \"human-monitor-command\", \"arguments\": "
               "{\"command-line\": \"say x\"}}");
    expect_error(r, "GenericError", MR_QMP_SHUTDOWN_DESC);
    json_decref(r);
    r = one(f, "{\"execute\": \"query-version\"}");
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
    r = one(f, "{\"execute\": \"no-such\"}");
    expect_error(r, "CommandNotFound", "The command no-such has not been found");
    json_decref(r);
}

/* stop() on a server that never started, then events: nothing queued,
 * nothing crashes; free() after stop() is fine. */
static void stop_then_emit(void **state)
{
    struct fixture *f = *state;

    mr_qmp_server_stop(f->srv);
    mr_qmp_server_emit_event(f->srv, "STOP", NULL);
    mr_qmp_server_stop(f->srv);
}

/* A deferred reply holds the connection's later requests back, keeps
 * the id, and lets them run once finished, in order. */
static void deferred_reply_keeps_order(void **state)
{
    struct fixture *f = *state;
    struct mr_error e = MR_ERROR_INIT;
    json_t *lines;

    negotiate(f);
    later = NULL;
    lines = exchange(f, "{\"execute\": \"test-later\", \"id\": \"a\"}"
                        "{\"execute\": \"query-version\", \"id\": \"b\"}",
                     NULL, 0);
    assert_non_null(later);
    assert_int_equal(json_array_size(lines), 0);
    json_decref(lines);
    assert_true(mr_qmp_conn_finished(f->conn) == false);
    mr_error_set(&e, -EIO, "it failed");
    mr_qmp_deferred_finish(later, NULL, &e);
    assert_true(mr_qmp_conn_can_resume(f->conn));
    mr_qmp_conn_resume(f->conn);
    lines = exchange(f, "", NULL, 0);
    assert_int_equal(json_array_size(lines), 2);
    expect_error(json_array_get(lines, 0), "GenericError", "it failed");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(lines, 0), "id")), "a");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(lines, 1), "id")), "b");
    assert_non_null(json_object_get(json_array_get(lines, 1), "return"));
    json_decref(lines);
}

/* EOF while a reply is deferred: the connection stays until it is given;
 * a connection freed first makes the reply go nowhere. */
static void deferred_reply_outlives_eof(void **state)
{
    struct fixture *f = *state;
    json_t *lines;

    negotiate(f);
    lines = exchange(f, "{\"execute\": \"test-later\"}", NULL, 0);
    json_decref(lines);
    mr_qmp_conn_feed_eof(f->conn);
    assert_false(mr_qmp_conn_finished(f->conn));
    mr_qmp_deferred_finish(later, json_pack("{s:i}", "n", 1), NULL);
    mr_qmp_conn_resume(f->conn);
    lines = exchange(f, "", NULL, 0);
    assert_int_equal(json_array_size(lines), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(
                         json_array_get(lines, 0), "return"), "n")), 1);
    json_decref(lines);
    assert_true(mr_qmp_conn_finished(f->conn));
    /* a second connection that goes away before its reply */
    {
        struct mr_qmp_conn *c = mr_qmp_conn_new(f->srv, -1);

        const char *in = "{\"execute\": \"qmp_capabilities\"}"
                         "{\"execute\": \"test-later\"}";

        later = NULL;
        mr_qmp_conn_feed(c, in, strlen(in), NULL, 0);
        assert_non_null(later);
        mr_qmp_conn_free(c);
        mr_qmp_deferred_finish(later, NULL, NULL);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(greeting_shape),
        T(negotiation_mode_rules),
        T(oob_rules),
        T(request_shape_messages),
        T(ids_are_echoed_verbatim),
        T(builtins_answer),
        T(handler_errors_and_classes),
        T(unclaimed_fds_are_closed),
        T(fds_follow_a_split_request),
        T(fd_flood_is_capped),
        T(backlog_stashes_input_until_read),
        T(parse_errors_have_no_id),
        T(truncated_utf8_message_still_answers),
        T(hmp_bridge),
        T(events_reach_negotiated_connections),
        T(output_cap_drops_the_client),
        T(registration_rules),
        T(quiesce_refuses_work),
        T(stop_then_emit),
        T(deferred_reply_keeps_order),
        T(deferred_reply_outlives_eof),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
