/* Unit tests for the multifd socket receiver core
 * (src/lib/multifd/sock_recv.c): sorting connections, the handshake and
 * peer checks, page delivery into the sink's memory, the SYNC barrier and
 * a channel that ends before its SYNC.  Sockets are real UNIX sockets of
 * this process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "format/multifd_wire.h"
#include "multifd/sock_recv.h"
#include "util/sock.h"

#define PAGES 16

struct sink {
    uint8_t mem[PAGES * MR_MFD_PAGE_SIZE];
    unsigned packets;
};

static int prepare(void *opaque, unsigned ch, const struct mr_mfd_packet *p,
                   size_t block, struct iovec *iov, struct mr_error *err)
{
    struct sink *s = opaque;

    (void)ch, (void)block, (void)err;
    for (uint32_t i = 0; i < p->normal_pages; i++) {
        iov[i].iov_base = s->mem + p->offsets[i];
        iov[i].iov_len = MR_MFD_PAGE_SIZE;
    }
    return 0;
}

static int done(void *opaque, unsigned ch, const struct mr_mfd_packet *p,
                size_t block, struct mr_error *err)
{
    struct sink *s = opaque;

    (void)ch, (void)p, (void)block, (void)err;
    __atomic_fetch_add(&s->packets, 1, __ATOMIC_RELAXED);
    return 0;
}

static const struct mr_mfd_block block_v[] = { { "mem", PAGES * 4096 } };
static const struct mr_mfd_blocks blocks = { block_v, 1 };

struct rig {
    char dir[256], path[300];
    int lfd, fds[3];            /* two page channels, then main */
    struct sink sink;
    struct mr_sock_recv *r;
};

static void rig_up(struct rig *g, int pid)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_sock_recv_config cfg = {
        .nchannels = 2, .expected_pid = pid, .accept_timeout_ms = 5000,
        .sink = { .prepare = prepare, .done = done, .opaque = &g->sink },
    };
    uint8_t hs[MR_MFD_HANDSHAKE_SIZE];

    memset(g, 0, sizeof(*g));
    assert_int_equal(mr_sock_private_dir(NULL, g->dir, sizeof(g->dir), &err), 0);
    snprintf(g->path, sizeof(g->path), "%s/s", g->dir);
    g->lfd = mr_sock_listen_unix(g->path, 4, &err);
    assert_true(g->lfd >= 0);
    assert_int_equal(mr_sock_recv_new(&cfg, &g->r, &err), 0);
    for (int i = 0; i < 3; i++) {
        g->fds[i] = mr_sock_connect_unix(g->path, &err);
        assert_true(g->fds[i] >= 0);
    }
    for (int i = 0; i < 2; i++) {
        struct mr_mfd_handshake h = { .id = (uint8_t)(1 - i) };

        mr_mfd_handshake_encode(&h, hs);
        assert_int_equal(mr_sock_write_full(g->fds[i], hs, sizeof(hs), &err), 0);
    }
    assert_int_equal(mr_sock_write_full(g->fds[2], "QEVM", 4, &err), 0);
}

static void rig_down(struct rig *g)
{
    mr_sock_recv_free(g->r);
    for (int i = 0; i < 3; i++)
        close(g->fds[i]);
    close(g->lfd);
    mr_sock_private_dir_remove(g->dir);
}

static void send_sync(int fd, uint64_t n)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_mfd_packet p;
    uint8_t hdr[MR_MFD_HEADER_SIZE];

    mr_mfd_packet_sync(&p, n);
    mr_mfd_packet_encode(&p, hdr);
    assert_int_equal(mr_sock_write_full(fd, hdr, sizeof(hdr), &err), 0);
}

static void send_page(int fd, uint64_t off, uint8_t fill)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_mfd_packet p;
    uint8_t hdr[MR_MFD_HEADER_SIZE], page[MR_MFD_PAGE_SIZE];

    memset(&p, 0, sizeof(p));
    p.pages_alloc = MR_MFD_PACKET_PAGES;
    p.normal_pages = 1;
    p.next_packet_size = MR_MFD_PAGE_SIZE;
    p.offsets[0] = off;
    snprintf(p.block, sizeof(p.block), "mem");
    mr_mfd_packet_encode(&p, hdr);
    memset(page, fill, sizeof(page));
    assert_int_equal(mr_sock_write_full(fd, hdr, sizeof(hdr), &err), 0);
    assert_int_equal(mr_sock_write_full(fd, page, sizeof(page), &err), 0);
}

static void epochs(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct rig g;
    int main_fd = -1;

    (void)state;
    rig_up(&g, getpid());
    assert_int_equal(mr_sock_recv_accept(g.r, g.lfd, &main_fd, &err), 0);
    assert_true(main_fd >= 0);
    for (int i = 0; i < 2; i++)
        send_sync(g.fds[i], (uint64_t)i);
    mr_sock_recv_set_blocks(g.r, &blocks);
    assert_int_equal(mr_sock_recv_sync(g.r, &err), 0);
    /* epoch 1: page 3 from one channel; epoch 2: the same page again */
    send_page(g.fds[0], 3 * 4096, 0xaa);
    send_sync(g.fds[0], 3);
    send_sync(g.fds[1], 4);
    assert_int_equal(mr_sock_recv_sync(g.r, &err), 0);
    assert_int_equal(g.sink.mem[3 * 4096], 0xaa);
    send_page(g.fds[1], 3 * 4096, 0x55);
    send_sync(g.fds[1], 5);
    send_sync(g.fds[0], 6);
    assert_int_equal(mr_sock_recv_sync(g.r, &err), 0);
    assert_int_equal(g.sink.mem[3 * 4096 + 4095], 0x55);
    assert_int_equal(g.sink.packets, 2);
    /* a channel that closes instead of its SYNC */
    send_sync(g.fds[0], 7);
    shutdown(g.fds[1], SHUT_WR);
    assert_true(mr_sock_recv_sync(g.r, &err) < 0);
    assert_non_null(strstr(err.msg, "closed before its SYNC"));
    rig_down(&g);
}

static void bad_offset(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct rig g;
    int main_fd = -1;

    (void)state;
    rig_up(&g, getpid());
    assert_int_equal(mr_sock_recv_accept(g.r, g.lfd, &main_fd, &err), 0);
    mr_sock_recv_set_blocks(g.r, &blocks);
    send_page(g.fds[0], PAGES * 4096, 1);
    assert_true(mr_sock_recv_sync(g.r, &err) < 0);
    assert_non_null(strstr(err.msg, "multifd: offset too long"));
    rig_down(&g);
}

static void foreign_peer(void **state)
{
    struct mr_error err = MR_ERROR_INIT;
    struct rig g;
    int main_fd = -1;

    (void)state;
    rig_up(&g, 1);
    assert_true(mr_sock_recv_accept(g.r, g.lfd, &main_fd, &err) < 0);
    assert_non_null(strstr(err.msg, "only the VM (pid 1) may connect"));
    rig_down(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(epochs),
        cmocka_unit_test(bad_offset),
        cmocka_unit_test(foreign_peer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
