/*
 * Item-at-a-time decoder for QEMU's migration stream (stream_parse.h).
 * Every length read from the file is bounded before it is used, and every
 * complaint names what was expected, what was found and where, prefixed by
 * QEMU's own message when QEMU has one for the condition.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "format/mapped_ram.h"
#include "format/stream_parse.h"

#define RAM_FLAGS_MASK (MR_TARGET_PAGE_SIZE - 1)

int mr_stream_read_header(struct mr_cursor *c, uint32_t *version)
{
    uint64_t off = c->pos;
    uint32_t magic = mr_cursor_be32(c, "stream magic");
    uint32_t v = mr_cursor_be32(c, "stream version");

    if (!mr_cursor_ok(c))
        return c->err.code;
    if (magic != QEMU_VM_FILE_MAGIC)
        return mr_cursor_fail(c, -EINVAL, "Not a migration stream: expected "
                              "magic 0x5145564d (\"QEVM\") at offset 0x%"
                              PRIx64 ", found 0x%08x", off, magic);
    if (v == QEMU_VM_FILE_VERSION_COMPAT)
        return mr_cursor_fail(c, -ENOTSUP, "SaveVM v2 format is obsolete and "
                              "don't work anymore: expected version 3 at "
                              "offset 0x%" PRIx64 ", found 2", off + 4);
    if (v != QEMU_VM_FILE_VERSION)
        return mr_cursor_fail(c, -ENOTSUP, "Unsupported migration stream "
                              "version: expected 3 at offset 0x%" PRIx64
                              ", found %u", off + 4, v);
    if (version)
        *version = v;
    return 0;
}

static int read_caps(struct mr_cursor *c, struct mr_stream_config *cfg)
{
    uint64_t off = c->pos;
    uint32_t count = mr_cursor_be32(c, "capability count");

    if (!mr_cursor_ok(c))
        return c->err.code;
    if (count > MR_STREAM_MAX_CAPS)
        return mr_cursor_expected(c, off, "at most 16 capabilities",
                                  "%u", count);
    cfg->has_caps = true;
    cfg->nr_caps = count;
    for (uint32_t i = 0; i < count; i++) {
        if (!mr_cursor_string(c, cfg->caps[i], "capability name"))
            return c->err.code;
        if (!strcmp(cfg->caps[i], "mapped-ram"))
            cfg->mapped_ram = true;
        else if (!strcmp(cfg->caps[i], "x-ignore-shared"))
            cfg->x_ignore_shared = true;
    }
    return 0;
}

/* One "configuration/..." subsection; *done when the list has ended. */
static int read_config_subsection(struct mr_cursor *c,
                                  struct mr_stream_config *cfg, bool *done)
{
    uint64_t start = c->pos, ver_off;
    char name[MR_STREAM_NAME_MAX];
    uint32_t version;

    if (mr_cursor_u8(c, "subsection type") != QEMU_VM_SUBSECTION ||
        !mr_cursor_string(c, name, "subsection name") ||
        strncmp(name, "configuration", strlen("configuration"))) {
        *done = true;
        if (!mr_cursor_ok(c))
            return c->err.code;
        mr_cursor_seek(c, start, "subsection");
        return 0;
    }
    ver_off = c->pos;
    version = mr_cursor_be32(c, "subsection version");
    if (mr_cursor_ok(c) && version != 1)
        return mr_cursor_expected(c, ver_off, "subsection version 1", "%u",
                                  version);
    if (!strcmp(name, CONFIG_SUBSECTION_PAGE_BITS)) {
        cfg->has_page_bits = true;
        cfg->target_page_bits = mr_cursor_be32(c, "target page bits");
    } else if (!strcmp(name, CONFIG_SUBSECTION_CAPABILITIES)) {
        read_caps(c, cfg);
    } else if (!strcmp(name, CONFIG_SUBSECTION_UUID)) {
        cfg->has_uuid = mr_cursor_bytes(c, cfg->uuid, 16, "VM UUID");
    } else {
        return mr_cursor_fail(c, -ENOENT, "unknown configuration subsection "
                              "'%s' at offset 0x%" PRIx64, name, start);
    }
    return mr_cursor_ok(c) ? 0 : c->err.code;
}

int mr_stream_read_config(struct mr_cursor *c, struct mr_stream_config *cfg)
{
    uint64_t off = c->pos;
    uint8_t type = mr_cursor_u8(c, "configuration section");
    uint32_t len;
    bool done = false;

    memset(cfg, 0, sizeof(*cfg));
    if (!mr_cursor_ok(c))
        return c->err.code;
    if (type != QEMU_VM_CONFIGURATION)
        return mr_cursor_fail(c, -EINVAL, "Configuration section missing: "
                              "expected 0x07 at offset 0x%" PRIx64
                              ", found 0x%02x", off, type);
    off = c->pos;
    len = mr_cursor_be32(c, "machine type length");
    if (mr_cursor_ok(c) && len > MR_STREAM_MACHINE_MAX)
        return mr_cursor_expected(c, off, "a machine type of at most 255 bytes",
                                  "a length of %u", len);
    if (!mr_cursor_bytes(c, cfg->machine, len, "machine type"))
        return c->err.code;
    cfg->machine[len] = '\0';
    if (strlen(cfg->machine) != len)
        return mr_cursor_expected(c, off + 4, "a machine type name",
                                  "a NUL byte inside it");
    while (!done && mr_cursor_ok(c) && c->pos < c->src->size)
        read_config_subsection(c, cfg, &done);
    return mr_cursor_ok(c) ? 0 : c->err.code;
}

int mr_stream_read_type(struct mr_cursor *c, uint8_t *type)
{
    *type = mr_cursor_u8(c, "section type");
    return mr_cursor_ok(c) ? 0 : c->err.code;
}

int mr_stream_read_section_header(struct mr_cursor *c, uint8_t type,
                                  uint64_t type_offset,
                                  struct mr_section_header *hdr)
{
    memset(hdr, 0, sizeof(*hdr));
    hdr->offset = type_offset;
    hdr->type = type;
    if (type < QEMU_VM_SECTION_START || type > QEMU_VM_SECTION_FULL)
        return mr_cursor_expected(c, type_offset, "a section type 1-4",
                                  "0x%02x", type);
    hdr->section_id = mr_cursor_be32(c, "section id");
    if (type == QEMU_VM_SECTION_START || type == QEMU_VM_SECTION_FULL) {
        uint64_t name_off = c->pos;

        if (mr_cursor_string(c, hdr->idstr, "section name") &&
            hdr->idstr[0] == '\0')
            return mr_cursor_expected(c, name_off, "a section name",
                                      "an empty name");
        hdr->instance_id = mr_cursor_be32(c, "instance id");
        hdr->version_id = mr_cursor_be32(c, "version id");
    }
    return mr_cursor_ok(c) ? 0 : c->err.code;
}

int mr_stream_read_footer(struct mr_cursor *c, uint32_t section_id,
                          const char *idstr)
{
    uint64_t off = c->pos;
    uint8_t type = mr_cursor_u8(c, "section footer");
    uint32_t id;

    if (!mr_cursor_ok(c))
        return c->err.code;
    if (type != QEMU_VM_SECTION_FOOTER)
        return mr_cursor_fail(c, -EINVAL, "Missing section footer for %s: "
                              "expected section footer 0x7e for '%s' at "
                              "offset 0x%" PRIx64 ", found 0x%02x",
                              idstr, idstr, off, type);
    id = mr_cursor_be32(c, "section footer id");
    if (mr_cursor_ok(c) && id != section_id)
        return mr_cursor_fail(c, -EINVAL, "Mismatched section id in footer "
                              "for %s - read 0x%x expected 0x%x (at offset "
                              "0x%" PRIx64 ")", idstr, id, section_id,
                              off + 1);
    return mr_cursor_ok(c) ? 0 : c->err.code;
}

static const char *const command_names[MIG_CMD_MAX] = {
    [MIG_CMD_INVALID] = "INVALID",
    [MIG_CMD_OPEN_RETURN_PATH] = "OPEN_RETURN_PATH",
    [MIG_CMD_PING] = "PING",
    [MIG_CMD_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
    [MIG_CMD_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
    [MIG_CMD_POSTCOPY_RUN] = "POSTCOPY_RUN",
    [MIG_CMD_POSTCOPY_RAM_DISCARD] = "POSTCOPY_RAM_DISCARD",
    [MIG_CMD_PACKAGED] = "PACKAGED",
    [MIG_CMD_ENABLE_COLO] = "ENABLE_COLO",
    [MIG_CMD_POSTCOPY_RESUME] = "POSTCOPY_RESUME",
    [MIG_CMD_RECV_BITMAP] = "RECV_BITMAP",
    [MIG_CMD_SWITCHOVER_START] = "SWITCHOVER_START",
};

const char *mr_stream_command_name(uint16_t cmd)
{
    return cmd < MIG_CMD_MAX ? command_names[cmd] : NULL;
}

const char *mr_stream_type_name(uint8_t type)
{
    switch (type) {
    case QEMU_VM_EOF: return "EOF";
    case QEMU_VM_SECTION_START: return "START";
    case QEMU_VM_SECTION_PART: return "PART";
    case QEMU_VM_SECTION_END: return "END";
    case QEMU_VM_SECTION_FULL: return "FULL";
    case QEMU_VM_SUBSECTION: return "SUBSECTION";
    case QEMU_VM_VMDESCRIPTION: return "VMDESCRIPTION";
    case QEMU_VM_CONFIGURATION: return "CONFIGURATION";
    case QEMU_VM_COMMAND: return "COMMAND";
    case QEMU_VM_SECTION_FOOTER: return "FOOTER";
    default: return NULL;
    }
}

/* Commands with a fixed payload length; -1 = any. */
static int command_fixed_len(uint16_t cmd)
{
    switch (cmd) {
    case MIG_CMD_PING:
    case MIG_CMD_PACKAGED:
        return 4;
    case MIG_CMD_OPEN_RETURN_PATH:
    case MIG_CMD_POSTCOPY_LISTEN:
    case MIG_CMD_POSTCOPY_RUN:
    case MIG_CMD_ENABLE_COLO:
    case MIG_CMD_POSTCOPY_RESUME:
    case MIG_CMD_SWITCHOVER_START:
        return 0;
    default:
        return -1;
    }
}

int mr_stream_read_command(struct mr_cursor *c, uint64_t type_offset,
                           struct mr_stream_command *cmd)
{
    int fixed;

    cmd->offset = type_offset;
    cmd->cmd = mr_cursor_be16(c, "command number");
    cmd->len = mr_cursor_be16(c, "command length");
    if (!mr_cursor_ok(c))
        return c->err.code;
    if (cmd->cmd == MIG_CMD_INVALID || cmd->cmd >= MIG_CMD_MAX)
        return mr_cursor_expected(c, type_offset + 1, "a command number "
                                  "1-11", "%u", cmd->cmd);
    fixed = command_fixed_len(cmd->cmd);
    if (fixed >= 0 && cmd->len != fixed)
        return mr_cursor_expected(c, type_offset + 3, "a length matching "
                                  "the command", "%u for %s", cmd->len,
                                  mr_stream_command_name(cmd->cmd));
    mr_cursor_skip(c, cmd->len, "command data");
    return mr_cursor_ok(c) ? 0 : c->err.code;
}

int mr_stream_read_vmdesc(struct mr_cursor *c, bool *present,
                          uint64_t *json_offset, uint32_t *json_len)
{
    uint64_t off = c->pos;
    uint8_t type;
    uint32_t len;

    *present = false;
    if (mr_cursor_at_end(c))
        return 0;
    type = mr_cursor_u8(c, "VMDESCRIPTION");
    if (mr_cursor_ok(c) && type != QEMU_VM_VMDESCRIPTION)
        return mr_cursor_fail(c, -EINVAL, "Expected vmdescription section, "
                              "but got %u: expected 0x06 at offset 0x%" PRIx64
                              ", found 0x%02x", type, off, type);
    len = mr_cursor_be32(c, "VMDESCRIPTION length");
    if (!mr_cursor_ok(c))
        return c->err.code;
    if (len > c->src->size - c->pos)
        return mr_cursor_expected(c, off + 1, "a VMDESCRIPTION length that "
                                  "fits in the file", "%u bytes, but the "
                                  "file ends 0x%" PRIx64 " bytes later", len,
                                  c->src->size - c->pos);
    *present = true;
    *json_offset = c->pos;
    *json_len = len;
    mr_cursor_skip(c, len, "VMDESCRIPTION JSON");
    return mr_cursor_ok(c) ? 0 : c->err.code;
}

int mr_ram_read_mem_size(struct mr_cursor *c, bool mapped_ram,
                         uint64_t *total_bytes)
{
    uint64_t off = c->pos;
    uint64_t v = mr_cursor_be64(c, "RAM MEM_SIZE record");
    uint32_t flags = (uint32_t)(v & RAM_FLAGS_MASK);

    if (!mr_cursor_ok(c))
        return c->err.code;
    if (mapped_ram && (flags & RAM_SAVE_FLAG_MAPPED_RAM_FORBIDDEN))
        return mr_cursor_fail(c, -EINVAL, "Unexpected RAM flags: %u "
                              "(expected MEM_SIZE 0x4 at offset 0x%" PRIx64
                              ")", flags & RAM_SAVE_FLAG_MAPPED_RAM_FORBIDDEN,
                              off);
    if (flags != RAM_SAVE_FLAG_MEM_SIZE)
        return mr_cursor_expected(c, off, "a RAM MEM_SIZE record (flags 0x4)",
                                  "flags 0x%x", flags);
    *total_bytes = v & ~RAM_FLAGS_MASK;
    return 0;
}

static int check_pages_in_file(struct mr_cursor *c,
                               const struct mr_ram_block_entry *blk)
{
    uint64_t size = c->src->size;
    uint64_t bitmap_size = mr_mapped_ram_bitmap_size(blk->used_length /
                                                     blk->page_size);

    if (blk->bitmap_offset > size || bitmap_size > size - blk->bitmap_offset)
        return mr_cursor_fail(c, -EIO, "Error reading dirty bitmap: expected "
                              "%" PRIu64 " bitmap bytes for '%s' at offset "
                              "0x%" PRIx64 ", found the end of the file at "
                              "0x%" PRIx64, bitmap_size, blk->idstr,
                              blk->bitmap_offset, size);
    if (blk->pages_offset > size || blk->used_length > size - blk->pages_offset)
        return mr_cursor_fail(c, -EIO, "truncated: expected 0x%" PRIx64
                              " bytes of pages for '%s' at offset 0x%" PRIx64
                              ", found the end of the file at 0x%" PRIx64,
                              blk->used_length, blk->idstr, blk->pages_offset,
                              size);
    return 0;
}

/* docs/stream-format.md, "Mapped-ram block header" and "Loading a mapped-ram stream": the 28-byte per-block header, then skip the pages. */
static int read_mapped_ram_header(struct mr_cursor *c,
                                  struct mr_ram_block_entry *blk)
{
    uint64_t left = c->src->size > c->pos ? c->src->size - c->pos : 0;

    blk->header_offset = c->pos;
    if (left < MAPPED_RAM_HDR_SIZE)
        return mr_cursor_fail(c, -EINVAL, "Could not read whole mapped-ram "
                              "migration header (expected 28, got %" PRIu64
                              " bytes) at offset 0x%" PRIx64, left, c->pos);
    blk->mr_version = mr_cursor_be32(c, "mapped-ram header version");
    blk->page_size = mr_cursor_be64(c, "mapped-ram page size");
    blk->bitmap_offset = mr_cursor_be64(c, "mapped-ram bitmap offset");
    blk->pages_offset = mr_cursor_be64(c, "mapped-ram pages offset");
    if (!mr_cursor_ok(c))
        return c->err.code;
    if (blk->mr_version > MAPPED_RAM_HDR_VERSION)
        return mr_cursor_fail(c, -EINVAL, "Migration mapped-ram capability "
                              "version not supported (expected <= 1, got %u) "
                              "at offset 0x%" PRIx64, blk->mr_version,
                              blk->header_offset);
    if (blk->page_size != MR_TARGET_PAGE_SIZE)
        return mr_cursor_expected(c, blk->header_offset + 4, "page size 4096",
                                  "%" PRIu64 " for '%s'", blk->page_size,
                                  blk->idstr);
    if (blk->pages_offset % MR_TARGET_PAGE_SIZE)
        return mr_cursor_fail(c, -EINVAL, "Error reading ramblock %s pages, "
                              "region has bad alignment: expected a multiple "
                              "of 4096 at offset 0x%" PRIx64 ", found 0x%"
                              PRIx64, blk->idstr, blk->header_offset + 20,
                              blk->pages_offset);
    if (check_pages_in_file(c, blk) < 0)
        return c->err.code;
    mr_cursor_seek(c, blk->pages_offset + blk->used_length, "next RAM block");
    return mr_cursor_ok(c) ? 0 : c->err.code;
}

int mr_ram_read_block_entry(struct mr_cursor *c, bool mapped_ram,
                            bool x_ignore_shared,
                            struct mr_ram_block_entry *blk)
{
    uint64_t len_off;

    memset(blk, 0, sizeof(*blk));
    blk->offset = c->pos;
    if (!mr_cursor_string(c, blk->idstr, "RAM block name"))
        return c->err.code;
    if (blk->idstr[0] == '\0')
        return mr_cursor_expected(c, blk->offset, "a RAM block name",
                                  "an empty name");
    len_off = c->pos;
    blk->used_length = mr_cursor_be64(c, "RAM block length");
    if (!mr_cursor_ok(c))
        return c->err.code;
    if (blk->used_length == 0 || blk->used_length > MR_RAM_BLOCK_MAX_BYTES ||
        blk->used_length % MR_TARGET_PAGE_SIZE)
        return mr_cursor_expected(c, len_off, "a RAM block length that is a "
                                  "non-zero multiple of 4096 up to 64 TiB",
                                  "0x%" PRIx64 " for '%s'", blk->used_length,
                                  blk->idstr);
    if (x_ignore_shared) {
        blk->has_gpa = true;
        blk->gpa = mr_cursor_be64(c, "RAM block guest address");
    }
    if (!mapped_ram)
        return mr_cursor_ok(c) ? 0 : c->err.code;
    return read_mapped_ram_header(c, blk);
}

static int read_page_block(struct mr_cursor *c, struct mr_ram_page_ctx *ctx,
                           struct mr_ram_page_record *rec)
{
    if (rec->flags & RAM_SAVE_FLAG_CONTINUE) {
        if (!ctx->have_block)
            return mr_cursor_fail(c, -EINVAL, "Ack, bad migration stream!: "
                                  "expected a named block before the "
                                  "CONTINUE record at offset 0x%" PRIx64,
                                  rec->offset);
    } else {
        uint64_t name_off = c->pos;

        if (!mr_cursor_string(c, ctx->idstr, "RAM block name"))
            return c->err.code;
        if (ctx->idstr[0] == '\0')
            return mr_cursor_expected(c, name_off, "a RAM block name",
                                      "an empty name");
        ctx->have_block = true;
    }
    memcpy(rec->idstr, ctx->idstr, sizeof(rec->idstr));
    return 0;
}

static int read_page_body(struct mr_cursor *c, uint32_t kind,
                          uint64_t page_size, struct mr_ram_page_record *rec)
{
    uint64_t off = c->pos;
    uint16_t len;

    switch (kind) {
    case RAM_SAVE_FLAG_ZERO:
        rec->fill = mr_cursor_u8(c, "zero page fill byte");
        if (mr_cursor_ok(c) && rec->fill != 0)
            return mr_cursor_fail(c, -EINVAL, "Found a zero page with value "
                                  "%u: expected 0x00 at offset 0x%" PRIx64,
                                  rec->fill, off);
        break;
    case RAM_SAVE_FLAG_PAGE:
        rec->data_offset = off;
        mr_cursor_skip(c, page_size, "page data");
        break;
    default: /* XBZRLE: encoding byte, be16 length, delta */
        mr_cursor_u8(c, "XBZRLE encoding");
        len = mr_cursor_be16(c, "XBZRLE length");
        mr_cursor_skip(c, len, "XBZRLE data");
        break;
    }
    return mr_cursor_ok(c) ? 0 : c->err.code;
}

int mr_ram_read_page_record(struct mr_cursor *c, bool mapped_ram,
                            uint64_t page_size, struct mr_ram_page_ctx *ctx,
                            struct mr_ram_page_record *rec)
{
    uint64_t v;
    uint32_t kind;

    memset(rec, 0, sizeof(*rec));
    rec->offset = c->pos;
    v = mr_cursor_be64(c, "RAM record");
    if (!mr_cursor_ok(c))
        return c->err.code;
    rec->flags = (uint32_t)(v & RAM_FLAGS_MASK);
    rec->addr = v & ~RAM_FLAGS_MASK;
    if (mapped_ram && (rec->flags & RAM_SAVE_FLAG_MAPPED_RAM_FORBIDDEN))
        return mr_cursor_fail(c, -EINVAL, "Unexpected RAM flags: %u (at "
                              "offset 0x%" PRIx64 ")", rec->flags &
                              RAM_SAVE_FLAG_MAPPED_RAM_FORBIDDEN, rec->offset);
    kind = rec->flags & ~(uint32_t)RAM_SAVE_FLAG_CONTINUE;
    switch (kind) {
    case RAM_SAVE_FLAG_EOS:
    case RAM_SAVE_FLAG_MULTIFD_FLUSH:
        if (rec->addr == 0 && !(rec->flags & RAM_SAVE_FLAG_CONTINUE))
            return 0;
        break;
    case RAM_SAVE_FLAG_ZERO:
    case RAM_SAVE_FLAG_PAGE:
    case RAM_SAVE_FLAG_XBZRLE:
        if (read_page_block(c, ctx, rec) < 0)
            return c->err.code;
        return read_page_body(c, kind, page_size, rec);
    default:
        break;
    }
    return mr_cursor_fail(c, -EINVAL, "Unknown combination of migration "
                          "flags: 0x%x (at offset 0x%" PRIx64 ")", rec->flags,
                          rec->offset);
}

int mr_ram_read_eos(struct mr_cursor *c)
{
    uint64_t off = c->pos;
    uint64_t v = mr_cursor_be64(c, "RAM EOS");

    if (mr_cursor_ok(c) && v != RAM_SAVE_FLAG_EOS)
        return mr_cursor_expected(c, off, "RAM end-of-section 0x10",
                                  "0x%016" PRIx64, v);
    return mr_cursor_ok(c) ? 0 : c->err.code;
}
