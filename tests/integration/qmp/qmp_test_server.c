/*
 * A monitor with nothing behind it, for the QMP integration tests: the
 * library's server with the fdset commands and a few test commands.
 *
 *   qmp_test_server <socket> [<socket>...]
 *
 * Runs until SIGTERM/SIGINT or the `test-quit` command.  Test commands:
 *   test-fd-flags             takes the received fd, returns
 *                             {"flags": F_GETFL, "fd-flags": F_GETFD}
 *   test-event {"name", "count"?}  emits `count` events `name` with
 *                             {"seq": i} data
 *   test-types {...}          one member of every argument type
 *   test-open {"path", "flags"}  mr_fdset_open + close, returns flags
 *   test-quit
 * HMP: `echo <text>` prints text; `info test` prints two lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mapram/fdset.h"
#include "mapram/qmp.h"

/* Signals and test-quit both write here; main() waits on the other end. */
static int quit_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    (void)sig;
    if (write(quit_pipe[1], "q", 1) < 0) {
        /* the pipe is full: a quit is already pending */
    }
}

static json_t *cmd_fd_flags(struct mr_qmp_call *call, json_t *args,
                            struct mr_error *err)
{
    int fd = mr_qmp_call_take_fd(call), fl, fdfl;

    (void)args;
    if (fd < 0) {
        mr_error_set(err, -EBADF, "No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    fl = fcntl(fd, F_GETFL);
    fdfl = fcntl(fd, F_GETFD);
    close(fd);
    return json_pack("{s:i,s:i}", "flags", fl, "fd-flags", fdfl);
}

static json_t *cmd_event(struct mr_qmp_call *call, json_t *args,
                         struct mr_error *err)
{
    json_t *count = json_object_get(args, "count");
    json_int_t i, n = count ? json_integer_value(count) : 1;

    (void)err;
    for (i = 0; i < n; i++)
        mr_qmp_server_emit_event(mr_qmp_call_server(call),
                                 json_string_value(json_object_get(args,
                                                                   "name")),
                                 json_pack("{s:I}", "seq", i));
    return NULL;
}

static json_t *cmd_types(struct mr_qmp_call *call, json_t *args,
                         struct mr_error *err)
{
    (void)call;
    (void)err;
    return json_incref(args);
}

static json_t *cmd_open(struct mr_qmp_call *call, json_t *args,
                        struct mr_error *err)
{
    struct mr_fdset_registry *reg = mr_qmp_call_opaque(call);
    int fd, fl;

    fd = mr_fdset_open(reg, json_string_value(json_object_get(args, "path")),
                       (int)json_integer_value(json_object_get(args, "flags")),
                       err);
    if (fd < 0)
        return NULL;
    fl = fcntl(fd, F_GETFL);
    mr_fdset_close(reg, fd);
    return json_pack("{s:i}", "flags", fl);
}

static json_t *cmd_quit(struct mr_qmp_call *call, json_t *args,
                        struct mr_error *err)
{
    (void)call;
    (void)args;
    (void)err;
    on_signal(0);
    return NULL;
}

static void hmp_echo(struct mr_qmp_call *call, const char *args, FILE *out)
{
    (void)call;
    fprintf(out, "%s\n", args);
}

static void hmp_info_test(struct mr_qmp_call *call, const char *args,
                          FILE *out)
{
    (void)call;
    (void)args;
    fprintf(out, "line one\nline two\n");
}

static const struct mr_qmp_arg event_args[] = {
    { "name", MR_QMP_T_STR, false },
    { "count", MR_QMP_T_INT, true },
    { NULL },
};

static const struct mr_qmp_arg types_args[] = {
    { "s", MR_QMP_T_STR, true },
    { "sn", MR_QMP_T_STR_OR_NULL, true },
    { "b", MR_QMP_T_BOOL, true },
    { "i", MR_QMP_T_INT, true },
    { "u8", MR_QMP_T_UINT8, true },
    { "u16", MR_QMP_T_UINT16, true },
    { "u32", MR_QMP_T_UINT32, true },
    { "u64", MR_QMP_T_UINT64, true },
    { "n", MR_QMP_T_NUMBER, true },
    { "o", MR_QMP_T_OBJECT, true },
    { "a", MR_QMP_T_ARRAY, true },
    { "any", MR_QMP_T_ANY, true },
    { "req", MR_QMP_T_INT, false },
    { NULL },
};

static const struct mr_qmp_arg open_args[] = {
    { "path", MR_QMP_T_STR, false },
    { "flags", MR_QMP_T_INT, false },
    { NULL },
};

static const struct mr_qmp_command test_commands[] = {
    { "test-fd-flags", cmd_fd_flags, NULL },
    { "test-event", cmd_event, event_args },
    { "test-types", cmd_types, types_args },
    { "test-open", cmd_open, open_args },
    { "test-quit", cmd_quit, NULL },
    { NULL },
};

static const struct mr_hmp_command test_hmp[] = {
    { "echo", hmp_echo },
    { "info test", hmp_info_test },
    { NULL },
};

int main(int argc, char **argv)
{
    struct mr_qmp_server_config cfg = { 10, 0, 2, "mapram-test" };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_fdset_registry *reg;
    struct mr_qmp_server *srv;
    char c;
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: %s <socket> [<socket>...]\n", argv[0]);
        return 2;
    }
    if (pipe2(quit_pipe, O_CLOEXEC) < 0)
        return 1;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    reg = mr_fdset_registry_new();
    srv = mr_qmp_server_new(&cfg, &err);
    if (!reg || !srv || mr_fdset_register_commands(reg, srv, &err) < 0 ||
        mr_qmp_server_register(srv, test_commands, reg, &err) < 0 ||
        mr_qmp_server_register_hmp(srv, test_hmp, NULL, &err) < 0)
        goto fail;
    for (i = 1; i < argc; i++)
        if (mr_qmp_server_listen_unix(srv, argv[i], &err) < 0)
            goto fail;
    if (mr_qmp_server_start(srv, &err) < 0)
        goto fail;
    printf("ready\n");
    fflush(stdout);
    while (read(quit_pipe[0], &c, 1) < 0 && errno == EINTR)
        ;
    mr_qmp_server_free(srv);
    mr_fdset_registry_free(reg);
    return 0;
fail:
    fprintf(stderr, "qmp_test_server: %s\n", err.msg);
    mr_qmp_server_free(srv);
    mr_fdset_registry_free(reg);
    return 1;
}
