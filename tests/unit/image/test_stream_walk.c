/* Unit tests for the whole-file walk, VMDESCRIPTION handling and block
 * extraction (src/lib/format/stream_walk.c, vmdesc.c, extract.c) over
 * small synthetic streams built in memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bytebuf.h"
#include "image/extract.h"
#include "image/stream_walk.h"

#define PS 4096

static const char device_json[] =
    "{\"devices\":[{\"name\":\"dev\",\"instance_id\":0,\"fields\":["
    "{\"name\":\"a\",\"size\":4},{\"name\":\"r\",\"array_len\":2,\"size\":8}],"
    "\"subsections\":[{\"vmsd_name\":\"dev/sub\",\"fields\":["
    "{\"name\":\"b\",\"size\":2}],\"subsections\":[{\"vmsd_name\":"
    "\"dev/sub/deeper\",\"fields\":[{\"name\":\"c\",\"size\":1}]}]}]}]}";

static void put_head(struct bytebuf *b, bool mapped_ram)
{
    bb_stream_magic(b);
    bb_stream_config(b, "pc", mapped_ram);
    bb_ram_section_start(b);
}

/* A mapped-ram block of npages with the given bitmap byte; page i holds
 * byte (i + 1) everywhere.  pages_at == 0 means "next 4 KiB boundary". */
static void put_mr_block(struct bytebuf *b, const char *name, int npages,
                         uint8_t bitmap, uint64_t pages_at)
{
    uint64_t h, pages;

    bb_str(b, name);
    bb_be64(b, (uint64_t)npages * PS);
    h = b->len;
    pages = pages_at ? pages_at : (h + 28 + 8 + PS - 1) / PS * PS;
    bb_be32(b, 1);
    bb_be64(b, PS);
    bb_be64(b, h + 28);
    bb_be64(b, pages);
    bb_u8(b, bitmap);
    bb_pad_to(b, pages);
    for (int i = 0; i < npages; i++) {
        uint8_t page[PS];

        memset(page, i + 1, sizeof(page));
        bb_put(b, page, sizeof(page));
    }
}

static void put_tail(struct bytebuf *b, bool with_device)
{
    bb_be64(b, 0x10);
    bb_u8(b, 0x7e);
    bb_be32(b, 1);
    bb_u8(b, 0x08);
    bb_be16(b, 11);
    bb_be16(b, 0);
    bb_u8(b, 0x03);
    bb_be32(b, 1);
    bb_be64(b, 0x10);
    bb_u8(b, 0x7e);
    bb_be32(b, 1);
    if (with_device) {
        bb_u8(b, 0x04);
        bb_be32(b, 2);
        bb_str(b, "dev");
        bb_be32(b, 0);
        bb_be32(b, 1);
        bb_put(b, "AAAABBBBBBBBCCCCCCCC", 20);
        bb_u8(b, 0x05);
        bb_str(b, "dev/sub");
        bb_be32(b, 1);
        bb_put(b, "DD", 2);
        bb_u8(b, 0x05);
        bb_str(b, "dev/sub/deeper");
        bb_be32(b, 1);
        bb_u8(b, 'E');
        bb_u8(b, 0x7e);
        bb_be32(b, 2);
    }
    bb_u8(b, 0x00);
    bb_u8(b, 0x06);
    bb_be32(b, (uint32_t)strlen(device_json));
    bb_put(b, device_json, strlen(device_json));
}

static int walk(struct bytebuf *b, struct mr_source *src, struct mr_walk *w,
                struct mr_error *err)
{
    mr_source_init_mem(src, b->data, b->len);
    mr_error_clear(err);
    return mr_walk_file(src, -1, w, err);
}

struct mem_sink {
    uint8_t buf[8 * PS];
};

static int mem_write(void *opaque, const void *buf, size_t len, uint64_t off,
                     struct mr_error *err)
{
    struct mem_sink *m = opaque;

    (void)err;
    assert_true(off + len <= sizeof(m->buf));
    memcpy(m->buf + off, buf, len);
    return 0;
}

static void mapped_ram_walk_and_extract(void **state)
{
    struct bytebuf b = { 0 };
    struct mr_source src;
    struct mr_walk w;
    struct mr_error err;
    static struct mem_sink sink_mem;
    struct mr_sink sink = { mem_write, &sink_mem };

    (void)state;
    put_head(&b, true);
    bb_be64(&b, 6 * PS | 4);
    put_mr_block(&b, "mem", 4, 0x0a, 0);       /* pages 1 and 3 */
    put_mr_block(&b, "/rom@x", 2, 0x01, 0);
    put_tail(&b, true);
    assert_int_equal(walk(&b, &src, &w, &err), 0);
    assert_true(w.complete);
    assert_true(w.mapped_ram);
    assert_string_equal(w.config.machine, "pc");
    assert_int_equal(w.nr_blocks, 2);
    assert_int_equal(w.blocks[0].pages_present, 2);
    assert_int_equal(w.blocks[0].pages_absent, 2);
    assert_int_equal(w.blocks[1].pages_present, 1);
    assert_int_equal(w.nr_sections, 3);
    assert_int_equal(w.sections[1].type, QEMU_VM_SECTION_END);
    assert_string_equal(w.sections[1].idstr, "ram");
    assert_string_equal(w.sections[2].idstr, "dev");
    assert_int_equal(w.nr_commands, 1);
    assert_true(w.vmdesc_present);
    assert_int_equal(w.nr_problems, 0);
    memset(&sink_mem, 0x55, sizeof(sink_mem));
    assert_int_equal(mr_extract_block(&src, &w, 0, &sink, &err), 0);
    assert_int_equal(sink_mem.buf[0], 0x55);            /* absent: untouched */
    assert_int_equal(sink_mem.buf[PS], 2);
    assert_int_equal(sink_mem.buf[2 * PS], 0x55);
    assert_int_equal(sink_mem.buf[3 * PS + PS - 1], 4);
    assert_int_equal(mr_extract_block(&src, &w, 7, &sink, &err), -ENOENT);
    mr_walk_free(&w);
    bb_free(&b);
}

static void mapped_ram_layout_problems(void **state)
{
    struct bytebuf b = { 0 };
    struct mr_source src;
    struct mr_walk w;
    struct mr_error err;

    (void)state;
    /* Bits set beyond num_pages: reported, not fatal. */
    put_head(&b, true);
    bb_be64(&b, 2 * PS | 4);
    put_mr_block(&b, "mem", 2, 0x83, 0);
    put_tail(&b, true);
    assert_int_equal(walk(&b, &src, &w, &err), 0);
    assert_int_equal(w.blocks[0].bits_beyond, 1);
    assert_int_equal(w.nr_problems, 1);
    assert_string_equal(w.problems[0], "bitmap of 'mem' has 1 bits set "
                        "beyond its 2 pages");
    mr_walk_free(&w);
    bb_free(&b);
    /* A second block whose pages cover the first block's second page. */
    put_head(&b, true);
    bb_be64(&b, 3 * PS | 4);
    put_mr_block(&b, "a", 2, 0x3, 0);
    uint64_t a_pages = b.len - 2 * PS;
    put_mr_block(&b, "b", 1, 0x1, a_pages + PS);
    assert_int_equal(walk(&b, &src, &w, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "expected page regions that do not "
                           "overlap at offset 0x"));
    assert_non_null(strstr(err.msg, "found pages of 'b'"));
    assert_non_null(strstr(err.msg, "overlapping the pages of 'a'"));
    assert_int_equal(w.nr_blocks, 2);   /* what was read is kept */
    mr_walk_free(&w);
    bb_free(&b);
}

static void legacy_last_write_wins(void **state)
{
    struct bytebuf b = { 0 };
    struct mr_source src;
    struct mr_walk w;
    struct mr_error err;
    static struct mem_sink sink_mem;
    struct mr_sink sink = { mem_write, &sink_mem };
    uint8_t page[PS];

    (void)state;
    put_head(&b, false);
    bb_be64(&b, 3 * PS | 4);
    bb_str(&b, "mem");
    bb_be64(&b, 3 * PS);
    /* Page records right in the START payload; put_tail closes it. */
    memset(page, 0xaa, sizeof(page));
    bb_be64(&b, 0 | 0x08);                      /* page 0 = aa */
    bb_str(&b, "mem");
    bb_put(&b, page, sizeof(page));
    memset(page, 0xbb, sizeof(page));
    bb_be64(&b, 0 | 0x28);                      /* page 0 = bb (wins) */
    bb_put(&b, page, sizeof(page));
    bb_be64(&b, PS | 0x28);                     /* page 1 = bb ... */
    bb_put(&b, page, sizeof(page));
    bb_be64(&b, 0x200);                         /* MULTIFD_FLUSH */
    bb_be64(&b, PS | 0x22);                     /* ... then zero */
    bb_u8(&b, 0);
    bb_be64(&b, 2 * PS | 0x22);
    bb_u8(&b, 0);
    put_tail(&b, false);
    assert_int_equal(walk(&b, &src, &w, &err), 0);
    assert_false(w.mapped_ram);
    assert_int_equal(w.blocks[0].page_records, 3);
    assert_int_equal(w.blocks[0].zero_records, 2);
    assert_int_equal(w.blocks[0].pages_present, 1);
    assert_int_equal(w.blocks[0].pages_absent, 2);
    memset(&sink_mem, 0, sizeof(sink_mem));
    assert_int_equal(mr_extract_block(&src, &w, 0, &sink, &err), 0);
    assert_int_equal(sink_mem.buf[0], 0xbb);
    assert_int_equal(sink_mem.buf[PS - 1], 0xbb);
    assert_int_equal(sink_mem.buf[PS], 0);
    mr_walk_free(&w);
    bb_free(&b);
}

/* Past MR_WALK_MAX_SECTIONS sections and MR_WALK_MAX_COMMANDS commands
 * the walk counts instead of listing: memory does not grow with them. */
static void long_runs_are_counted(void **state)
{
    const char desc[] = "{\"devices\":[]}";
    const size_t parts = MR_WALK_MAX_SECTIONS + 100;
    const size_t cmds = MR_WALK_MAX_COMMANDS + 5;
    struct bytebuf b = { 0 };
    struct mr_source src;
    struct mr_walk w;
    struct mr_error err;

    (void)state;
    put_head(&b, true);
    bb_be64(&b, 1 * PS | 4);
    put_mr_block(&b, "mem", 1, 0x01, 0);
    bb_be64(&b, 0x10);
    bb_u8(&b, 0x7e);
    bb_be32(&b, 1);
    for (size_t i = 0; i < parts; i++) {
        bb_u8(&b, 0x02);
        bb_be32(&b, 1);
        bb_be64(&b, 0x10);
        bb_u8(&b, 0x7e);
        bb_be32(&b, 1);
        if (i % 20 == 0) {
            for (size_t k = 0; k < cmds / 5; k++) {
                bb_u8(&b, 0x08);
                bb_be16(&b, 11);
                bb_be16(&b, 0);
            }
        }
    }
    bb_u8(&b, 0x03);
    bb_be32(&b, 1);
    bb_be64(&b, 0x10);
    bb_u8(&b, 0x7e);
    bb_be32(&b, 1);
    bb_u8(&b, 0x00);
    bb_u8(&b, 0x06);
    bb_be32(&b, (uint32_t)strlen(desc));
    bb_put(&b, desc, strlen(desc));
    assert_int_equal(walk(&b, &src, &w, &err), 0);
    assert_true(w.complete);
    assert_true(w.ram_complete);
    assert_int_equal(w.nr_sections, MR_WALK_MAX_SECTIONS);
    assert_int_equal(w.sections[MR_WALK_MAX_SECTIONS - 1].type,
                     QEMU_VM_SECTION_PART);
    assert_int_equal(w.sections[MR_WALK_MAX_SECTIONS - 1].end -
                     w.sections[MR_WALK_MAX_SECTIONS - 1].start, 18);
    /* START + parts + END, the first 1024 listed */
    assert_int_equal(w.unlisted.count, parts + 2 - MR_WALK_MAX_SECTIONS);
    assert_int_equal(w.unlisted.by_type[QEMU_VM_SECTION_PART],
                     parts + 1 - MR_WALK_MAX_SECTIONS);
    assert_int_equal(w.unlisted.by_type[QEMU_VM_SECTION_END], 1);
    assert_int_equal(w.unlisted.bytes, w.unlisted.count * 18);
    assert_int_equal(w.nr_commands, MR_WALK_MAX_COMMANDS);
    assert_int_equal(w.command_counts[MIG_CMD_SWITCHOVER_START],
                     (parts + 19) / 20 * (cmds / 5));
    assert_string_equal(w.live[0].idstr, "ram");
    mr_walk_free(&w);
    bb_free(&b);
}

/* A legacy block past the final-state budget: counts, no pages_present,
 * and extract writes every record in order (a final ZERO writes zeros). */
static void legacy_past_the_map_budget(void **state)
{
    const uint64_t big = MR_WALK_LEGACY_MAP_BYTES * 8 * PS + PS;
    struct bytebuf b = { 0 };
    struct mr_source src;
    struct mr_walk w;
    struct mr_error err;
    static struct mem_sink sink_mem;
    struct mr_sink sink = { mem_write, &sink_mem };
    uint8_t page[PS];

    (void)state;
    put_head(&b, false);
    bb_be64(&b, big | 4);
    bb_str(&b, "mem");
    bb_be64(&b, big);
    memset(page, 0xaa, sizeof(page));
    bb_be64(&b, 0 | 0x08);                      /* page 0 = aa ... */
    bb_str(&b, "mem");
    bb_put(&b, page, sizeof(page));
    bb_be64(&b, 0 | 0x22);                      /* ... then zero */
    bb_u8(&b, 0);
    bb_be64(&b, PS | 0x28);                     /* page 1 = aa */
    bb_put(&b, page, sizeof(page));
    put_tail(&b, false);
    assert_int_equal(walk(&b, &src, &w, &err), 0);
    assert_null(w.blocks[0].final_map);
    assert_false(w.blocks[0].present_known);
    assert_int_equal(w.blocks[0].page_records, 2);
    assert_int_equal(w.blocks[0].zero_records, 1);
    memset(&sink_mem, 0x55, sizeof(sink_mem));
    assert_int_equal(mr_extract_block(&src, &w, 0, &sink, &err), 0);
    assert_int_equal(sink_mem.buf[0], 0);
    assert_int_equal(sink_mem.buf[PS - 1], 0);
    assert_int_equal(sink_mem.buf[PS], 0xaa);
    assert_int_equal(sink_mem.buf[2 * PS], 0x55);       /* never written */
    mr_walk_free(&w);
    bb_free(&b);
}

/* Close the open section (EOS, footer) and open PART section 1. */
static void next_part(struct bytebuf *b)
{
    bb_be64(b, 0x10);
    bb_u8(b, 0x7e);
    bb_be32(b, 1);
    bb_u8(b, 0x02);
    bb_be32(b, 1);
}

static void put_page(struct bytebuf *b, uint64_t addr, const char *name,
                     uint8_t fill)
{
    uint8_t page[PS];

    bb_be64(b, addr | (name ? 0x08 : 0x28));
    if (name)
        bb_str(b, name);
    memset(page, fill, sizeof(page));
    bb_put(b, page, sizeof(page));
}

/* QEMU keeps the last block named for the whole stream: a PART section
 * may start with CONTINUE, in the block the previous section ended in. */
static void legacy_continue_across_sections(void **state)
{
    struct bytebuf b = { 0 };
    struct mr_source src;
    struct mr_walk w;
    struct mr_error err;
    static struct mem_sink sink_mem;
    struct mr_sink sink = { mem_write, &sink_mem };

    (void)state;
    put_head(&b, false);
    bb_be64(&b, 4 * PS | 4);
    bb_str(&b, "a");
    bb_be64(&b, 2 * PS);
    bb_str(&b, "b");
    bb_be64(&b, 2 * PS);
    put_page(&b, 0, "a", 0x11);         /* START ends in 'a' */
    next_part(&b);
    put_page(&b, PS, NULL, 0x12);       /* CONTINUE: 'a' page 1 */
    put_page(&b, 0, "b", 0x21);
    next_part(&b);
    put_page(&b, PS, NULL, 0x22);       /* CONTINUE: 'b' page 1 */
    put_page(&b, 0, "a", 0x13);         /* interleaved: back to 'a' */
    next_part(&b);
    put_page(&b, PS, NULL, 0x14);       /* CONTINUE: 'a' again */
    put_tail(&b, false);
    assert_int_equal(walk(&b, &src, &w, &err), 0);
    assert_true(w.complete);
    assert_int_equal(w.nr_blocks, 2);
    assert_int_equal(w.blocks[0].page_records, 4);
    assert_int_equal(w.blocks[0].pages_present, 2);
    assert_int_equal(w.blocks[1].page_records, 2);
    assert_int_equal(w.blocks[1].pages_present, 2);
    memset(&sink_mem, 0, sizeof(sink_mem));
    assert_int_equal(mr_extract_block(&src, &w, 0, &sink, &err), 0);
    assert_int_equal(sink_mem.buf[0], 0x13);
    assert_int_equal(sink_mem.buf[PS], 0x14);
    memset(&sink_mem, 0, sizeof(sink_mem));
    assert_int_equal(mr_extract_block(&src, &w, 1, &sink, &err), 0);
    assert_int_equal(sink_mem.buf[0], 0x21);
    assert_int_equal(sink_mem.buf[PS], 0x22);
    mr_walk_free(&w);
    bb_free(&b);
}

/* A CONTINUE with no block named anywhere before it is still an error. */
static void legacy_continue_without_block(void **state)
{
    struct bytebuf b = { 0 };
    struct mr_source src;
    struct mr_walk w;
    struct mr_error err;
    char want[160];
    size_t rec;

    (void)state;
    put_head(&b, false);
    bb_be64(&b, PS | 4);
    bb_str(&b, "mem");
    bb_be64(&b, PS);
    next_part(&b);
    rec = b.len;
    put_page(&b, 0, NULL, 0x11);
    put_tail(&b, false);
    assert_int_equal(walk(&b, &src, &w, &err), -EINVAL);
    snprintf(want, sizeof(want), "Ack, bad migration stream!: expected a "
             "named block before the CONTINUE record at offset 0x%zx", rec);
    assert_string_equal(err.msg, want);
    mr_walk_free(&w);
    bb_free(&b);
}

static void legacy_offset_outside_block(void **state)
{
    struct bytebuf b = { 0 };
    struct mr_source src;
    struct mr_walk w;
    struct mr_error err;

    (void)state;
    put_head(&b, false);
    bb_be64(&b, PS | 4);
    bb_str(&b, "mem");
    bb_be64(&b, PS);
    bb_be64(&b, 0x10);
    bb_u8(&b, 0x7e);
    bb_be32(&b, 1);
    bb_u8(&b, 0x02);
    bb_be32(&b, 1);
    bb_be64(&b, 5 * PS | 0x02);
    bb_str(&b, "mem");
    bb_u8(&b, 0);
    assert_int_equal(walk(&b, &src, &w, &err), -EINVAL);
    assert_string_equal(err.msg, "Illegal RAM offset 5000: expected an offset "
                        "below 0x1000 in 'mem' at offset 0x46");
    mr_walk_free(&w);
    bb_free(&b);
}

static void device_without_vmdesc_entry(void **state)
{
    struct bytebuf b = { 0 };
    struct mr_source src;
    struct mr_walk w;
    struct mr_error err;

    (void)state;
    put_head(&b, true);
    bb_be64(&b, PS | 4);
    put_mr_block(&b, "mem", 1, 1, 0);
    bb_be64(&b, 0x10);
    bb_u8(&b, 0x7e);
    bb_be32(&b, 1);
    size_t dev = b.len;
    bb_u8(&b, 0x04);
    bb_be32(&b, 9);
    bb_str(&b, "other");
    bb_be32(&b, 0);
    bb_be32(&b, 1);
    bb_u8(&b, 0x7e);
    bb_be32(&b, 9);
    bb_u8(&b, 0x00);
    bb_u8(&b, 0x06);
    bb_be32(&b, (uint32_t)strlen(device_json));
    bb_put(&b, device_json, strlen(device_json));
    assert_int_equal(walk(&b, &src, &w, &err), -EINVAL);
    char want[200];
    snprintf(want, sizeof(want), "cannot walk past device section 'other' at "
             "offset 0x%zx: the VMDESCRIPTION has no entry for it", dev);
    assert_string_equal(err.msg, want);
    assert_false(w.complete);
    assert_int_equal(w.nr_blocks, 1);
    mr_walk_free(&w);
    bb_free(&b);
}

static void unknown_part_section(void **state)
{
    struct bytebuf b = { 0 };
    struct mr_source src;
    struct mr_walk w;
    struct mr_error err;

    (void)state;
    bb_put(&b, "QEVM\0\0\0\3", 8);
    bb_u8(&b, 0x07);
    bb_be32(&b, 2);
    bb_put(&b, "pc", 2);
    bb_u8(&b, 0x02);
    bb_be32(&b, 5);
    assert_int_equal(walk(&b, &src, &w, &err), -EINVAL);
    assert_string_equal(err.msg, "expected the id of a section opened by START "
                        "at offset 0x10, found 0x5");
    mr_walk_free(&w);
    bb_free(&b);
}

static void file_names_stay_in_the_directory(void **state)
{
    char out[261];

    (void)state;
    mr_extract_file_name("/rom@etc/acpi/tables", out);
    assert_string_equal(out, "rom@etc_acpi_tables.img");
    mr_extract_file_name("pc.ram", out);
    assert_string_equal(out, "pc.ram.img");
    mr_extract_file_name("/../../etc/passwd", out);
    assert_string_equal(out, "etc_passwd.img");
    mr_extract_file_name("..", out);
    assert_string_equal(out, "_.img");
    mr_extract_file_name("a b\n*", out);
    assert_string_equal(out, "a_b__.img");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mapped_ram_walk_and_extract),
        cmocka_unit_test(mapped_ram_layout_problems),
        cmocka_unit_test(legacy_last_write_wins),
        cmocka_unit_test(legacy_offset_outside_block),
        cmocka_unit_test(legacy_continue_across_sections),
        cmocka_unit_test(legacy_continue_without_block),
        cmocka_unit_test(long_runs_are_counted),
        cmocka_unit_test(legacy_past_the_map_budget),
        cmocka_unit_test(device_without_vmdesc_entry),
        cmocka_unit_test(unknown_part_section),
        cmocka_unit_test(file_names_stay_in_the_directory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
