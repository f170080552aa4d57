/* Unit tests for the socket save's pieces (src/lib/peer/): the CRC32C
 * chaining the extent checksums use, and the main-stream transcoder on a
 * synthetic socket stream, whose output must walk as a sound mapped-ram
 * stream with mapram's own offline reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/bytebuf.h"
#include "mapram/crc32c.h"
#include "mapram/image.h"
#include "peer/peer_save_internal.h"

static void crc_append(void **state)
{
    uint8_t a[5000], b[4096];

    (void)state;
    for (size_t i = 0; i < sizeof(a); i++)
        a[i] = (uint8_t)(i * 7 + 3);
    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (uint8_t)(i * 13 + 1);
    assert_int_equal(peer_crc32c_append(mr_crc32c(0, a, sizeof(a)),
                                        mr_crc32c(0, b, sizeof(b)), sizeof(b)),
                     mr_crc32c(mr_crc32c(0, a, sizeof(a)), b, sizeof(b)));
    assert_int_equal(peer_crc32c_append(0, mr_crc32c(0, b, sizeof(b)),
                                        sizeof(b)), mr_crc32c(0, b, sizeof(b)));
}

struct env {
    const uint8_t *in;
    size_t left;
    uint8_t reply[64];
    size_t reply_len;
    unsigned syncs, zeros, nblocks;
    int fd;
};

static ssize_t t_read(void *o, void *buf, size_t cap)
{
    struct env *e = o;
    size_t n = cap < 3 ? cap : 3;       /* in small pieces */

    n = n < e->left ? n : e->left;
    memcpy(buf, e->in, n);
    e->in += n;
    e->left -= n;
    return (ssize_t)n;
}

static int t_reply(void *o, const void *buf, size_t len, struct mr_error *err)
{
    struct env *e = o;

    (void)err;
    memcpy(e->reply + e->reply_len, buf, len);
    e->reply_len += len;
    return 0;
}

static int t_blocks(void *o, const struct peer_block *b, size_t n,
                    struct mr_error *err)
{
    struct env *e = o;

    (void)err;
    e->nblocks = (unsigned)n;
    assert_int_equal(b[0].pages_offset % (1 << 20), 0);
    return 0;
}

static int t_sync(void *o, struct mr_error *err)
{
    (void)err;
    ((struct env *)o)->syncs++;
    return 0;
}

static int t_zero(void *o, size_t block, uint64_t off, struct mr_error *err)
{
    (void)err;
    assert_int_equal(block, 0);
    assert_int_equal(off, 0x2000);
    ((struct env *)o)->zeros++;
    return 0;
}

static int t_pwrite(void *o, const void *buf, size_t len, uint64_t off,
                    struct mr_error *err)
{
    (void)err;
    return pwrite(((struct env *)o)->fd, buf, len, (off_t)off) ==
           (ssize_t)len ? 0 : -5;
}

static void footer(struct bytebuf *b)
{
    bb_u8(b, 0x7e);
    bb_be32(b, 1);
}

static void socket_stream(struct bytebuf *b, bool eof)
{
    const char *json = "{\"page_size\":4096,\"devices\":[]}";

    bb_stream_magic(b);
    bb_stream_config(b, "pc-q35-10.0", false);
    bb_put(b, "\x08\x00\x01\x00\x00", 5);                  /* OPEN_RETURN_PATH */
    bb_put(b, "\x08\x00\x02\x00\x04\x00\x00\x00\x07", 9);  /* PING 7 */
    bb_ram_section_start(b);
    bb_be64(b, (0x10000 + 0x1000) | 4);
    bb_str(b, "mem");
    bb_be64(b, 0x10000);
    bb_str(b, "pc.bios");
    bb_be64(b, 0x1000);
    bb_be64(b, 0x200);
    bb_be64(b, 0x10);
    footer(b);
    bb_u8(b, 0x02);
    bb_be32(b, 1);
    bb_be64(b, 0x2000 | 2);                                /* legacy ZERO */
    bb_str(b, "mem");
    bb_u8(b, 0);
    bb_be64(b, 0x200);
    bb_be64(b, 0x10);
    footer(b);
    bb_u8(b, 0x03);
    bb_be32(b, 1);
    bb_be64(b, 0x200);
    bb_be64(b, 0x10);
    footer(b);
    if (!eof)
        return;
    bb_u8(b, 0x00);
    bb_u8(b, 0x06);
    bb_be32(b, (uint32_t)strlen(json));
    bb_put(b, json, strlen(json));
}

static int transcode(struct env *e, const struct bytebuf *b,
                     struct peer_stream_result *res, struct mr_error *err)
{
    struct peer_stream_ops ops = { t_read, t_reply, t_blocks, t_sync, t_zero,
                                   e };
    struct mr_stream_sink sink = { t_pwrite, e };
    struct mr_stream_writer w;
    struct peer_block *blocks = NULL;
    size_t n = 0;
    int rc;

    e->in = b->data;
    e->left = b->len;
    assert_int_equal(mr_sw_init(&w, &sink, 4096, err), 0);
    rc = peer_stream_transcode(&ops, &w, &blocks, &n, res, err);
    free(blocks);
    mr_sw_destroy(&w);
    return rc;
}

static void transcoder(void **state)
{
    struct bytebuf b = { 0 };
    struct env e = { 0 };
    struct peer_stream_result res;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_walk w;

    (void)state;
    socket_stream(&b, true);
    e.fd = memfd_create("peer", 0);
    assert_true(e.fd >= 0);
    assert_int_equal(transcode(&e, &b, &res, &err), 0);
    assert_true(res.return_path);
    assert_false(res.per_section);
    assert_int_equal(res.syncs, 3);
    assert_int_equal(e.syncs, 3);
    assert_int_equal(e.zeros, 1);
    assert_int_equal(e.nblocks, 2);
    assert_int_equal(e.reply_len, 8);
    assert_memory_equal(e.reply, "\x00\x02\x00\x04\x00\x00\x00\x07", 8);
    /* the file side walks as a mapped-ram stream */
    assert_int_equal(mr_image_walk(e.fd, 4096, &w, &err), 0);
    assert_true(w.mapped_ram);
    assert_true(w.ram_complete && w.eof_seen && w.vmdesc_present);
    assert_int_equal(w.nr_blocks, 2);
    mr_walk_free(&w);
    close(e.fd);
    bb_free(&b);
}

static void no_eof(void **state)
{
    struct bytebuf b = { 0 };
    struct env e = { 0 };
    struct peer_stream_result res;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    socket_stream(&b, false);
    e.fd = memfd_create("peer", 0);
    assert_true(transcode(&e, &b, &res, &err) < 0);
    assert_non_null(strstr(err.msg, "ended early"));
    close(e.fd);
    bb_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc_append),
        cmocka_unit_test(transcoder),
        cmocka_unit_test(no_eof),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
