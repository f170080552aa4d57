/* Unit tests for the multifd socket wire codec (src/lib/format/multifd_wire.c):
 * the byte layout of docs/multifd.md, "Over sockets", round trips,
 * and every refusal with its message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "format/multifd_wire.h"

static const uint8_t uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8,
                                  9, 10, 11, 12, 13, 14, 15, 16 };
static const struct mr_mfd_block block_v[] = {
    { "mem", 0x4000000 }, { "pc.bios", 0x40000 },
};
static const struct mr_mfd_blocks blocks = { block_v, 2 };

static void handshake_layout(void **state)
{
    struct mr_mfd_handshake h = { .id = 3 }, got;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t b[MR_MFD_HANDSHAKE_SIZE];
    static const uint8_t head[8] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1 };

    (void)state;
    memcpy(h.uuid, uuid, 16);
    mr_mfd_handshake_encode(&h, b);
    assert_memory_equal(b, head, 8);
    assert_memory_equal(b + 8, uuid, 16);
    assert_int_equal(b[24], 3);
    for (int i = 25; i < 64; i++)
        assert_int_equal(b[i], 0);
    assert_int_equal(mr_mfd_handshake_decode(b, 64, uuid, 4, &got, &err), 0);
    assert_int_equal(got.id, 3);
}

static void handshake_refusals(void **state)
{
    struct mr_mfd_handshake h = { .id = 2 }, got;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t b[MR_MFD_HANDSHAKE_SIZE], other[16] = { 0 };

    (void)state;
    memcpy(h.uuid, uuid, 16);
    mr_mfd_handshake_encode(&h, b);
    err = (struct mr_error)MR_ERROR_INIT;
    assert_int_not_equal(mr_mfd_handshake_decode(b, 63, uuid, 4, &got, &err), 0);
    err = (struct mr_error)MR_ERROR_INIT;
    assert_int_not_equal(mr_mfd_handshake_decode(b, 64, uuid, 2, &got, &err), 0);
    assert_string_equal(err.msg, "multifd: received channel id 2 is greater "
                        "than number of channels 2");
    err = (struct mr_error)MR_ERROR_INIT;
    assert_int_not_equal(mr_mfd_handshake_decode(b, 64, other, 4, &got, &err), 0);
    assert_string_equal(err.msg, "multifd: received uuid "
                        "'01020304-0506-0708-090a-0b0c0d0e0f10' and expected "
                        "uuid '00000000-0000-0000-0000-000000000000' for "
                        "channel 2");
    b[7] = 2;
    err = (struct mr_error)MR_ERROR_INIT;
    assert_int_not_equal(mr_mfd_handshake_decode(b, 64, uuid, 4, &got, &err), 0);
    assert_string_equal(err.msg, "multifd: received packet version 2 expected 1");
    b[0] = 0x12;
    err = (struct mr_error)MR_ERROR_INIT;
    assert_int_not_equal(mr_mfd_handshake_decode(b, 64, uuid, 4, &got, &err), 0);
    assert_string_equal(err.msg, "multifd: received packet magic 12223344 "
                        "expected 11223344");
}

static void data_packet(struct mr_mfd_packet *p)
{
    memset(p, 0, sizeof(*p));
    p->pages_alloc = MR_MFD_PACKET_PAGES;
    p->normal_pages = 2;
    p->zero_pages = 1;
    p->next_packet_size = 2 * 4096;
    p->packet_num = 0x0102030405060708ull;
    strcpy(p->block, "pc.bios");
    p->offsets[0] = 0x1000;
    p->offsets[1] = 0x3f000;
    p->offsets[2] = 0;
}

static void packet_layout_and_round_trip(void **state)
{
    struct mr_mfd_packet p, got;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t b[MR_MFD_HEADER_SIZE];
    size_t idx;

    (void)state;
    assert_int_equal(MR_MFD_HEADER_SIZE, 0x540);
    data_packet(&p);
    mr_mfd_packet_encode(&p, b);
    assert_int_equal(b[15], 128);               /* pages_alloc */
    assert_int_equal(b[19], 2);                 /* normal_pages */
    assert_int_equal(b[22], 0x20);              /* next_packet_size 0x2000 */
    assert_int_equal(b[24], 1);                 /* packet_num, be64 */
    assert_int_equal(b[35], 1);                 /* zero_pages */
    assert_string_equal((char *)b + 64, "pc.bios");
    assert_int_equal(b[320 + 6], 0x10);         /* offset[0] = 0x1000 */
    assert_int_equal(b[328 + 5], 0x03);         /* offset[1] = 0x3f000 */
    assert_int_equal(mr_mfd_packet_decode(b, sizeof(b), &blocks, &got, &idx,
                                          &err), 0);
    assert_int_equal(idx, 1);
    assert_int_equal(got.normal_pages, 2);
    assert_int_equal(got.zero_pages, 1);
    assert_int_equal(got.packet_num, p.packet_num);
    assert_int_equal(got.offsets[1], 0x3f000);
}

static void sync_packet(void **state)
{
    struct mr_mfd_packet p, got;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t b[MR_MFD_HEADER_SIZE];
    size_t idx;

    (void)state;
    mr_mfd_packet_sync(&p, 7);
    mr_mfd_packet_encode(&p, b);
    assert_int_equal(b[11], 1);
    for (unsigned i = 12; i < MR_MFD_HEADER_SIZE; i++)
        assert_int_equal(b[i], i == 31 ? 7 : 0);
    assert_int_equal(mr_mfd_packet_decode(b, sizeof(b), &blocks, &got, &idx,
                                          &err), 0);
    assert_int_equal(idx, SIZE_MAX);
    assert_int_equal(got.flags, MR_MFD_FLAG_SYNC);
}

static const char *refuse(struct mr_mfd_packet *p, size_t len)
{
    static struct mr_error err;
    struct mr_mfd_packet got;
    uint8_t b[MR_MFD_HEADER_SIZE];
    size_t idx;

    err = (struct mr_error)MR_ERROR_INIT;
    mr_mfd_packet_encode(p, b);
    if (mr_mfd_packet_decode(b, len, &blocks, &got, &idx, &err) == 0)
        return NULL;
    return err.msg;
}

static void packet_refusals(void **state)
{
    struct mr_mfd_packet p;

    (void)state;
    data_packet(&p);
    assert_string_equal(refuse(&p, 100), "multifd: unexpected EOF after "
                        "packet header");
    p.pages_alloc = 129;
    assert_string_equal(refuse(&p, MR_MFD_HEADER_SIZE), "multifd: received "
                        "packet with 129 pages, expected 128");
    p.pages_alloc = 1;
    assert_string_equal(refuse(&p, MR_MFD_HEADER_SIZE), "multifd: received "
                        "packet with 2 non-zero pages, which exceeds maximum "
                        "expected pages 1");
    p.pages_alloc = 2;
    assert_string_equal(refuse(&p, MR_MFD_HEADER_SIZE), "multifd: received "
                        "packet with 1 zero pages, expected maximum 0");
    data_packet(&p);
    p.next_packet_size = 4096;
    assert_non_null(refuse(&p, MR_MFD_HEADER_SIZE));
    data_packet(&p);
    strcpy(p.block, "nosuch");
    assert_string_equal(refuse(&p, MR_MFD_HEADER_SIZE), "multifd: unknown "
                        "ram block nosuch");
    data_packet(&p);
    p.offsets[2] = 0x40000;  /* a zero page one past the block */
    assert_string_equal(refuse(&p, MR_MFD_HEADER_SIZE), "multifd: offset too "
                        "long 262144 (max 262144)");
    data_packet(&p);
    p.offsets[0] = 0x1001;
    assert_non_null(refuse(&p, MR_MFD_HEADER_SIZE));
    data_packet(&p);
    p.flags = 0x04;  /* zstd */
    assert_string_equal(refuse(&p, MR_MFD_HEADER_SIZE), "multifd: flags "
                        "received 4 flags expected 0");
    data_packet(&p);
    p.flags = MR_MFD_FLAG_DEVICE_STATE;
    assert_non_null(refuse(&p, MR_MFD_HEADER_SIZE));
}

static void packet_bad_magic_and_version(void **state)
{
    struct mr_mfd_packet p, got;
    struct mr_error err = MR_ERROR_INIT;
    uint8_t b[MR_MFD_HEADER_SIZE];
    size_t idx;

    (void)state;
    data_packet(&p);
    mr_mfd_packet_encode(&p, b);
    b[7] = 9;
    err = (struct mr_error)MR_ERROR_INIT;
    assert_int_not_equal(mr_mfd_packet_decode(b, sizeof(b), &blocks, &got,
                                              &idx, &err), 0);
    assert_string_equal(err.msg, "multifd: received packet version 9, "
                        "expected 1");
    b[3] = 0;
    err = (struct mr_error)MR_ERROR_INIT;
    assert_int_not_equal(mr_mfd_packet_decode(b, sizeof(b), &blocks, &got,
                                              &idx, &err), 0);
    assert_string_equal(err.msg, "multifd: received packet magic 11223300, "
                        "expected 11223344");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_layout),
        cmocka_unit_test(handshake_refusals),
        cmocka_unit_test(packet_layout_and_round_trip),
        cmocka_unit_test(sync_packet),
        cmocka_unit_test(packet_refusals),
        cmocka_unit_test(packet_bad_magic_and_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
