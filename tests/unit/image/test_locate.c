/* Unit tests for finding the stream in a save file
 * (src/lib/format/locate.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bytebuf.h"
#include "image/locate.h"

static uint8_t file[0x3000];

static int locate(size_t len, int64_t explicit_offset, struct mr_location *loc,
                  struct mr_error *err)
{
    struct mr_source src;

    mr_source_init_mem(&src, file, len);
    mr_error_clear(err);
    return mr_stream_locate(&src, explicit_offset, loc, err);
}

static void raw_stream(void **state)
{
    struct mr_location loc;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    memset(file, 0, sizeof(file));
    memcpy(file, "QEVM\0\0\0\3", 8);
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), 0);
    assert_int_equal(loc.kind, MR_CONTAINER_RAW);
    assert_int_equal(loc.stream_offset, 0);
    assert_int_equal(locate(sizeof(file), 0x20, &loc, &err), 0);
    assert_int_equal(loc.kind, MR_CONTAINER_EXPLICIT);
    assert_int_equal(loc.stream_offset, 0x20);
    assert_int_equal(locate(16, 0x20, &loc, &err), -EINVAL);
    assert_string_equal(err.msg, "expected --offset within the file (0x10 "
                        "bytes), found 0x20");
}

static void put32(uint8_t *p, uint32_t v, bool be)
{
    for (int i = 0; i < 4; i++)
        p[be ? 3 - i : i] = (uint8_t)(v >> (8 * i));
}

static void libvirt_both_byte_orders(void **state)
{
    struct mr_location loc;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    for (int be = 0; be < 2; be++) {
        memset(file, 0, sizeof(file));
        memcpy(file, "LibvirtQemudSave", 16);
        put32(file + 16, 2, be);
        put32(file + 20, 0x1000 - 92, be);
        put32(file + 24, 1, be);
        put32(file + 28, 6, be);
        assert_int_equal(locate(sizeof(file), -1, &loc, &err), 0);
        assert_int_equal(loc.kind, MR_CONTAINER_LIBVIRT);
        assert_int_equal(loc.libvirt.big_endian, be);
        assert_int_equal(loc.stream_offset, 0x1000);
        assert_int_equal(loc.libvirt.was_running, 1);
        assert_false(loc.incomplete);
    }
    memcpy(file, "LibvirtQemudPart", 16);
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), 0);
    assert_true(loc.incomplete);
}

static void libvirt_xml_and_cookie(void **state)
{
    static const char xml[] = "<domain type='kvm'><name>vm</name></domain>\n";
    static const char cookie[] = "<qemu-migration/>";
    struct mr_location loc;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    memset(file, 0, sizeof(file));
    memcpy(file, "LibvirtQemudSave", 16);
    put32(file + 16, 2, false);
    put32(file + 20, 0x2000 - 92, false);
    memcpy(file + 92, xml, strlen(xml));
    put32(file + 32, 0x1000, false);
    memcpy(file + 92 + 0x1000, cookie, strlen(cookie));
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), 0);
    assert_int_equal(loc.libvirt.xml_len, strlen(xml));
    assert_int_equal(loc.libvirt.cookie_len, strlen(cookie));
    assert_int_equal(loc.stream_offset, 0x2000);
    put32(file + 32, 0, false);     /* no cookie: the XML fills the area */
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), 0);
    assert_int_equal(loc.libvirt.xml_len, strlen(xml));
    assert_int_equal(loc.libvirt.cookie_len, 0);
    memset(file + 92, 'x', 0x2000 - 92);    /* unterminated */
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), 0);
    assert_int_equal(loc.libvirt.xml_len, 0x2000 - 92);
    assert_string_equal(mr_libvirt_format_name(6), "sparse");
    assert_null(mr_libvirt_format_name(7));
}

static void libvirt_errors(void **state)
{
    struct mr_location loc;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    memset(file, 0, sizeof(file));
    memcpy(file, "LibvirtQemudSave", 16);
    put32(file + 16, 3, false);
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), -ENOTSUP);
    assert_string_equal(err.msg, "expected libvirt save header version 2 at "
                        "offset 0x10, found 0x00000003");
    put32(file + 16, 2, false);
    put32(file + 28, 5, false);     /* zstd: located, not walkable */
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), 0);
    assert_int_equal(loc.libvirt.format, 5);
    assert_int_equal(mr_libvirt_check_readable(&loc, &err), -ENOTSUP);
    assert_string_equal(err.msg, "expected a raw or sparse libvirt image "
                        "(format 0 or 6) at offset 0x1c, found format 5 "
                        "(zstd-compressed; decompress it first)");
    put32(file + 28, 7, false);
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), -ENOTSUP);
    assert_string_equal(err.msg, "expected a libvirt image format 0 to 6 at "
                        "offset 0x1c, found format 7");
    put32(file + 28, 0, false);
    put32(file + 20, 0x100000, false);
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), -EIO);
    assert_string_equal(err.msg, "truncated: libvirt header puts the stream at "
                        "offset 0x10005c, file ends at 0x3000");
    assert_int_equal(locate(50, -1, &loc, &err), -EIO);
    assert_string_equal(err.msg, "truncated: needed 92 bytes of libvirt header "
                        "at offset 0x0, file ends at 0x32");
}

static void mapram_header(void **state)
{
    struct mr_location loc;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_file_header h = {
        .version = 1, .state = MR_FILE_STATE_PART, .header_size = 4096,
        .stream_offset = 0x2000,
    };

    (void)state;
    memset(file, 0, sizeof(file));
    mr_file_header_encode(&h, file);
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), 0);
    assert_int_equal(loc.kind, MR_CONTAINER_MAPRAM);
    assert_int_equal(loc.stream_offset, 0x2000);
    assert_true(loc.incomplete);
    h.state = MR_FILE_STATE_DONE;
    h.stream_size = 0x1001;
    mr_file_header_encode(&h, file);
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), -EIO);
    assert_string_equal(err.msg, "truncated: expected the stream to end at "
                        "0x3001 (mapram header), found the end of the file at "
                        "0x3000");
    assert_int_equal(locate(300, -1, &loc, &err), -EIO);
    assert_string_equal(err.msg, "mapram header: truncated: needed 512 bytes at "
                        "offset 0x0, file ends at 0x12c");
}

static void probe_finds_stream_after_unknown_header(void **state)
{
    struct mr_location loc;
    struct mr_error err = MR_ERROR_INIT;

    (void)state;
    memset(file, 0, sizeof(file));
    memcpy(file, "QPEER-MGMT-HEADER\n\x01\x02", 20);
    memcpy(file + 0x2000, "QEVM\0\0\0\3", 8);
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), 0);
    assert_int_equal(loc.kind, MR_CONTAINER_PROBED);
    assert_int_equal(loc.stream_offset, 0x2000);
    assert_string_equal(loc.prefix_preview, "QPEER-MGMT-HEADER");
    /* QEVM with another version is not a match for the probe. */
    file[0x2007] = 2;
    assert_int_equal(locate(sizeof(file), -1, &loc, &err), -EINVAL);
    assert_string_equal(err.msg, "Not a migration stream: expected magic "
                        "0x5145564d (\"QEVM\"), a libvirt or a mapram header "
                        "at offset 0x0, found 0x51504545");
    assert_int_equal(locate(0, -1, &loc, &err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(raw_stream),
        cmocka_unit_test(libvirt_both_byte_orders),
        cmocka_unit_test(libvirt_errors),
        cmocka_unit_test(libvirt_xml_and_cookie),
        cmocka_unit_test(mapram_header),
        cmocka_unit_test(probe_finds_stream_after_unknown_header),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
