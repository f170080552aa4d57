/* Unit tests for stream sockets (src/lib/util/sock.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/sock.h"

#define BIG (4u << 20)  /* more than a socket buffer: short writes happen */

struct writer {
    int fd;
    unsigned char *buf;
    int rc;
};

static void *write_big(void *arg)
{
    struct writer *w = arg;
    struct mr_error err = MR_ERROR_INIT;
    struct iovec v[3] = { { w->buf, 1 }, { w->buf + 1, 0 },
                          { w->buf + 1, BIG - 1 } };

    w->rc = mr_sock_writev_full(w->fd, v, 3, &err);
    return NULL;
}

static void whole_transfers(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    unsigned char *in = malloc(BIG), *out = malloc(BIG);
    struct writer w = { .buf = out };
    pthread_t t;
    size_t got = 7;
    int sv[2];

    (void)state;
    for (size_t i = 0; i < BIG; i++)
        out[i] = (unsigned char)(i * 131 + (i >> 12));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    w.fd = sv[0];
    assert_int_equal(pthread_create(&t, NULL, write_big, &w), 0);
    assert_int_equal(mr_sock_read_full(sv[1], in, BIG, &got, &err), 0);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, 0);
    assert_int_equal(got, BIG);
    assert_memory_equal(in, out, BIG);
    /* EOF part way: -EPIPE, what arrived, and no message. */
    assert_int_equal(mr_sock_write_full(sv[0], out, 10, &err), 0);
    close(sv[0]);
    assert_int_equal(mr_sock_read_full(sv[1], in, 64, &got, &err), -EPIPE);
    assert_int_equal(got, 10);
    assert_false(mr_error_is_set(&err));
    /* Writing to a closed peer is an error, not a SIGPIPE. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    assert_int_equal(mr_sock_write_full(sv[0], out, 10, &err), -EPIPE);
    assert_non_null(strstr(err.msg, "write to socket"));
    close(sv[0]);
    free(in);
    free(out);
}

static void unix_rendezvous(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    char dir[256], path[300];
    struct stat st;
    int lfd, c, a;

    (void)state;
    unsetenv("XDG_RUNTIME_DIR");
    assert_int_equal(mr_sock_private_dir(NULL, dir, sizeof(dir), &err), 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/s", dir);
    lfd = mr_sock_listen_unix(path, 4, &err);
    assert_true(lfd >= 0);
    c = mr_sock_connect_unix(path, &err);
    assert_true(c >= 0);
    a = mr_sock_accept(lfd, &err);
    assert_true(a >= 0);
    assert_int_equal(mr_sock_peer_pid(a), getpid());
    assert_int_equal(mr_sock_local_port(lfd), -1);
    close(a);
    close(c);
    close(lfd);
    /* A stale socket is replaced; a regular file is not. */
    lfd = mr_sock_listen_unix(path, 4, &err);
    assert_true(lfd >= 0);
    close(lfd);
    mr_sock_private_dir_remove(dir);
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_true(mr_sock_connect_unix(path, &err) < 0);
    assert_non_null(strstr(err.msg, "Failed to connect to '"));
    mr_error_clear(&err);
    snprintf(path, sizeof(path), "/tmp/mapram-sock-test.%d", getpid());
    close(open(path, O_CREAT | O_WRONLY, 0600));
    assert_int_equal(mr_sock_listen_unix(path, 4, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "Failed to bind socket to"));
    unlink(path);
}

static void tcp_loopback(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    char port[16], buf[4];
    int lfd, c, a;

    (void)state;
    lfd = mr_sock_listen_tcp("127.0.0.1", "0", 4, &err);
    assert_true(lfd >= 0);
    assert_true(mr_sock_local_port(lfd) > 0);
    snprintf(port, sizeof(port), "%d", mr_sock_local_port(lfd));
    c = mr_sock_connect_tcp("127.0.0.1", port, &err);
    assert_true(c >= 0);
    a = mr_sock_accept(lfd, &err);
    assert_true(a >= 0);
    assert_int_equal(mr_sock_peer_pid(a), -1);
    assert_int_equal(mr_sock_write_full(c, "QEVM", 4, &err), 0);
    assert_int_equal(mr_sock_read_full(a, buf, 4, NULL, &err), 0);
    assert_memory_equal(buf, "QEVM", 4);
    close(a);
    close(c);
    close(lfd);
    /* Nobody listens there any more. */
    assert_true(mr_sock_connect_tcp("127.0.0.1", port, &err) < 0);
    assert_non_null(strstr(err.msg, "Failed to connect to '127.0.0.1:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole_transfers),
        cmocka_unit_test(unix_rendezvous),
        cmocka_unit_test(tcp_loopback),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
