/*
 * Whole-file walk (stream_walk.h): header, configuration, sections until
 * EOF, the VMDESCRIPTION.  RAM sections are decoded fully, device sections
 * skipped with the VMDESCRIPTION field sizes.  Fatal problems stop the
 * walk with one message; soft findings go to w->problems.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/layout.h"
#include "format/mapped_ram.h"
#include "image/stream_walk.h"
#include "format/vmdesc.h"

#define BITMAP_CHUNK_BYTES (64 * 1024)

static void add_problem(struct mr_walk *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_problem(struct mr_walk *w, const char *fmt, ...)
{
    va_list ap;

    if (w->nr_problems >= MR_WALK_MAX_PROBLEMS)
        return;
    va_start(ap, fmt);
    vsnprintf(w->problems[w->nr_problems++], MR_ERROR_MSG_MAX, fmt, ap);
    va_end(ap);
}

/* Grow an array by one element; the new element is zeroed. */
static void *grow(void **arr, size_t *nr, size_t *cap, size_t elem,
                  struct mr_cursor *c)
{
    if (*nr == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        void *n = realloc(*arr, ncap * elem);

        if (!n) {
            mr_cursor_fail(c, -ENOMEM, "out of memory");
            return NULL;
        }
        *arr = n;
        *cap = ncap;
    }
    memset((char *)*arr + *nr * elem, 0, elem);
    return (char *)*arr + (*nr)++ * elem;
}

int mr_walk_find_block(const struct mr_walk *w, const char *idstr)
{
    for (size_t i = 0; i < w->nr_blocks; i++) {
        if (!strcmp(w->blocks[i].entry.idstr, idstr))
            return (int)i;
    }
    return -1;
}

/* Count bitmap bits in chunks: no allocation proportional to the block. */
static int count_bitmap(struct mr_cursor *c, struct mr_walk_block *b)
{
    uint8_t *chunk = malloc(BITMAP_CHUNK_BYTES);
    uint64_t done = 0;

    if (!chunk)
        return mr_cursor_fail(c, -ENOMEM, "out of memory");
    while (done < b->bitmap_size) {
        uint64_t n = b->bitmap_size - done;
        uint64_t first_page = done * 8, pages;

        if (n > BITMAP_CHUNK_BYTES)
            n = BITMAP_CHUNK_BYTES;
        if (mr_source_read(c->src, chunk, n, b->entry.bitmap_offset + done,
                           &c->err) < 0)
            break;
        pages = first_page < b->num_pages ? b->num_pages - first_page : 0;
        if (pages > n * 8)
            pages = n * 8;
        b->pages_present += mr_bitmap_le64_count(chunk, pages);
        b->bits_beyond += mr_bitmap_le64_count_beyond(chunk, n, pages);
        done += n;
    }
    free(chunk);
    b->pages_absent = b->num_pages - b->pages_present;
    return mr_cursor_ok(c) ? 0 : c->err.code;
}

/* Legacy: one bit per page for its final state, within the budget.  The
 * map is calloc'ed, so only the pages records touch become resident. */
static int add_final_map(struct mr_cursor *c, struct mr_walk *w,
                         struct mr_walk_block *b)
{
    uint64_t bytes = mr_mapped_ram_bitmap_size(b->num_pages);

    b->pages_absent = b->num_pages;
    if (w->in->visitor || bytes > MR_WALK_LEGACY_MAP_BYTES - w->legacy_map_bytes)
        return 0;
    b->final_map = calloc(1, (size_t)bytes);
    if (!b->final_map)
        return mr_cursor_fail(c, -ENOMEM, "out of memory");
    w->legacy_map_bytes += bytes;
    b->present_known = true;
    return 0;
}

static int add_block(struct mr_cursor *c, struct mr_walk *w,
                     const struct mr_ram_block_entry *e)
{
    struct mr_walk_block *b;

    if (mr_walk_find_block(w, e->idstr) >= 0)
        return mr_cursor_expected(c, e->offset, "a RAM block name not seen "
                                  "before", "'%s' again", e->idstr);
    if (w->nr_blocks >= MR_WALK_MAX_BLOCKS)
        return mr_cursor_expected(c, e->offset, "at most 256 RAM blocks",
                                  "more");
    b = &w->blocks[w->nr_blocks++];
    memset(b, 0, sizeof(*b));
    b->entry = *e;
    b->num_pages = e->used_length / MR_TARGET_PAGE_SIZE;
    b->allocated_bytes = -1;
    if (!w->mapped_ram)
        return add_final_map(c, w, b);
    b->bitmap_size = mr_mapped_ram_bitmap_size(b->num_pages);
    b->present_known = true;
    if (e->bitmap_offset != e->header_offset + MAPPED_RAM_HDR_SIZE)
        add_problem(w, "bitmap of '%s' at 0x%" PRIx64 " is not right after "
                    "its header (0x%" PRIx64 ")", e->idstr, e->bitmap_offset,
                    e->header_offset + MAPPED_RAM_HDR_SIZE);
    return count_bitmap(c, b);
}

/* START ram: MEM_SIZE, the block list, then the payload's records. */
static int walk_ram_setup(struct mr_cursor *c, struct mr_walk *w)
{
    uint64_t left;
    struct mr_ram_block_entry e;

    if (mr_ram_read_mem_size(c, w->mapped_ram, &w->ram_total_bytes) < 0)
        return c->err.code;
    if (!w->blocks) {
        w->blocks = calloc(MR_WALK_MAX_BLOCKS, sizeof(*w->blocks));
        if (!w->blocks)
            return mr_cursor_fail(c, -ENOMEM, "out of memory");
    }
    for (left = w->ram_total_bytes; left > 0;) {
        if (mr_ram_read_block_entry(c, w->mapped_ram,
                                    w->config.x_ignore_shared, &e) < 0)
            return c->err.code;
        if (e.used_length > left)
            return mr_cursor_expected(c, e.offset, "RAM blocks adding up to "
                                      "MEM_SIZE", "'%s' of 0x%" PRIx64 " "
                                      "bytes with only 0x%" PRIx64 " left",
                                      e.idstr, e.used_length, left);
        left -= e.used_length;
        if (add_block(c, w, &e) < 0 || (w->mapped_ram &&
            mr_layout_add(&w->in->layout, &e, c->src->size, &c->err) < 0))
            return c->err.code;
    }
    return 0;
}

/* Last write wins: a PAGE record makes the page present, a ZERO record
 * absent again. */
static void note_final(struct mr_walk_block *b, uint64_t page, bool data)
{
    bool was;

    if (!b->final_map)
        return;
    was = mr_bitmap_le64_test(b->final_map, page);
    if (data && !was) {
        mr_bitmap_le64_set(b->final_map, page);
        b->pages_present++;
    } else if (!data && was) {
        mr_bitmap_le64_clear(b->final_map, page);
        b->pages_present--;
    }
}

static int note_page(struct mr_cursor *c, struct mr_walk *w,
                     const struct mr_ram_page_record *r)
{
    int idx = mr_walk_find_block(w, r->idstr);
    struct mr_walk_block *b;
    uint64_t page;

    if (idx < 0)
        return mr_cursor_fail(c, -EINVAL, "Can't find block %s: expected a "
                              "block of the MEM_SIZE list in the record at "
                              "offset 0x%" PRIx64 ", found '%s'", r->idstr,
                              r->offset, r->idstr);
    b = &w->blocks[idx];
    if (r->addr >= b->entry.used_length)
        return mr_cursor_fail(c, -EINVAL, "Illegal RAM offset %" PRIx64
                              ": expected an offset below 0x%" PRIx64 " in "
                              "'%s' at offset 0x%" PRIx64, r->addr,
                              b->entry.used_length, r->idstr, r->offset);
    if (r->flags & RAM_SAVE_FLAG_XBZRLE)
        return mr_cursor_expected(c, r->offset, "a PAGE or ZERO record",
                                  "an XBZRLE record (not supported)");
    page = r->addr / MR_TARGET_PAGE_SIZE;
    if (r->flags & RAM_SAVE_FLAG_PAGE)
        b->page_records++;
    else
        b->zero_records++;
    note_final(b, page, r->flags & RAM_SAVE_FLAG_PAGE);
    if (w->in->visitor && w->in->visitor->page(w->in->visitor->opaque, (size_t)idx, page,
                                       r->flags & RAM_SAVE_FLAG_PAGE ?
                                       r->data_offset : 0, &c->err) < 0)
        return c->err.code ? c->err.code : mr_cursor_fail(c, -EIO, "the "
                                                          "page visitor "
                                                          "failed");
    return 0;
}

/* Records of a RAM payload up to its EOS.  As in QEMU, a CONTINUE record
 * may refer to a block named in an earlier section (docs/stream-format.md). */
static int walk_ram_records(struct mr_cursor *c, struct mr_walk *w)
{
    struct mr_ram_page_record r;

    for (;;) {
        if (mr_ram_read_page_record(c, w->mapped_ram, MR_TARGET_PAGE_SIZE,
                                    &w->in->pctx, &r) < 0)
            return c->err.code;
        if (r.flags == RAM_SAVE_FLAG_EOS)
            return 0;
        if (r.flags == RAM_SAVE_FLAG_MULTIFD_FLUSH)
            continue;
        if (note_page(c, w, &r) < 0)
            return c->err.code;
    }
}

/* The START section with this id: only live handlers have PART/END, and
 * there are few of them, so this stays cheap however many sections the
 * file has. */
static const struct mr_walk_section *find_start(const struct mr_walk *w,
                                                uint32_t id)
{
    for (size_t i = 0; i < w->nr_live; i++) {
        if (w->live[i].section_id == id)
            return &w->live[i];
    }
    return NULL;
}

static int walk_device(struct mr_cursor *c, struct mr_walk *w,
                       const struct mr_section_header *h);

/* Payload of a START/PART/END/FULL section, then its footer. */
static int walk_section_payload(struct mr_cursor *c, struct mr_walk *w,
                                struct mr_section_header *h)
{
    bool is_ram;

    is_ram = !strcmp(h->idstr, RAM_SECTION_IDSTR);
    if (h->type == QEMU_VM_SECTION_FULL) {
        if (walk_device(c, w, h) < 0)
            return c->err.code;
    } else if (!is_ram) {
        return mr_cursor_fail(c, -ENOTSUP, "cannot walk past live section "
                              "'%s' at offset 0x%" PRIx64 ": only 'ram' is "
                              "understood", h->idstr, h->offset);
    } else if (h->type == QEMU_VM_SECTION_START) {
        if (w->have_ram)
            return mr_cursor_expected(c, h->offset, "one START section for "
                                      "'ram'", "a second one");
        if (h->version_id != RAM_SECTION_VERSION)
            return mr_cursor_expected(c, h->offset + 9 + strlen(h->idstr),
                                      "'ram' section version 4", "%u",
                                      h->version_id);
        w->have_ram = true;
        w->ram_section_id = h->section_id;
        if (walk_ram_setup(c, w) < 0 || walk_ram_records(c, w) < 0)
            return c->err.code;
    } else if (walk_ram_records(c, w) < 0) {
        return c->err.code;
    }
    return mr_stream_read_footer(c, h->section_id, h->idstr);
}

static int load_vmdesc_for_devices(struct mr_cursor *c, struct mr_walk *w)
{
    uint64_t off;
    uint32_t len;
    struct mr_error err = MR_ERROR_INIT;

    if (mr_vmdesc_find(c->src, c->pos, &off, &len, &err) < 0)
        return err.code ? mr_cursor_fail(c, err.code, "%s", err.msg)
                        : mr_cursor_fail(c, -ENOENT, "expected a "
                                         "VMDESCRIPTION record (0x06, length, "
                                         "JSON) ending at the end of the file "
                                         "at offset 0x%" PRIx64 ", found none",
                                         c->src->size);
    if (mr_vmdesc_open(c->src, off, len, &w->in->vmdesc, &err) < 0)
        return mr_cursor_fail(c, err.code, "%s", err.msg);
    w->vmdesc_devices = w->in->vmdesc.nr_devices;
    w->vmdesc_offset = off;
    w->vmdesc_len = len;
    return 0;
}

static int walk_device(struct mr_cursor *c, struct mr_walk *w,
                       const struct mr_section_header *h)
{
    struct mr_error err = MR_ERROR_INIT;
    json_t *dev;

    if (!w->in->vmdesc.text)
        load_vmdesc_for_devices(c, w);
    if (mr_cursor_ok(c)) {
        dev = mr_vmdesc_next_device(&w->in->vmdesc, h->idstr, h->instance_id,
                                    &err);
        if (!dev && mr_error_is_set(&err))
            mr_cursor_fail(c, err.code, "%s", err.msg);
        else if (!dev)
            mr_cursor_fail(c, -EINVAL, "the VMDESCRIPTION has no entry for "
                           "it");
        else
            mr_vmdesc_skip_state(c, dev);
        json_decref(dev);
    }
    if (!mr_cursor_ok(c))
        mr_error_prefix(&c->err, "cannot walk past device section '%s' at "
                        "offset 0x%" PRIx64 ": ", h->idstr, h->offset);
    return mr_cursor_ok(c) ? 0 : c->err.code;
}

/* PART/END take idstr, instance and version from their START. */
static int resolve_part(struct mr_cursor *c, const struct mr_walk *w,
                        struct mr_section_header *h)
{
    const struct mr_walk_section *s;

    if (h->type != QEMU_VM_SECTION_PART && h->type != QEMU_VM_SECTION_END)
        return 0;
    s = find_start(w, h->section_id);
    if (!s)
        return mr_cursor_expected(c, h->offset + 1, "the id of a section "
                                  "opened by START", "0x%x", h->section_id);
    memcpy(h->idstr, s->idstr, sizeof(h->idstr));
    h->instance_id = s->instance_id;
    h->version_id = s->version_id;
    return 0;
}

static int open_live(struct mr_cursor *c, struct mr_walk *w,
                     const struct mr_walk_section *s)
{
    if (find_start(w, s->section_id))
        return mr_cursor_expected(c, s->start + 1, "a new section id",
                                  "0x%x again for '%s'", s->section_id,
                                  s->idstr);
    if (w->nr_live >= MR_WALK_MAX_LIVE)
        return mr_cursor_expected(c, s->start, "at most 64 START sections",
                                  "more");
    w->live[w->nr_live++] = *s;
    return 0;
}

/* List a new section (end still 0) and set *listed to its number + 1,
 * or, once the list is full, only count it (*listed = 0). */
static int list_section(struct mr_cursor *c, struct mr_walk *w,
                        const struct mr_walk_section *s, size_t *listed)
{
    struct mr_walk_section *e;

    *listed = 0;
    if (w->nr_sections >= MR_WALK_MAX_SECTIONS) {
        w->unlisted.count++;
        w->unlisted.by_type[s->type]++;
        return 0;
    }
    e = grow((void **)&w->sections, &w->nr_sections, &w->cap_sections,
             sizeof(*e), c);
    if (!e)
        return c->err.code;
    *e = *s;
    *listed = w->nr_sections;
    return 0;
}

static int walk_section(struct mr_cursor *c, struct mr_walk *w, uint8_t type,
                        uint64_t off)
{
    struct mr_section_header h;
    struct mr_walk_section s = { 0 };
    size_t listed;

    if (mr_stream_read_section_header(c, type, off, &h) < 0 ||
        resolve_part(c, w, &h) < 0)
        return c->err.code;
    s.type = type;
    s.section_id = h.section_id;
    s.start = off;
    memcpy(s.idstr, h.idstr, sizeof(s.idstr));
    s.instance_id = h.instance_id;
    s.version_id = h.version_id;
    if (type == QEMU_VM_SECTION_START && open_live(c, w, &s) < 0)
        return c->err.code;
    /* Listed before the payload, so a broken one still shows. */
    if (list_section(c, w, &s, &listed) < 0 ||
        walk_section_payload(c, w, &h) < 0)
        return c->err.code;
    if (type == QEMU_VM_SECTION_END && h.section_id == w->ram_section_id &&
        w->have_ram)
        w->ram_complete = true;
    if (listed)
        w->sections[listed - 1].end = c->pos;
    else
        w->unlisted.bytes += c->pos - off;
    return 0;
}

static int walk_trailer(struct mr_cursor *c, struct mr_walk *w)
{
    uint64_t off;
    uint32_t len;
    bool present;

    if (mr_stream_read_vmdesc(c, &present, &off, &len) < 0)
        return c->err.code;
    w->stream_end = c->pos;
    if (!present) {
        add_problem(w, "no VMDESCRIPTION after EOF at offset 0x%" PRIx64,
                    w->eof_offset);
        return 0;
    }
    if (w->in->vmdesc.text && off != w->vmdesc_offset)
        add_problem(w, "the VMDESCRIPTION at 0x%" PRIx64 " is not the one "
                    "found at the end of the file (0x%" PRIx64 ")", off,
                    w->vmdesc_offset);
    if (!w->in->vmdesc.text) {
        struct mr_error err = MR_ERROR_INIT;

        if (mr_vmdesc_open(c->src, off, len, &w->in->vmdesc, &err) < 0)
            return mr_cursor_fail(c, err.code, "%s", err.msg);
        w->vmdesc_devices = w->in->vmdesc.nr_devices;
    }
    w->vmdesc_present = true;
    w->vmdesc_offset = off;
    w->vmdesc_len = len;
    if (c->pos < c->src->size)
        add_problem(w, "%" PRIu64 " bytes after the end of the stream at "
                    "0x%" PRIx64, c->src->size - c->pos, c->pos);
    return 0;
}

static int walk_command(struct mr_cursor *c, struct mr_walk *w, uint64_t off)
{
    struct mr_stream_command sc;
    struct mr_walk_command *cmd;

    if (mr_stream_read_command(c, off, &sc) < 0)
        return c->err.code;
    w->command_counts[sc.cmd]++;
    if (w->nr_commands >= MR_WALK_MAX_COMMANDS)
        return 0;
    cmd = grow((void **)&w->commands, &w->nr_commands, &w->cap_commands,
               sizeof(*cmd), c);
    if (!cmd)
        return c->err.code;
    cmd->offset = sc.offset;
    cmd->cmd = sc.cmd;
    cmd->len = sc.len;
    return 0;
}

static int walk_items(struct mr_cursor *c, struct mr_walk *w)
{
    for (;;) {
        uint64_t off = c->pos;
        uint8_t type;

        if (mr_stream_read_type(c, &type) < 0)
            return c->err.code;
        switch (type) {
        case QEMU_VM_SECTION_START:
        case QEMU_VM_SECTION_PART:
        case QEMU_VM_SECTION_END:
        case QEMU_VM_SECTION_FULL:
            if (walk_section(c, w, type, off) < 0)
                return c->err.code;
            /* A visiting walk has seen every RAM record. */
            if (w->in->visitor && w->ram_complete)
                return 0;
            break;
        case QEMU_VM_COMMAND:
            if (walk_command(c, w, off) < 0)
                return c->err.code;
            break;
        case QEMU_VM_EOF:
            w->eof_seen = true;
            w->eof_offset = off;
            return walk_trailer(c, w);
        default:
            return mr_cursor_expected(c, off, "a section type (0x00-0x04 or "
                                      "0x08)", "0x%02x", type);
        }
    }
}

/* Legacy: what stays absent once the last records are known. */
static void finish_legacy(struct mr_walk *w)
{
    for (size_t i = 0; i < w->nr_blocks; i++) {
        struct mr_walk_block *b = &w->blocks[i];

        b->pages_absent = b->present_known ? b->num_pages - b->pages_present
                                           : 0;
    }
}

static void finish(struct mr_walk *w)
{
    if (!w->mapped_ram)
        finish_legacy(w);
    for (size_t i = 0; i < w->nr_blocks; i++) {
        if (w->blocks[i].bits_beyond)
            add_problem(w, "bitmap of '%s' has %" PRIu64 " bits set beyond "
                        "its %" PRIu64 " pages", w->blocks[i].entry.idstr,
                        w->blocks[i].bits_beyond, w->blocks[i].num_pages);
    }
}

/* mapram's checksum trailer sits after the stream: note it and walk only
 * what precedes it.  A damaged footer or trailer stops the walk: where
 * the stream ends is then unknown. */
static int find_trailer(struct mr_source *stream, struct mr_walk *w,
                        struct mr_error *err)
{
    bool have = false;
    int rc = mr_cksum_open(stream, &w->cksum, &have, err);
    uint64_t at;

    w->have_cksum = have;
    w->cksum_offset = stream->size;
    /* An interrupted seal's trailer does not count: the stream ends
     * before it (docs/seal.md). */
    if (!rc && !have && mr_cksum_find_unfinished(stream,
                                    w->loc.stream_offset, &at) == 0) {
        w->unfinished_trailer = true;
        stream->size = at;
    }
    return rc;
}

int mr_walk_file(const struct mr_source *src, int64_t explicit_offset,
                 struct mr_walk *w, struct mr_error *err)
{
    return mr_walk_file_visit(src, explicit_offset, NULL, w, err);
}

int mr_walk_file_visit(const struct mr_source *src, int64_t explicit_offset,
                       const struct mr_walk_visitor *v, struct mr_walk *w,
                       struct mr_error *err)
{
    struct mr_source stream = *src;
    struct mr_cursor *c;
    int ret;

    memset(w, 0, sizeof(*w));
    w->in = calloc(1, sizeof(*w->in));
    if (!w->in)
        return mr_error_set(err, -ENOMEM, "out of memory");
    w->in->visitor = v;
    w->file_size = src->size;
    if (mr_stream_locate(src, explicit_offset, &w->loc, err) < 0 ||
        mr_libvirt_check_readable(&w->loc, err) < 0)
        return err->code;
    if (find_trailer(&stream, w, err))
        return err->code;
    c = malloc(sizeof(*c));
    if (!c)
        return mr_error_set(err, -ENOMEM, "out of memory");
    mr_cursor_init(c, &stream, w->loc.stream_offset);
    if (mr_stream_read_header(c, &w->stream_version) == 0 &&
        mr_stream_read_config(c, &w->config) == 0) {
        w->have_config = true;
        w->mapped_ram = w->config.mapped_ram;
        if (walk_items(c, w) == 0)
            w->complete = true;
    }
    finish(w);
    if (!w->stream_end)
        w->stream_end = c->pos;
    ret = mr_error_propagate(err, &c->err);
    free(c);
    return ret;
}

void mr_walk_free(struct mr_walk *w)
{
    for (size_t i = 0; w->blocks && i < w->nr_blocks; i++)
        free(w->blocks[i].final_map);
    free(w->sections);
    free(w->commands);
    free(w->blocks);
    if (w->in) {
        mr_vmdesc_close(&w->in->vmdesc);
        mr_layout_free(&w->in->layout);
        free(w->in);
    }
    mr_cksum_free(&w->cksum);
    memset(w, 0, sizeof(*w));
}
