/* Unit tests for the checksum trailer (src/lib/format/cksum.c): extent
 * math, the loader's view of an extent (absent pages count as zeros), the
 * codec round trip, and hostile trailers and footers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "format/cksum.h"
#include "format/mapped_ram.h"
#include "mapram/crc32c.h"

static void extent_math(void **state)
{
    (void)state;
    assert_int_equal(mr_cksum_extent_pages(4096), 256);
    assert_int_equal(mr_cksum_extent_pages(2 << 20), 1);
    assert_int_equal(mr_cksum_nr_extents(64 << 20, 4096), 64);
    assert_int_equal(mr_cksum_nr_extents((1 << 20) + 4096, 4096), 2);
    assert_int_equal(mr_cksum_nr_extents(0, 4096), 0);
    assert_int_equal(mr_cksum_nr_extents(6 << 20, 2 << 20), 3);
}

/* Absent pages count as zeros whatever memory holds; present pages count
 * with their bytes; the last extent may be short. */
static void extent_view(void **state)
{
    enum { PS = 4096, NP = 300 };
    uint8_t *mem = calloc(NP, PS), *zero = calloc(NP, PS);
    uint8_t bm[(NP + 63) / 64 * 8] = { 0 };

    (void)state;
    for (int p = 0; p < NP; p++)
        mr_bitmap_le64_set(bm, (uint64_t)p);
    /* all zero and all present: equal to the CRC of 1 MiB of zeros */
    assert_int_equal(mr_cksum_extent(mem, PS, NP, 0, mr_cksum_present_le64, bm),
                     mr_crc32c(0, zero, 256 * PS));
    assert_int_equal(mr_cksum_extent(mem, PS, NP, 1, mr_cksum_present_le64, bm),
                     mr_crc32c(0, zero, 44 * PS));
    mem[5 * PS + 7] = 0x5a;
    uint32_t with = mr_cksum_extent(mem, PS, NP, 0, mr_cksum_present_le64, bm);
    assert_int_not_equal(with, mr_crc32c(0, zero, 256 * PS));
    assert_int_equal(with, mr_crc32c(0, mem, 256 * PS));
    /* page 5 absent: its bytes no longer count */
    mr_bitmap_le64_clear(bm, 5);
    assert_int_equal(mr_cksum_extent(mem, PS, NP, 0, mr_cksum_present_le64, bm),
                     mr_crc32c(0, zero, 256 * PS));
    free(mem);
    free(zero);
}

static void build(struct mr_cksum *ck)
{
    memset(ck, 0, sizeof(*ck));
    assert_int_equal(mr_cksum_add_block(ck, "pc.ram", 4096, 3 << 20,
                                        0x200000, NULL), 0);
    assert_int_equal(mr_cksum_add_block(ck, "pc.bios", 4096, 4096,
                                        0x600000, NULL), 0);
    for (uint64_t e = 0; e < 3; e++)
        ck->blocks[0].crc[e] = 0x11111111u * (uint32_t)(e + 1);
    ck->blocks[1].crc[0] = 0xdeadbeef;
}

static void round_trip(void **state)
{
    struct mr_cksum ck, back;
    size_t len;
    uint8_t *buf;

    (void)state;
    build(&ck);
    buf = mr_cksum_encode(&ck, &len);
    assert_non_null(buf);
    assert_int_equal(len, 32 + (42 + 6 + 12) + (42 + 7 + 4) + 4);
    assert_memory_equal(buf, "MRCKSUM1", 8);
    assert_int_equal(mr_cksum_decode(buf, len, &back, NULL), 0);
    assert_int_equal(back.nblocks, 2);
    assert_string_equal(back.blocks[1].name, "pc.bios");
    assert_int_equal(back.blocks[0].pages_offset, 0x200000);
    assert_int_equal(back.blocks[0].crc[2], 0x33333333u);
    assert_int_equal(mr_cksum_find(&back, "pc.bios")->crc[0], 0xdeadbeef);
    assert_null(mr_cksum_find(&back, "nope"));
    mr_cksum_free(&back);
    mr_cksum_free(&ck);
    free(buf);
}

/* Every single-byte change is caught by the trailer's own CRC, and every
 * truncation is refused; nothing crashes (ASan build). */
static void hostile_trailers(void **state)
{
    struct mr_cksum ck, back;
    struct mr_error err = MR_ERROR_INIT;
    size_t len;
    uint8_t *buf;

    (void)state;
    build(&ck);
    buf = mr_cksum_encode(&ck, &len);
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x40;
        assert_int_equal(mr_cksum_decode(buf, len, &back, NULL), -EINVAL);
        buf[i] ^= 0x40;
    }
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(mr_cksum_decode(buf, cut, &back, NULL), -EINVAL);
    buf[0] ^= 1;
    mr_cksum_decode(buf, len, &back, &err);
    assert_string_equal(err.msg, "checksum trailer: expected magic MRCKSUM1");
    buf[0] ^= 1;
    mr_error_clear(&err);
    buf[20] ^= 1;
    mr_cksum_decode(buf, len, &back, &err);
    assert_string_equal(err.msg, "checksum trailer: its own CRC32C does not "
                        "match (the trailer is corrupt)");
    mr_cksum_free(&ck);
    free(buf);
}

/* A file = junk stream + trailer + footer: found, stream end trimmed. */
static void footer_in_file(void **state)
{
    struct mr_cksum ck, back;
    struct mr_source src;
    struct mr_error err = MR_ERROR_INIT;
    size_t tlen;
    uint8_t *t, *file;
    bool have;

    (void)state;
    build(&ck);
    t = mr_cksum_encode(&ck, &tlen);
    file = calloc(1, 100 + tlen + MR_CKSUM_FOOTER_BYTES);
    memcpy(file + 100, t, tlen);
    mr_cksum_footer_encode(file + 100 + tlen, 100, tlen);
    mr_source_init_mem(&src, file, 100 + tlen + MR_CKSUM_FOOTER_BYTES);
    assert_int_equal(mr_cksum_open(&src, &back, &have, NULL), 0);
    assert_true(have);
    assert_int_equal(src.size, 100);
    assert_int_equal(back.blocks[0].crc[1], 0x22222222u);
    mr_cksum_free(&back);

    /* no footer at all: not an error */
    mr_source_init_mem(&src, file, 100);
    assert_int_equal(mr_cksum_open(&src, &back, &have, NULL), 0);
    assert_false(have);
    assert_int_equal(src.size, 100);

    /* a footer pointing elsewhere, or damaged */
    size_t fsz = 100 + tlen + MR_CKSUM_FOOTER_BYTES;
    mr_cksum_footer_encode(file + 100 + tlen, 99, tlen);
    mr_source_init_mem(&src, file, fsz);
    assert_int_equal(mr_cksum_open(&src, &back, &have, &err), -EINVAL);
    mr_error_clear(&err);
    mr_cksum_footer_encode(file + 100 + tlen, 100, tlen);
    file[fsz - 20] ^= 4;
    assert_int_equal(mr_cksum_open(&src, &back, &have, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "its CRC32C does not match"));
    mr_cksum_free(&ck);
    free(t);
    free(file);
}

static void spans(void **state)
{
    struct mr_cksum ck;
    struct mr_cksum_span sp[4];

    (void)state;
    build(&ck);   /* pc.ram 3 MiB at 2 MiB, pc.bios 4 KiB at 6 MiB */
    assert_int_equal(mr_cksum_spans(&ck, 0x1000, 0x700000, sp), 3);
    assert_int_equal(sp[0].off, 0x1000);
    assert_int_equal(sp[0].len, 0x1ff000);
    assert_int_equal(sp[1].off, 0x500000);
    assert_int_equal(sp[1].len, 0x100000);
    assert_int_equal(sp[2].off, 0x601000);
    assert_int_equal(sp[2].len, 0xff000);
    /* an area past the end, or overlapping another: refused */
    assert_int_equal(mr_cksum_spans(&ck, 0x1000, 0x600800, sp), -EINVAL);
    ck.blocks[1].pages_offset = 0x400000;
    assert_int_equal(mr_cksum_spans(&ck, 0x1000, 0x700000, sp), -EINVAL);
    mr_cksum_free(&ck);
}

/* The writer's log and a reader of the resulting file agree on the stream
 * CRC, with overwrites (later wins), holes (zeros) and writes that reach
 * into a pages area (ignored); and a changed byte changes it. */
static void stream_crc_log_vs_file(void **state)
{
    enum { SIZE = 0x700000 };
    struct mr_cksum ck;
    struct mr_cksum_log log = { 0 };
    struct mr_source src;
    uint8_t *file = calloc(1, SIZE), rec[3000];
    uint32_t a, b;

    (void)state;
    build(&ck);
    ck.stream_offset = 0x1000;
    for (size_t i = 0; i < sizeof(rec); i++)
        rec[i] = (uint8_t)(i * 7 + 1);
    const uint64_t offs[] = { 0x1000, 0x1800, 0x1fff000, 0x4ffc00, 0x600800,
                              0x1800 };
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        uint64_t off = offs[i] % SIZE;
        size_t len = i == 5 ? 10 : sizeof(rec);

        if (i == 5)
            rec[0] ^= 0xff;   /* a rewrite of a few bytes */
        assert_int_equal(mr_cksum_log_add(&log, rec, len, off), 0);
        memcpy(file + off, rec, off + len > SIZE ? SIZE - off : len);
    }
    /* page data in the areas does not count */
    memset(file + 0x200000, 0xab, 0x300000);
    mr_source_init_mem(&src, file, SIZE);
    assert_int_equal(mr_cksum_log_crc(&log, &ck, SIZE, &a, NULL), 0);
    assert_int_equal(mr_cksum_stream_crc(&src, &ck, SIZE, &b, NULL), 0);
    assert_int_equal(a, b);
    file[0x5fffff] ^= 1;
    assert_int_equal(mr_cksum_stream_crc(&src, &ck, SIZE, &b, NULL), 0);
    assert_int_not_equal(a, b);
    file[0x5fffff] ^= 1;
    file[0x200123] ^= 1;
    assert_int_equal(mr_cksum_stream_crc(&src, &ck, SIZE, &b, NULL), 0);
    assert_int_equal(a, b);
    mr_cksum_log_free(&log);
    mr_cksum_free(&ck);
    free(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(extent_math),
        cmocka_unit_test(extent_view),
        cmocka_unit_test(round_trip),
        cmocka_unit_test(hostile_trailers),
        cmocka_unit_test(footer_in_file),
        cmocka_unit_test(spans),
        cmocka_unit_test(stream_crc_log_vs_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
