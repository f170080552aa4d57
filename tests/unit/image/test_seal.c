/* Unit tests for sealing (src/lib/image/seal.c): the trailer it adds is
 * the one verify and the loader check, what cannot be sealed is refused,
 * and a seal cut at any write or sync leaves the file unsealed or sealed,
 * never unreadable. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bytebuf.h"
#include "image/seal.h"
#include "image/verify.h"

#define PS 4096
#define NPAGES 300              /* two extents: 256 pages and 44 */

/* A mapped-ram stream at `at` (after a prefix), one block "pc.ram" whose
 * page i holds byte (i + 1); every third page absent. */
static void put_stream(struct bytebuf *b, bool mapped_ram)
{
    /* One device section: the walk needs the VMDESCRIPTION at the end
     * of the stream to skip it, which an unfinished trailer would hide. */
    static const char json[] = "{\"devices\":[{\"name\":\"dev\","
        "\"instance_id\":0,\"fields\":[{\"name\":\"a\",\"size\":20}]}]}";
    uint8_t bm[(NPAGES + 63) / 64 * 8] = { 0 };
    uint64_t h, pages;

    bb_stream_magic(b);
    bb_stream_config(b, "pc", mapped_ram);
    bb_ram_section_start(b);
    bb_be64(b, (uint64_t)NPAGES * PS | 4);
    bb_str(b, "pc.ram");
    bb_be64(b, (uint64_t)NPAGES * PS);
    if (mapped_ram) {
        h = b->len;
        pages = (h + 28 + sizeof(bm) + PS - 1) / PS * PS;
        bb_be32(b, 1);
        bb_be64(b, PS);
        bb_be64(b, h + 28);
        bb_be64(b, pages);
        for (int i = 0; i < NPAGES; i++)
            if (i % 3)
                bm[i / 8] |= (uint8_t)(1u << (i % 8));
        bb_put(b, bm, sizeof(bm));
        bb_pad_to(b, pages);
        for (int i = 0; i < NPAGES; i++) {
            uint8_t page[PS];

            memset(page, i + 1, sizeof(page));
            bb_put(b, page, sizeof(page));
        }
    }
    bb_be64(b, 0x10);
    bb_u8(b, 0x7e);
    bb_be32(b, 1);
    bb_u8(b, 0x03);
    bb_be32(b, 1);
    bb_be64(b, 0x10);
    bb_u8(b, 0x7e);
    bb_be32(b, 1);
    bb_u8(b, 0x04);
    bb_be32(b, 2);
    bb_str(b, "dev");
    bb_be32(b, 0);
    bb_be32(b, 1);
    bb_put(b, "AAAABBBBBBBBCCCCCCCC", 20);
    bb_u8(b, 0x7e);
    bb_be32(b, 2);
    bb_u8(b, 0x00);
    bb_u8(b, 0x06);
    bb_be32(b, (uint32_t)strlen(json));
    bb_put(b, json, strlen(json));
}

static int temp_file(const struct bytebuf *b)
{
    char path[] = "/tmp/mapram-test-seal-XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(pwrite(fd, b->data, b->len, 0), (ssize_t)b->len);
    return fd;
}

static int walk(int fd, struct mr_walk *w)
{
    struct mr_error err = MR_ERROR_INIT;

    return mr_image_walk(fd, -1, w, &err);
}

/* Walk and verify; returns verify's code, message in err. */
static int walk_verify(int fd, struct mr_walk *w, struct mr_verify_report *r,
                       struct mr_error *err)
{
    mr_error_clear(err);
    assert_int_equal(walk(fd, w), 0);
    return mr_image_verify(fd, w, r, err);
}

static void flip(int fd, uint64_t off)
{
    uint8_t c;

    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
}

static void seal_then_verify(void **state)
{
    struct bytebuf b = { 0 };
    struct mr_walk w;
    struct mr_seal_report rep;
    struct mr_verify_report vr;
    struct mr_error err = MR_ERROR_INIT;
    uint64_t pages, size;
    int fd;

    (void)state;
    put_stream(&b, true);
    size = b.len;
    fd = temp_file(&b);
    assert_int_equal(walk(fd, &w), 0);
    assert_false(w.have_cksum);
    pages = w.blocks[0].entry.pages_offset;
    assert_int_equal(mr_image_seal(fd, &w, &rep, &err), 0);
    assert_int_equal(rep.blocks, 1);
    assert_int_equal(rep.extents, 2);
    assert_int_equal(rep.data_bytes, 200ULL * PS);
    assert_int_equal(rep.trailer_offset, size);
    assert_false(rep.replaced_unfinished);
    mr_walk_free(&w);

    assert_int_equal(walk_verify(fd, &w, &vr, &err), 0);
    assert_true(w.have_cksum);
    assert_int_equal(w.cksum_offset, size);
    assert_int_equal(w.nr_problems, 0);
    assert_true(vr.checksums);
    assert_int_equal(vr.extents, 2);
    assert_int_equal(mr_image_seal(fd, &w, &rep, &err), -EALREADY);
    mr_walk_free(&w);

    /* An absent page's bytes are not what a loader reads: no change. */
    flip(fd, pages + 3 * PS + 7);
    assert_int_equal(walk_verify(fd, &w, &vr, &err), 0);
    mr_walk_free(&w);
    flip(fd, pages + 257 * PS + 7);
    assert_int_equal(walk_verify(fd, &w, &vr, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "checksum mismatch in RAM block pc.ram "
                           "extent 1"));
    mr_walk_free(&w);
    flip(fd, pages + 257 * PS + 7);
    flip(fd, pages - 1);        /* alignment padding: in the stream CRC */
    assert_int_equal(walk_verify(fd, &w, &vr, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "stream checksum mismatch"));
    mr_walk_free(&w);
    close(fd);
    bb_free(&b);
}

static void refusals(void **state)
{
    struct bytebuf b = { 0 };
    struct mr_walk w;
    struct mr_seal_report rep;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t head[0x1000] = "LibvirtQemudPart";
    int fd;

    (void)state;
    put_stream(&b, false);
    fd = temp_file(&b);
    assert_int_equal(walk(fd, &w), 0);
    assert_int_equal(mr_image_seal(fd, &w, &rep, &err), -ENOTSUP);
    assert_non_null(strstr(err.msg, "legacy stream"));
    mr_walk_free(&w);
    close(fd);
    bb_free(&b);

    /* libvirt's Part: the save never finished. */
    head[16] = 2;
    head[20] = (0x1000 - 92) & 0xff;
    head[21] = (0x1000 - 92) >> 8;
    bb_put(&b, head, sizeof(head));
    put_stream(&b, true);
    fd = temp_file(&b);
    walk(fd, &w);
    assert_true(w.loc.incomplete);
    mr_error_clear(&err);
    assert_int_equal(mr_image_seal(fd, &w, &rep, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "incomplete image"));
    mr_walk_free(&w);

    /* The same image completed: sealed, the stream read from 0x1000. */
    memcpy(head + 12, "Save", 4);
    assert_int_equal(pwrite(fd, head, 16, 0), 16);
    assert_int_equal(walk(fd, &w), 0);
    assert_int_equal(mr_image_seal(fd, &w, &rep, &err), 0);
    mr_walk_free(&w);
    assert_int_equal(walk(fd, &w), 0);
    assert_true(w.have_cksum);
    assert_int_equal(w.cksum.stream_offset, 0x1000);
    mr_walk_free(&w);
    close(fd);
    bb_free(&b);
}

/* The io seam: the Nth pwrite or fdatasync fails; a failing pwrite
 * first writes half its bytes (a torn write).  With `crash` every later
 * call fails too (nothing after the fault reaches the disk), without it
 * the process survives and seal takes its writes back. */
static int calls, fail_at;
static bool crash, crashed;

/* 0: go ahead; 1: this is the faulted call; 2: after a crash. */
static int fails(void)
{
    if (crashed)
        return 2;
    if (++calls != fail_at)
        return 0;
    crashed = crash;
    return 1;
}

static ssize_t torn_pwrite(int fd, const void *buf, size_t count, off_t off)
{
    int f = fails();

    if (f == 1 && count > 1 && pwrite(fd, buf, count / 2, off) < 0)
        return -1;
    if (f) {
        errno = EIO;
        return -1;
    }
    return pwrite(fd, buf, count, off);
}

static int failing_fdatasync(int fd)
{
    if (fails()) {
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

static int failing_ftruncate(int fd, off_t len)
{
    if (crashed) {
        errno = EIO;
        return -1;
    }
    return ftruncate(fd, len);
}

/* Reseal a file an interrupted seal left unsealed. */
static void reseal(int fd, struct mr_walk *w)
{
    const struct mr_sys *sys = mr_sys_default();
    struct mr_seal_report rep;
    struct mr_verify_report vr;
    struct mr_error err = MR_ERROR_INIT;
    bool unfinished = w->unfinished_trailer;

    assert_int_equal(mr_seal_file(sys, fd, w, &rep, &err), 0);
    assert_int_equal(rep.replaced_unfinished, unfinished);
    mr_walk_free(w);
    assert_int_equal(walk_verify(fd, w, &vr, &err), 0);
    assert_true(w->have_cksum);
    assert_int_equal(vr.extents, 2);
}

static void interrupted_seal(void **state)
{
    struct bytebuf b = { 0 };
    struct mr_sys sys = *mr_sys_default();
    struct mr_walk w;
    struct mr_seal_report rep;
    struct mr_verify_report vr;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t *back = malloc(1 << 21);

    (void)state;
    sys.pwrite = torn_pwrite;
    sys.fdatasync = failing_fdatasync;
    sys.ftruncate = failing_ftruncate;
    put_stream(&b, true);
    /* Calls: trailer pwrite, sync, footer pwrite, sync; 5: none fails. */
    for (int mode = 0; mode < 2; mode++) {
        for (fail_at = 1; fail_at <= 5; fail_at++) {
            int fd = temp_file(&b), rc;

            calls = 0;
            crash = mode;
            crashed = false;
            assert_int_equal(walk(fd, &w), 0);
            mr_error_clear(&err);
            rc = mr_seal_file(&sys, fd, &w, &rep, &err);
            assert_int_equal(rc, fail_at <= 4 ? -EIO : 0);
            mr_walk_free(&w);
            /* Whatever happened, the file reads as sound. */
            assert_int_equal(walk_verify(fd, &w, &vr, &err), 0);
            assert_int_equal(w.nr_problems, 0);
            if (fail_at == 5) {
                assert_true(w.have_cksum);
            } else if (crash) {
                /* Sealed only once the footer was written (4: its sync
                 * failed, the page cache holds it). */
                assert_int_equal(w.have_cksum, fail_at == 4);
                assert_int_equal(w.unfinished_trailer, fail_at <= 3);
            } else {
                /* Survived: every write taken back, byte for byte. */
                assert_false(w.have_cksum);
                assert_int_equal(pread(fd, back, b.len + 1, 0),
                                 (ssize_t)b.len);
                assert_memory_equal(back, b.data, b.len);
            }
            if (!w.have_cksum)
                reseal(fd, &w);
            mr_walk_free(&w);
            close(fd);
        }
    }
    free(back);
    bb_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seal_then_verify),
        cmocka_unit_test(refusals),
        cmocka_unit_test(interrupted_seal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
