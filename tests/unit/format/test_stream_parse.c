/* Unit tests for the item decoder (src/lib/format/stream_parse.c): every
 * item kind, and every error with its exact message. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "bytebuf.h"
#include "format/stream_parse.h"

struct fixture {
    struct bytebuf b;
    struct mr_source src;
    struct mr_cursor c;
};

static struct fixture fx;

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bb_free(&fx.b);
    return 0;
}

/* Point the cursor at the start of what was built so far. */
static struct mr_cursor *cursor_at(uint64_t pos)
{
    mr_source_init_mem(&fx.src, fx.b.data, fx.b.len);
    mr_cursor_init(&fx.c, &fx.src, pos);
    return &fx.c;
}

static void header_ok(void **state)
{
    uint32_t v = 0;

    (void)state;
    bb_be32(&fx.b, 0x5145564d);
    bb_be32(&fx.b, 3);
    assert_int_equal(mr_stream_read_header(cursor_at(0), &v), 0);
    assert_int_equal(v, 3);
}

static void header_errors(void **state)
{
    (void)state;
    bb_be32(&fx.b, 0x7f454c46);
    bb_be32(&fx.b, 3);
    assert_int_equal(mr_stream_read_header(cursor_at(0), NULL), -EINVAL);
    assert_string_equal(fx.c.err.msg, "Not a migration stream: expected magic "
                        "0x5145564d (\"QEVM\") at offset 0x0, found "
                        "0x7f454c46");
    bb_be32(&fx.b, 0x5145564d);
    bb_be32(&fx.b, 2);
    assert_int_equal(mr_stream_read_header(cursor_at(8), NULL), -ENOTSUP);
    assert_string_equal(fx.c.err.msg, "SaveVM v2 format is obsolete and don't "
                        "work anymore: expected version 3 at offset 0xc, "
                        "found 2");
    bb_be32(&fx.b, 0x5145564d);
    bb_be32(&fx.b, 4);
    assert_int_equal(mr_stream_read_header(cursor_at(16), NULL), -ENOTSUP);
    assert_string_equal(fx.c.err.msg, "Unsupported migration stream version: "
                        "expected 3 at offset 0x14, found 4");
    bb_be32(&fx.b, 0x5145564d);
    assert_int_equal(mr_stream_read_header(cursor_at(24), NULL), -EIO);
    assert_string_equal(fx.c.err.msg, "truncated: needed 4 bytes for stream "
                        "version at offset 0x1c, file ends at 0x1c");
}

static void build_config(struct bytebuf *b, bool mapped_ram)
{
    bb_stream_config(b, "pc-q35-10.0", mapped_ram);
}

static void config_with_capabilities(void **state)
{
    struct mr_stream_config cfg;

    (void)state;
    build_config(&fx.b, true);
    assert_int_equal(fx.b.len, 16 + 47);
    bb_u8(&fx.b, 0x01);
    assert_int_equal(mr_stream_read_config(cursor_at(0), &cfg), 0);
    assert_string_equal(cfg.machine, "pc-q35-10.0");
    assert_true(cfg.mapped_ram);
    assert_false(cfg.x_ignore_shared);
    assert_int_equal(cfg.nr_caps, 1);
    assert_string_equal(cfg.caps[0], "mapped-ram");
    assert_int_equal(fx.c.pos, 63);
}

static void config_all_subsections_and_foreign_one(void **state)
{
    struct mr_stream_config cfg;

    (void)state;
    build_config(&fx.b, false);
    bb_u8(&fx.b, 0x05);
    bb_str(&fx.b, "configuration/target-page-bits");
    bb_be32(&fx.b, 1);
    bb_be32(&fx.b, 12);
    bb_u8(&fx.b, 0x05);
    bb_str(&fx.b, "configuration/capabilities");
    bb_be32(&fx.b, 1);
    bb_be32(&fx.b, 2);
    bb_str(&fx.b, "x-ignore-shared");
    bb_str(&fx.b, "mapped-ram");
    bb_u8(&fx.b, 0x05);
    bb_str(&fx.b, "configuration/uuid");
    bb_be32(&fx.b, 1);
    bb_put(&fx.b, "0123456789abcdef", 16);
    size_t end = fx.b.len;
    bb_u8(&fx.b, 0x05);
    bb_str(&fx.b, "other");
    assert_int_equal(mr_stream_read_config(cursor_at(0), &cfg), 0);
    assert_true(cfg.has_page_bits);
    assert_int_equal(cfg.target_page_bits, 12);
    assert_true(cfg.mapped_ram && cfg.x_ignore_shared);
    assert_true(cfg.has_uuid);
    assert_memory_equal(cfg.uuid, "0123456789abcdef", 16);
    assert_int_equal(fx.c.pos, end);
}

static void config_errors(void **state)
{
    struct mr_stream_config cfg;

    (void)state;
    bb_u8(&fx.b, 0x01);
    assert_int_equal(mr_stream_read_config(cursor_at(0), &cfg), -EINVAL);
    assert_string_equal(fx.c.err.msg, "Configuration section missing: expected "
                        "0x07 at offset 0x0, found 0x01");
    bb_u8(&fx.b, 0x07);
    bb_be32(&fx.b, 1000);
    assert_int_equal(mr_stream_read_config(cursor_at(1), &cfg), -EINVAL);
    assert_string_equal(fx.c.err.msg, "expected a machine type of at most 255 "
                        "bytes at offset 0x2, found a length of 1000");
    bb_free(&fx.b);
    build_config(&fx.b, false);
    bb_u8(&fx.b, 0x05);
    bb_str(&fx.b, "configuration/bogus");
    bb_be32(&fx.b, 1);
    assert_int_equal(mr_stream_read_config(cursor_at(0), &cfg), -ENOENT);
    assert_string_equal(fx.c.err.msg, "unknown configuration subsection "
                        "'configuration/bogus' at offset 0x10");
    bb_free(&fx.b);
    build_config(&fx.b, false);
    bb_u8(&fx.b, 0x05);
    bb_str(&fx.b, "configuration/capabilities");
    bb_be32(&fx.b, 1);
    bb_be32(&fx.b, 99);
    assert_int_equal(mr_stream_read_config(cursor_at(0), &cfg), -EINVAL);
    assert_string_equal(fx.c.err.msg, "expected at most 16 capabilities at "
                        "offset 0x30, found 99");
    bb_free(&fx.b);
    build_config(&fx.b, false);
    bb_u8(&fx.b, 0x05);
    bb_str(&fx.b, "configuration/uuid");
    bb_be32(&fx.b, 2);
    assert_int_equal(mr_stream_read_config(cursor_at(0), &cfg), -EINVAL);
    assert_string_equal(fx.c.err.msg, "expected subsection version 1 at "
                        "offset 0x24, found 2");
    bb_free(&fx.b);
    bb_u8(&fx.b, 0x07);
    bb_be32(&fx.b, 3);
    bb_put(&fx.b, "a\0b", 3);
    assert_int_equal(mr_stream_read_config(cursor_at(0), &cfg), -EINVAL);
    assert_string_equal(fx.c.err.msg, "expected a machine type name at offset "
                        "0x5, found a NUL byte inside it");
}

static void sections_and_footers(void **state)
{
    struct mr_section_header h;
    uint8_t type;

    (void)state;
    bb_u8(&fx.b, 0x01);
    bb_be32(&fx.b, 1);
    bb_str(&fx.b, "ram");
    bb_be32(&fx.b, 0);
    bb_be32(&fx.b, 4);
    bb_u8(&fx.b, 0x7e);
    bb_be32(&fx.b, 1);
    bb_u8(&fx.b, 0x02);
    bb_be32(&fx.b, 1);
    bb_u8(&fx.b, 0x7e);
    bb_be32(&fx.b, 2);
    bb_u8(&fx.b, 0x02);
    struct mr_cursor *c = cursor_at(0);
    assert_int_equal(mr_stream_read_type(c, &type), 0);
    assert_int_equal(mr_stream_read_section_header(c, type, 0, &h), 0);
    assert_int_equal(h.type, 1);
    assert_int_equal(h.section_id, 1);
    assert_string_equal(h.idstr, "ram");
    assert_int_equal(h.version_id, 4);
    assert_int_equal(mr_stream_read_footer(c, 1, "ram"), 0);
    assert_int_equal(mr_stream_read_type(c, &type), 0);
    assert_int_equal(mr_stream_read_section_header(c, type, 22, &h), 0);
    assert_int_equal(h.type, 2);
    assert_int_equal(mr_stream_read_footer(c, 1, "ram"), -EINVAL);
    assert_string_equal(c->err.msg, "Mismatched section id in footer for ram - "
                        "read 0x2 expected 0x1 (at offset 0x1c)");
    c = cursor_at(fx.b.len - 1);
    assert_int_equal(mr_stream_read_footer(c, 1, "ram"), -EINVAL);
    assert_string_equal(c->err.msg, "Missing section footer for ram: expected "
                        "section footer 0x7e for 'ram' at offset 0x20, found "
                        "0x02");
    c = cursor_at(fx.b.len - 1);
    assert_int_equal(mr_stream_read_section_header(c, 0x09, 0x20, &h), -EINVAL);
    assert_string_equal(c->err.msg, "expected a section type 1-4 at offset "
                        "0x20, found 0x09");
}

static void commands(void **state)
{
    struct mr_stream_command cmd;

    (void)state;
    bb_be16(&fx.b, 11);
    bb_be16(&fx.b, 0);
    bb_be16(&fx.b, 2);
    bb_be16(&fx.b, 4);
    bb_be32(&fx.b, 7);
    bb_be16(&fx.b, 42);
    bb_be16(&fx.b, 0);
    bb_be16(&fx.b, 11);
    bb_be16(&fx.b, 3);
    struct mr_cursor *c = cursor_at(0);
    assert_int_equal(mr_stream_read_command(c, 0, &cmd), 0);
    assert_int_equal(cmd.cmd, MIG_CMD_SWITCHOVER_START);
    assert_string_equal(mr_stream_command_name(cmd.cmd), "SWITCHOVER_START");
    assert_int_equal(mr_stream_read_command(c, 3, &cmd), 0);
    assert_int_equal(cmd.len, 4);
    assert_int_equal(c->pos, 12);
    assert_int_equal(mr_stream_read_command(c, 11, &cmd), -EINVAL);
    assert_string_equal(c->err.msg, "expected a command number 1-11 at offset "
                        "0xc, found 42");
    c = cursor_at(16);
    assert_int_equal(mr_stream_read_command(c, 15, &cmd), -EINVAL);
    assert_string_equal(c->err.msg, "expected a length matching the command at "
                        "offset 0x12, found 3 for SWITCHOVER_START");
    assert_null(mr_stream_command_name(99));
    assert_string_equal(mr_stream_type_name(QEMU_VM_SECTION_FULL), "FULL");
}

static void vmdesc(void **state)
{
    bool present;
    uint64_t off;
    uint32_t len;

    (void)state;
    bb_u8(&fx.b, 0x06);
    bb_be32(&fx.b, 2);
    bb_put(&fx.b, "{}", 2);
    struct mr_cursor *c = cursor_at(0);
    assert_int_equal(mr_stream_read_vmdesc(c, &present, &off, &len), 0);
    assert_true(present);
    assert_int_equal(off, 5);
    assert_int_equal(len, 2);
    assert_int_equal(mr_stream_read_vmdesc(c, &present, &off, &len), 0);
    assert_false(present);
    bb_u8(&fx.b, 0x06);
    bb_be32(&fx.b, 0x40000000);
    c = cursor_at(7);
    assert_int_equal(mr_stream_read_vmdesc(c, &present, &off, &len), -EINVAL);
    assert_string_equal(c->err.msg, "expected a VMDESCRIPTION length that fits "
                        "in the file at offset 0x8, found 1073741824 bytes, "
                        "but the file ends 0x0 bytes later");
    c = cursor_at(8);
    assert_int_equal(mr_stream_read_vmdesc(c, &present, &off, &len), -EINVAL);
    assert_string_equal(c->err.msg, "Expected vmdescription section, but got 64:"
                        " expected 0x06 at offset 0x8, found 0x40");
}

static void mem_size(void **state)
{
    uint64_t total;

    (void)state;
    bb_be64(&fx.b, 0x4082004);
    bb_be64(&fx.b, 0x4082008);
    bb_be64(&fx.b, 0x4082014);
    struct mr_cursor *c = cursor_at(0);
    assert_int_equal(mr_ram_read_mem_size(c, true, &total), 0);
    assert_int_equal(total, 0x4082000);
    assert_int_equal(mr_ram_read_mem_size(c, true, &total), -EINVAL);
    assert_string_equal(c->err.msg, "Unexpected RAM flags: 8 (expected MEM_SIZE "
                        "0x4 at offset 0x8)");
    c = cursor_at(8);
    assert_int_equal(mr_ram_read_mem_size(c, false, &total), -EINVAL);
    assert_string_equal(c->err.msg, "expected a RAM MEM_SIZE record (flags 0x4) "
                        "at offset 0x8, found flags 0x8");
    c = cursor_at(16);
    assert_int_equal(mr_ram_read_mem_size(c, true, &total), -EINVAL);
    assert_string_equal(c->err.msg, "expected a RAM MEM_SIZE record (flags 0x4) "
                        "at offset 0x10, found flags 0x14");
}

/* A mapped-ram block entry at the current end of fx.b with a consistent
 * layout; the pages area is padded out. */
static void build_mr_block(const char *name, uint64_t used, uint32_t version,
                           uint64_t page_size, int64_t pages_adjust)
{
    uint64_t h, bm, pages;

    bb_str(&fx.b, name);
    bb_be64(&fx.b, used);
    h = fx.b.len;
    bm = h + 28;
    pages = (bm + (used / 4096 + 63) / 64 * 8 + 0xfffff) & ~0xfffffULL;
    bb_be32(&fx.b, version);
    bb_be64(&fx.b, page_size);
    bb_be64(&fx.b, bm);
    bb_be64(&fx.b, pages + (uint64_t)pages_adjust);
    bb_pad_to(&fx.b, pages + used);
}

static void mapped_ram_block_entry(void **state)
{
    struct mr_ram_block_entry blk;

    (void)state;
    build_mr_block("pc.bios", 0x40000, 1, 4096, 0);
    bb_be64(&fx.b, 0x10);
    struct mr_cursor *c = cursor_at(0);
    assert_int_equal(mr_ram_read_block_entry(c, true, false, &blk), 0);
    assert_string_equal(blk.idstr, "pc.bios");
    assert_int_equal(blk.used_length, 0x40000);
    assert_int_equal(blk.header_offset, 16);
    assert_int_equal(blk.bitmap_offset, 44);
    assert_int_equal(blk.pages_offset, 0x100000);
    assert_int_equal(c->pos, 0x140000);
    assert_int_equal(mr_ram_read_eos(c), 0);
}

static void mapped_ram_block_errors(void **state)
{
    struct mr_ram_block_entry blk;
    struct mr_cursor *c;

    (void)state;
    build_mr_block("b", 0x1000, 2, 4096, 0);
    c = cursor_at(0);
    assert_int_equal(mr_ram_read_block_entry(c, true, false, &blk), -EINVAL);
    assert_string_equal(c->err.msg, "Migration mapped-ram capability version "
                        "not supported (expected <= 1, got 2) at offset 0xa");
    bb_free(&fx.b);
    build_mr_block("b", 0x1000, 1, 4096, 0x800);
    c = cursor_at(0);
    assert_int_equal(mr_ram_read_block_entry(c, true, false, &blk), -EINVAL);
    assert_string_equal(c->err.msg, "Error reading ramblock b pages, region has "
                        "bad alignment: expected a multiple of 4096 at offset "
                        "0x1e, found 0x100800");
    bb_free(&fx.b);
    build_mr_block("b", 0x1000, 1, 512, 0);
    c = cursor_at(0);
    assert_int_equal(mr_ram_read_block_entry(c, true, false, &blk), -EINVAL);
    assert_string_equal(c->err.msg, "expected page size 4096 at offset 0xe, "
                        "found 512 for 'b'");
    bb_free(&fx.b);
    /* Pages region beyond the end of the file. */
    build_mr_block("b", 0x1000, 1, 4096, 0x1000);
    c = cursor_at(0);
    assert_int_equal(mr_ram_read_block_entry(c, true, false, &blk), -EIO);
    assert_string_equal(c->err.msg, "truncated: expected 0x1000 bytes of pages "
                        "for 'b' at offset 0x101000, found the end of the file "
                        "at 0x101000");
    bb_free(&fx.b);
    /* A block claiming 2^60 bytes. */
    bb_str(&fx.b, "huge");
    bb_be64(&fx.b, 1ULL << 60);
    c = cursor_at(0);
    assert_int_equal(mr_ram_read_block_entry(c, true, false, &blk), -EINVAL);
    assert_string_equal(c->err.msg, "expected a RAM block length that is a "
                        "non-zero multiple of 4096 up to 64 TiB at offset 0x5, "
                        "found 0x1000000000000000 for 'huge'");
    bb_free(&fx.b);
    /* Short header. */
    bb_str(&fx.b, "b");
    bb_be64(&fx.b, 0x1000);
    bb_be32(&fx.b, 1);
    c = cursor_at(0);
    assert_int_equal(mr_ram_read_block_entry(c, true, false, &blk), -EINVAL);
    assert_string_equal(c->err.msg, "Could not read whole mapped-ram migration "
                        "header (expected 28, got 4 bytes) at offset 0xa");
    bb_free(&fx.b);
    /* Bitmap beyond the end of the file. */
    bb_str(&fx.b, "b");
    bb_be64(&fx.b, 0x1000);
    bb_be32(&fx.b, 1);
    bb_be64(&fx.b, 4096);
    bb_be64(&fx.b, 0x7fffffff0);
    bb_be64(&fx.b, 0);
    c = cursor_at(0);
    assert_int_equal(mr_ram_read_block_entry(c, true, false, &blk), -EIO);
    assert_string_equal(c->err.msg, "Error reading dirty bitmap: expected 8 "
                        "bitmap bytes for 'b' at offset 0x7fffffff0, found the "
                        "end of the file at 0x26");
    bb_free(&fx.b);
    bb_str(&fx.b, "");
    c = cursor_at(0);
    assert_int_equal(mr_ram_read_block_entry(c, true, false, &blk), -EINVAL);
    assert_string_equal(c->err.msg, "expected a RAM block name at offset 0x0, "
                        "found an empty name");
}

static void legacy_block_entry_with_gpa(void **state)
{
    struct mr_ram_block_entry blk;

    (void)state;
    bb_str(&fx.b, "mem");
    bb_be64(&fx.b, 0x4000000);
    bb_be64(&fx.b, 0x100000);
    struct mr_cursor *c = cursor_at(0);
    assert_int_equal(mr_ram_read_block_entry(c, false, true, &blk), 0);
    assert_true(blk.has_gpa);
    assert_int_equal(blk.gpa, 0x100000);
    assert_int_equal(c->pos, 20);
}

static void legacy_page_records(void **state)
{
    struct mr_ram_page_ctx ctx = { 0 };
    struct mr_ram_page_record r;
    uint8_t page[4096] = { 1 };

    (void)state;
    bb_be64(&fx.b, 0x5000 | 0x08);
    bb_str(&fx.b, "mem");
    bb_put(&fx.b, page, sizeof(page));
    bb_be64(&fx.b, 0x6000 | 0x22);
    bb_u8(&fx.b, 0);
    bb_be64(&fx.b, 0x7000 | 0x60);
    bb_u8(&fx.b, 1);
    bb_be16(&fx.b, 3);
    bb_put(&fx.b, "abc", 3);
    bb_be64(&fx.b, 0x200);
    bb_be64(&fx.b, 0x10);
    struct mr_cursor *c = cursor_at(0);
    assert_int_equal(mr_ram_read_page_record(c, false, 4096, &ctx, &r), 0);
    assert_int_equal(r.flags, 0x08);
    assert_int_equal(r.addr, 0x5000);
    assert_string_equal(r.idstr, "mem");
    assert_int_equal(r.data_offset, 12);
    assert_int_equal(mr_ram_read_page_record(c, false, 4096, &ctx, &r), 0);
    assert_int_equal(r.flags, 0x22);
    assert_string_equal(r.idstr, "mem");
    assert_int_equal(mr_ram_read_page_record(c, false, 4096, &ctx, &r), 0);
    assert_int_equal(r.flags, 0x60);
    assert_int_equal(mr_ram_read_page_record(c, false, 4096, &ctx, &r), 0);
    assert_int_equal(r.flags, 0x200);
    assert_int_equal(mr_ram_read_page_record(c, false, 4096, &ctx, &r), 0);
    assert_int_equal(r.flags, 0x10);
    assert_int_equal(c->pos, fx.b.len);
}

/* The context outlives a payload: after EOS, a CONTINUE still names the
 * last block, as QEMU's loader does across sections. */
static void legacy_context_carries_over(void **state)
{
    struct mr_ram_page_ctx ctx = { 0 };
    struct mr_ram_page_record r;
    struct mr_cursor *c;

    (void)state;
    bb_be64(&fx.b, 0x1000 | 0x02);
    bb_str(&fx.b, "pc.ram");
    bb_u8(&fx.b, 0);
    bb_be64(&fx.b, 0x10);
    bb_be64(&fx.b, 0x2000 | 0x22);
    bb_u8(&fx.b, 0);
    c = cursor_at(0);
    assert_int_equal(mr_ram_read_page_record(c, false, 4096, &ctx, &r), 0);
    assert_int_equal(mr_ram_read_eos(c), 0);
    assert_int_equal(mr_ram_read_page_record(c, false, 4096, &ctx, &r), 0);
    assert_int_equal(r.flags, 0x22);
    assert_int_equal(r.addr, 0x2000);
    assert_string_equal(r.idstr, "pc.ram");
    assert_int_equal(c->pos, fx.b.len);
}

static void legacy_page_record_errors(void **state)
{
    struct mr_ram_page_ctx ctx = { 0 };
    struct mr_ram_page_record r;
    struct mr_cursor *c;

    (void)state;
    bb_be64(&fx.b, 0x28);               /* CONTINUE without a block */
    bb_be64(&fx.b, 0x02);               /* zero page with fill 7 */
    bb_str(&fx.b, "mem");
    bb_u8(&fx.b, 7);
    bb_be64(&fx.b, 0x0a);               /* PAGE|ZERO */
    bb_be64(&fx.b, 0x08);               /* PAGE, truncated */
    bb_str(&fx.b, "mem");
    c = cursor_at(0);
    assert_int_equal(mr_ram_read_page_record(c, false, 4096, &ctx, &r), -EINVAL);
    assert_string_equal(c->err.msg, "Ack, bad migration stream!: expected a "
                        "named block before the CONTINUE record at offset 0x0");
    c = cursor_at(8);
    assert_int_equal(mr_ram_read_page_record(c, false, 4096, &ctx, &r), -EINVAL);
    assert_string_equal(c->err.msg, "Found a zero page with value 7: expected "
                        "0x00 at offset 0x14");
    c = cursor_at(21);
    assert_int_equal(mr_ram_read_page_record(c, false, 4096, &ctx, &r), -EINVAL);
    assert_string_equal(c->err.msg, "Unknown combination of migration flags: "
                        "0xa (at offset 0x15)");
    c = cursor_at(21);
    assert_int_equal(mr_ram_read_page_record(c, true, 4096, &ctx, &r), -EINVAL);
    assert_string_equal(c->err.msg, "Unexpected RAM flags: 10 (at offset "
                        "0x15)");
    c = cursor_at(29);
    assert_int_equal(mr_ram_read_page_record(c, false, 4096, &ctx, &r), -EIO);
    assert_string_equal(c->err.msg, "truncated: needed 4096 bytes for page data "
                        "at offset 0x29, file ends at 0x29");
    c = cursor_at(21);
    assert_int_equal(mr_ram_read_eos(c), -EINVAL);
    assert_string_equal(c->err.msg, "expected RAM end-of-section 0x10 at offset "
                        "0x15, found 0x000000000000000a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(header_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(header_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(config_with_capabilities, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(config_all_subsections_and_foreign_one,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(sections_and_footers, setup, teardown),
        cmocka_unit_test_setup_teardown(commands, setup, teardown),
        cmocka_unit_test_setup_teardown(vmdesc, setup, teardown),
        cmocka_unit_test_setup_teardown(mem_size, setup, teardown),
        cmocka_unit_test_setup_teardown(mapped_ram_block_entry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(mapped_ram_block_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(legacy_block_entry_with_gpa, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(legacy_page_records, setup, teardown),
        cmocka_unit_test_setup_teardown(legacy_page_record_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(legacy_context_carries_over, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
