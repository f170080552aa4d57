/* Unit tests for the multifd sending channels (src/lib/multifd/sock_send.c)
 * over socketpairs: what each channel carries is decoded with the wire
 * codec (handshake, SYNC first, packets with data and zero offsets). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "format/multifd_wire.h"
#include "multifd/sock_send.h"

#define NCH 2
#define PAGES 300

struct peer {
    int fd;                     /* the receiving end */
    uint8_t *buf;
    size_t len, cap;
    pthread_t t;
};

struct rig {
    int send_fd[NCH];
    struct peer peer[NCH];
};

static void *drain(void *arg)
{
    struct peer *p = arg;

    for (;;) {
        ssize_t n;

        if (p->len + 65536 > p->cap) {
            p->cap = (p->cap + 65536) * 2;
            p->buf = realloc(p->buf, p->cap);
        }
        n = read(p->fd, p->buf + p->len, p->cap - p->len);
        if (n <= 0)
            return NULL;
        p->len += (size_t)n;
    }
}

static int connect_pair(void *opaque, unsigned id, struct mr_error *err)
{
    struct rig *r = opaque;
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return mr_error_set(err, -1, "socketpair");
    r->peer[id].fd = sv[1];
    pthread_create(&r->peer[id].t, NULL, drain, &r->peer[id]);
    r->send_fd[id] = sv[0];
    return sv[0];
}

static const uint8_t uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

/* Decode one channel: handshake, SYNC, then packets; counts pages and
 * checks each data page holds its own page index. */
static void check_channel(struct peer *p, unsigned id, unsigned *normal,
                          unsigned *zero, unsigned *syncs)
{
    struct mr_mfd_block blk = { "pc.ram", PAGES * 4096ull };
    struct mr_mfd_blocks blocks = { &blk, 1 };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_mfd_handshake h;
    struct mr_mfd_packet pk;
    size_t pos = MR_MFD_HANDSHAKE_SIZE, idx;
    bool first = true;

    assert_int_equal(mr_mfd_handshake_decode(p->buf, p->len, uuid, NCH, &h,
                                             &err), 0);
    assert_int_equal(h.id, id);
    while (pos < p->len) {
        assert_int_equal(mr_mfd_packet_decode(p->buf + pos, p->len - pos,
                                              &blocks, &pk, &idx, &err), 0);
        if (first)
            assert_true(pk.flags & MR_MFD_FLAG_SYNC);
        first = false;
        pos += MR_MFD_HEADER_SIZE;
        *syncs += !!(pk.flags & MR_MFD_FLAG_SYNC);
        for (uint32_t i = 0; i < pk.normal_pages; i++) {
            uint64_t v;

            memcpy(&v, p->buf + pos + (size_t)i * 4096, 8);
            assert_int_equal(v, pk.offsets[i] / 4096);
        }
        *normal += pk.normal_pages;
        *zero += pk.zero_pages;
        pos += pk.next_packet_size;
    }
    assert_int_equal(pos, p->len);
}

static void sends_packets_and_syncs(void **state)
{
    struct rig r;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_sock_send *s;
    struct mr_sock_send_ticket t = { 0 };
    uint8_t *ram = calloc(PAGES, 4096);
    unsigned normal = 0, zero = 0, syncs = 0;

    (void)state;
    memset(&r, 0, sizeof(r));
    for (uint64_t i = 0; i < PAGES; i++)
        if (i % 3)
            memcpy(ram + i * 4096, &i, 8);
    assert_int_equal(mr_sock_send_open(NCH, uuid, connect_pair, &r, &s, &err),
                     0);
    assert_int_equal(mr_sock_send_sync(s, &err), 0);
    for (uint64_t a = 0; a < PAGES; a += 100) {
        uint64_t offs[100];
        struct iovec iov[100];
        struct mr_sock_send_pkt p = { .block = "pc.ram", .offsets = offs,
                                      .iov = iov, .ticket = &t };
        uint64_t zeros[100];

        for (uint64_t i = a; i < a + 100; i++) {
            if (i % 3 == 0) {
                zeros[p.zero_pages++] = i * 4096;
                continue;
            }
            offs[p.normal_pages++] = i * 4096;
            iov[p.iovcnt++] = (struct iovec){ ram + i * 4096, 4096 };
        }
        memcpy(offs + p.normal_pages, zeros, p.zero_pages * 8);
        assert_int_equal(mr_sock_send_packet(s, &p, &err), 0);
    }
    assert_int_equal(mr_sock_send_wait(s, &t, &err), 0);
    assert_int_equal(t.pending, 0);
    assert_int_equal(mr_sock_send_sync(s, &err), 0);
    assert_true(mr_sock_send_bytes(s) >= 200 * 4096u);
    mr_sock_send_close(s);
    for (unsigned i = 0; i < NCH; i++) {
        pthread_join(r.peer[i].t, NULL);
        check_channel(&r.peer[i], i, &normal, &zero, &syncs);
        close(r.peer[i].fd);
        free(r.peer[i].buf);
    }
    assert_int_equal(normal, 200);
    assert_int_equal(zero, 100);
    assert_int_equal(syncs, 2 * NCH);
    free(ram);
}

static void closed_peer_is_an_error(void **state)
{
    struct rig r;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_sock_send *s;
    int rc = 0;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(mr_sock_send_open(NCH, uuid, connect_pair, &r, &s, &err),
                     0);
    for (unsigned i = 0; i < NCH; i++) {
        shutdown(r.peer[i].fd, SHUT_RDWR);
        pthread_join(r.peer[i].t, NULL);
        close(r.peer[i].fd);
    }
    for (int k = 0; k < 100 && rc == 0; k++)
        rc = mr_sock_send_sync(s, &err);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err.msg, "closed the channel early"));
    mr_sock_send_close(s);
    for (unsigned i = 0; i < NCH; i++)
        free(r.peer[i].buf);
}

static void refuses_oversized_packet(void **state)
{
    struct rig r;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_sock_send *s;
    uint64_t offs[200] = { 0 };
    struct mr_sock_send_pkt p = { .block = "pc.ram", .offsets = offs,
                                  .zero_pages = 129 };

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(mr_sock_send_open(1, uuid, connect_pair, &r, &s, &err),
                     0);
    assert_int_not_equal(mr_sock_send_packet(s, &p, &err), 0);
    mr_sock_send_close(s);
    pthread_join(r.peer[0].t, NULL);
    close(r.peer[0].fd);
    free(r.peer[0].buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sends_packets_and_syncs),
        cmocka_unit_test(closed_peer_is_an_error),
        cmocka_unit_test(refuses_oversized_packet),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
