/*
 * The QMP client library (src/lib/qmp/client.c) against a real monitor
 * process (qmp_test_server): connect + negotiate, execute with ids, error
 * classes, descriptors by SCM_RIGHTS, fdset open through the monitor,
 * events queued while waiting for a reply, wait_event and poll_event.
 *
 *   test_qmp_client <qmp_test_server>
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mapram/qmp.h"
#include "mapram/qmp_client.h"

extern char **environ;

static int failures;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                          \
        }                                                                   \
    } while (0)

static pid_t start_server(const char *bin, const char *sock)
{
    char *argv[] = { (char *)bin, (char *)sock, NULL };
    posix_spawn_file_actions_t fa;
    int out[2];
    pid_t pid;
    char line[16] = { 0 };

    if (pipe(out) < 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    if (posix_spawn(&pid, bin, &fa, NULL, argv, environ) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (pid > 0 && (read(out[0], line, sizeof(line) - 1) <= 0 ||
                    strcmp(line, "ready\n") != 0)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        pid = -1;
    }
    close(out[0]);
    return pid;
}

static void test_basics(struct mr_qmp_client *c)
{
    struct mr_error err = MR_ERROR_INIT;
    json_t *r, *g = mr_qmp_client_greeting(c);

    CHECK(json_integer_value(json_object_get(json_object_get(json_object_get(
              json_object_get(g, "QMP"), "version"), "qemu"), "major")) == 10,
          "greeting");
    r = mr_qmp_client_execute(c, "query-version", NULL, NULL, 0, 5000, &err);
    CHECK(r && !strcmp(json_string_value(json_object_get(r, "package")),
                       "mapram-test"), "query-version: %s", err.msg);
    json_decref(r);
    mr_error_clear(&err);
    r = mr_qmp_client_execute(c, "no-such-command", NULL, NULL, 0, 5000, &err);
    CHECK(!r && !strcmp(err.msg, "The command no-such-command has not been "
                                 "found"), "unknown: %s", err.msg);
    CHECK(!strcmp(mr_qmp_client_error_class(c), "CommandNotFound"),
          "class %s", mr_qmp_client_error_class(c));
    mr_error_clear(&err);
    r = mr_qmp_client_execute(c, "test-types",
                              json_pack("{s:i,s:i}", "req", 1, "u16", 70000),
                              NULL, 0, 5000, &err);
    CHECK(!r && !strcmp(err.msg, "Parameter 'u16' expects uint16_t"),
          "range: %s", err.msg);
    CHECK(!strcmp(mr_qmp_client_error_class(c), "GenericError"), "class");
    mr_error_clear(&err);
    r = mr_qmp_client_execute(c, "query-version", NULL, NULL, 0, 5000, &err);
    CHECK(r && !strcmp(mr_qmp_client_error_class(c), ""), "class cleared");
    json_decref(r);
}

static void test_fds(struct mr_qmp_client *c)
{
    struct mr_error err = MR_ERROR_INIT;
    char path[] = "/tmp/mapram-qmp-client-XXXXXX";
    int tmp = mkstemp(path), fds[2];
    json_t *r;

    CHECK(tmp >= 0, "mkstemp");
    close(tmp);
    fds[0] = open(path, O_RDONLY | O_CLOEXEC);
    fds[1] = open(path, O_WRONLY | O_CLOEXEC);
    r = mr_qmp_client_execute(c, "test-fd-flags", NULL, &fds[1], 1, 5000, &err);
    CHECK(r && (json_integer_value(json_object_get(r, "flags")) & O_ACCMODE) ==
               O_WRONLY, "fd passed: %s", err.msg);
    json_decref(r);
    r = mr_qmp_client_execute(c, "add-fd", json_pack("{s:i}", "fdset-id", 3),
                              &fds[0], 1, 5000, &err);
    CHECK(r && json_integer_value(json_object_get(r, "fdset-id")) == 3,
          "add-fd: %s", err.msg);
    json_decref(r);
    r = mr_qmp_client_execute(c, "add-fd", json_pack("{s:i}", "fdset-id", 3),
                              &fds[1], 1, 5000, &err);
    json_decref(r);
    r = mr_qmp_client_execute(c, "test-open",
                              json_pack("{s:s,s:i}", "path", "/dev/fdset/3",
                                        "flags", O_RDONLY), NULL, 0, 5000,
                              &err);
    CHECK(r && (json_integer_value(json_object_get(r, "flags")) & O_ACCMODE) ==
               O_RDONLY, "fdset open: %s", err.msg);
    json_decref(r);
    r = mr_qmp_client_execute(c, "query-fdsets", NULL, NULL, 0, 5000, &err);
    CHECK(json_array_size(json_object_get(json_array_get(r, 0), "fds")) == 2,
          "two fds in set 3");
    json_decref(r);
    r = mr_qmp_client_execute(c, "remove-fd", json_pack("{s:i}", "fdset-id", 3),
                              NULL, 0, 5000, &err);
    CHECK(r != NULL, "remove-fd: %s", err.msg);
    json_decref(r);
    close(fds[0]);
    close(fds[1]);
    unlink(path);
}

static void test_events(struct mr_qmp_client *c)
{
    struct mr_error err = MR_ERROR_INIT;
    json_t *r, *ev;

    /* The events arrive before the reply and are queued, not lost. */
    r = mr_qmp_client_execute(c, "test-event",
                              json_pack("{s:s,s:i}", "name", "EV_A", "count",
                                        3), NULL, 0, 5000, &err);
    CHECK(r != NULL, "test-event: %s", err.msg);
    json_decref(r);
    r = mr_qmp_client_execute(c, "test-event",
                              json_pack("{s:s}", "name", "EV_B"), NULL, 0,
                              5000, &err);
    json_decref(r);
    ev = mr_qmp_client_wait_event(c, "EV_B", 5000, &err);
    CHECK(ev && json_object_get(ev, "timestamp"), "EV_B: %s", err.msg);
    json_decref(ev);
    ev = mr_qmp_client_poll_event(c);
    CHECK(ev && !strcmp(json_string_value(json_object_get(ev, "event")),
                        "EV_A") &&
          json_integer_value(json_object_get(json_object_get(ev, "data"),
                                             "seq")) == 0, "EV_A 0 queued");
    json_decref(ev);
    ev = mr_qmp_client_wait_event(c, NULL, 5000, &err);
    CHECK(ev && json_integer_value(json_object_get(json_object_get(ev, "data"),
                                                   "seq")) == 1, "EV_A 1");
    json_decref(ev);
    ev = mr_qmp_client_wait_event(c, "EV_A", 5000, &err);
    CHECK(ev != NULL, "EV_A 2");
    json_decref(ev);
    CHECK(mr_qmp_client_poll_event(c) == NULL, "queue empty");
    mr_error_clear(&err);
    ev = mr_qmp_client_wait_event(c, "NEVER", 50, &err);
    CHECK(!ev && err.code == -ETIMEDOUT &&
          !strcmp(err.msg, "timed out waiting for event NEVER"),
          "timeout: %s", err.msg);
}

static void test_listen_errors(void)
{
    struct mr_qmp_server_config cfg = { 10, 0, 2, "" };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_qmp_server *srv = mr_qmp_server_new(&cfg, &err);
    char longpath[200], file[] = "/tmp/mapram-qmp-notsock-XXXXXX";
    struct stat st;
    int fd;

    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    CHECK(mr_qmp_server_listen_unix(srv, longpath, &err) == -ENAMETOOLONG,
          "long path");
    CHECK(!strncmp(err.msg, "UNIX socket path '/xxx", 22), "%s", err.msg);
    mr_error_clear(&err);
    CHECK(mr_qmp_server_listen_unix(srv, "/nonexistent-dir/q.sock", &err) ==
              -ENOENT, "missing dir");
    CHECK(!strcmp(err.msg, "Failed to bind socket to /nonexistent-dir/q.sock:"
                           " No such file or directory"), "%s", err.msg);
    /* A regular file in the way is not a stale socket: left alone. */
    fd = mkstemp(file);
    close(fd);
    mr_error_clear(&err);
    CHECK(mr_qmp_server_listen_unix(srv, file, &err) == -EADDRINUSE,
          "file in the way: %s", err.msg);
    CHECK(stat(file, &st) == 0 && S_ISREG(st.st_mode), "file kept");
    unlink(file);
    mr_qmp_server_free(srv);
}

/* In-process server; events emitted from this (non-monitor) thread reach
 * a client waiting in another connection. */
static void test_in_process_events(void)
{
    struct mr_qmp_server_config cfg = { 10, 0, 2, "inproc" };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_qmp_server *srv = mr_qmp_server_new(&cfg, &err);
    struct mr_qmp_client *c;
    char sock[64];
    json_t *ev;

    snprintf(sock, sizeof(sock), "/tmp/mapram-qmpi-%d.sock", (int)getpid());
    CHECK(srv && mr_qmp_server_listen_unix(srv, sock, &err) == 0 &&
          mr_qmp_server_start(srv, &err) == 0, "in-process: %s", err.msg);
    CHECK(mr_qmp_server_listen_unix(srv, "/tmp/x.sock", &err) == -EBUSY,
          "listen after start refused");
    mr_error_clear(&err);
    c = mr_qmp_client_connect(sock, 5000, &err);
    CHECK(c != NULL, "connect in-process: %s", err.msg);
    if (c) {
        mr_qmp_server_emit_event(srv, "RESUME", NULL);
        mr_qmp_server_emit_event(srv, "MIGRATION",
                                 json_pack("{s:s}", "status", "active"));
        ev = mr_qmp_client_wait_event(c, "MIGRATION", 5000, &err);
        CHECK(ev && !strcmp(json_string_value(json_object_get(
                  json_object_get(ev, "data"), "status")), "active"),
              "cross-thread event: %s", err.msg);
        json_decref(ev);
        ev = mr_qmp_client_poll_event(c);
        CHECK(ev && !json_object_get(ev, "data"), "RESUME without data");
        json_decref(ev);
        mr_qmp_client_close(c);
    }
    mr_qmp_server_free(srv);
    CHECK(access(sock, F_OK) != 0, "socket removed by free");
}

/* Something that is not QMP on the socket (an SSH banner). */
static void test_not_qmp(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_qmp_client *c;
    int lfd;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/mapram-ssh-%d.sock",
             (int)getpid());
    unlink(sa.sun_path);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
          listen(lfd, 1) == 0, "fake server");
    if (fork() == 0) {
        int s = accept(lfd, NULL, NULL);

        if (write(s, "SSH-2.0-OpenSSH_9.2\r\n", 21) < 0)
            _exit(1);
        sleep(1);
        _exit(0);
    }
    c = mr_qmp_client_connect(sa.sun_path, 5000, &err);
    CHECK(!c && !strcmp(err.msg, "not a QMP monitor (unexpected data)"),
          "not QMP: %s", err.msg);
    wait(NULL);
    close(lfd);
    unlink(sa.sun_path);
}

int main(int argc, char **argv)
{
    struct mr_error err = MR_ERROR_INIT;
    char sock[64];
    struct mr_qmp_client *c;
    pid_t pid;
    int status;

    if (argc != 2) {
        fprintf(stderr, "usage: %s <qmp_test_server>\n", argv[0]);
        return 2;
    }
    test_listen_errors();
    test_not_qmp();
    test_in_process_events();
    snprintf(sock, sizeof(sock), "/tmp/mapram-qmpc-%d.sock", (int)getpid());
    c = mr_qmp_client_connect(sock, 0, &err);
    CHECK(!c && !strcmp(err.msg, "No such file or directory"),
          "connect to nothing: %s", err.msg);
    pid = start_server(argv[1], sock);
    if (pid < 0) {
        fprintf(stderr, "could not start %s\n", argv[1]);
        return 1;
    }
    mr_error_clear(&err);
    c = mr_qmp_client_connect(sock, 5000, &err);
    CHECK(c != NULL, "connect: %s", err.msg);
    if (c) {
        test_basics(c);
        test_fds(c);
        test_events(c);
        mr_qmp_client_close(c);
    }
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "server exit");
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    else
        printf("QMP client checks passed\n");
    return failures ? 1 : 0;
}
