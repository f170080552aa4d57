/*
 * mapram inspect FILE [--offset N] [--json | --xml]: what is in a save file
 * (--xml: a libvirt image's domain XML, as virsh save-image-dumpxml).
 * The walk (libmapram format/stream_walk) does the reading; this file only
 * presents the model, as text for people or as JSON for programs (schema
 * in docs/inspect.md).  A broken file still shows what could be read, and
 * gets one line on stderr saying what was expected, found and where.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "launch_config.h"

/* Bumped only if a key changes meaning; new keys do not bump it. */
#define MR_INSPECT_JSON_SCHEMA 1

static void usage(FILE *out)
{
    fprintf(out, "usage: mapram inspect FILE [--offset N] [--json | --xml]\n"
            "  --offset N   the QEMU stream starts at byte N (default: "
            "detect)\n"
            "  --json       machine-readable output (docs/inspect.md)\n"
            "  --xml        print a libvirt image's domain XML\n"
            "exit status: 0 readable, 1 broken or incomplete, 2 usage\n");
}

static uint64_t cksum_extents(const struct mr_walk *w)
{
    uint64_t n = 0;

    for (uint32_t i = 0; i < w->cksum.nblocks; i++)
        n += w->cksum.blocks[i].nr_extents;
    return n;
}

static json_t *json_u64(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* Names come from the file and need not be UTF-8, which JSON strings must
 * be: fall back to escaping every non-ASCII byte as \xNN. */
json_t *json_text(const char *s)
{
    char buf[4 * MR_ERROR_MSG_MAX + 1];
    json_t *j = json_string(s);
    size_t n = 0;

    if (j)
        return j;
    for (; *s && n + 5 < sizeof(buf); s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch >= 0x20 && ch < 0x7f)
            buf[n++] = (char)ch;
        else
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\\x%02x", ch);
    }
    buf[n] = '\0';
    return json_string(buf);
}

/* Text from the file, for a terminal (cli_printable). */
static const char *printable(const char *s, char buf[MR_STREAM_NAME_MAX])
{
    return cli_printable(s, buf, MR_STREAM_NAME_MAX);
}

static json_t *container_json(const struct mr_walk *w)
{
    const struct mr_location *l = &w->loc;
    json_t *o = json_pack("{s:s, s:o, s:b}", "kind",
                          mr_container_name(l->kind), "stream_offset",
                          json_u64(l->stream_offset), "incomplete",
                          l->incomplete);

    if (l->kind == MR_CONTAINER_LIBVIRT)
        json_object_set_new(o, "libvirt", json_pack(
            "{s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:s?, s:I, s:I, s:I}",
            "complete", l->libvirt.complete,
            "magic", l->libvirt.complete ? "LibvirtQemudSave"
                                         : "LibvirtQemudPart",
            "byte_order", l->libvirt.big_endian ? "big" : "little",
            "version", (json_int_t)l->libvirt.version,
            "data_len", (json_int_t)l->libvirt.data_len,
            "was_running", (json_int_t)l->libvirt.was_running,
            "format", (json_int_t)l->libvirt.format,
            "format_name", mr_libvirt_format_name(l->libvirt.format),
            "cookie_offset", (json_int_t)l->libvirt.cookie_offset,
            "xml_len", (json_int_t)l->libvirt.xml_len,
            "cookie_len", (json_int_t)l->libvirt.cookie_len));
    if (l->kind == MR_CONTAINER_MAPRAM) {
        const struct mr_file_header *h = &l->mapram;

        json_object_set_new(o, "mapram", json_pack(
            "{s:I, s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o}",
            "version", (json_int_t)h->version,
            "state", mr_file_header_is_complete(h) ? "DONE" : "PART",
            "header_size", (json_int_t)h->header_size,
            "flags", (json_int_t)h->flags,
            "stream_size", json_u64(h->stream_size),
            "ram_size", json_u64(h->ram_size),
            "created", json_u64(h->created),
            "header_crc", json_u64(h->header_crc),
            "channels", (json_int_t)h->channels,
            "vm_name", json_text(h->vm_name),
            "tool_version", json_text(h->tool_version),
            "vm_version", json_text(h->vm_version)));
    }
    if (l->kind == MR_CONTAINER_PROBED)
        json_object_set_new(o, "prefix", json_string(l->prefix_preview));
    return o;
}

static json_t *stream_json(const struct mr_walk *w)
{
    json_t *caps = json_array();

    for (uint32_t i = 0; i < w->config.nr_caps; i++)
        json_array_append_new(caps, json_text(w->config.caps[i]));
    return json_pack("{s:i, s:o, s:o, s:s}", "version",
                     (int)w->stream_version, "machine",
                     json_text(w->config.machine),
                     "capabilities", caps, "ram_format",
                     w->mapped_ram ? "mapped-ram" : "legacy");
}

/* Legacy blocks past the walk's map budget have no exact count. */
static json_t *present_json(const struct mr_walk_block *b, uint64_t v)
{
    return b->present_known ? json_u64(v) : json_null();
}

static json_t *block_json(const struct mr_walk *w,
                          const struct mr_walk_block *b)
{
    json_t *o = json_pack("{s:o, s:o, s:i, s:o, s:o, s:o, s:o}",
                          "name", json_text(b->entry.idstr),
                          "used_length", json_u64(b->entry.used_length),
                          "page_size", (int)MR_STREAM_PAGE_SIZE,
                          "num_pages", json_u64(b->num_pages),
                          "pages_present", present_json(b, b->pages_present),
                          "pages_absent", present_json(b, b->pages_absent),
                          "entry_offset", json_u64(b->entry.offset));

    if (w->mapped_ram) {
        json_object_set_new(o, "header_offset",
                            json_u64(b->entry.header_offset));
        json_object_set_new(o, "bitmap_offset",
                            json_u64(b->entry.bitmap_offset));
        json_object_set_new(o, "bitmap_size", json_u64(b->bitmap_size));
        json_object_set_new(o, "pages_offset", json_u64(b->entry.pages_offset));
        json_object_set_new(o, "bits_beyond", json_u64(b->bits_beyond));
        json_object_set_new(o, "allocated_bytes", b->allocated_bytes < 0
                            ? json_null()
                            : json_u64((uint64_t)b->allocated_bytes));
    } else {
        json_object_set_new(o, "page_records", json_u64(b->page_records));
        json_object_set_new(o, "zero_records", json_u64(b->zero_records));
    }
    return o;
}

static json_t *sections_json(const struct mr_walk *w)
{
    json_t *a = json_array();

    for (size_t i = 0; i < w->nr_sections; i++) {
        const struct mr_walk_section *s = &w->sections[i];

        json_array_append_new(a, json_pack(
            "{s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "type",
            mr_stream_type_name(s->type), "id", json_u64(s->section_id),
            "idstr", json_text(s->idstr), "instance", json_u64(s->instance_id),
            "version", json_u64(s->version_id), "start", json_u64(s->start),
            "end", s->end ? json_u64(s->end) : json_null()));
    }
    return a;
}

static json_t *unlisted_json(const struct mr_walk *w)
{
    json_t *types = json_object();

    for (uint8_t t = MR_SECTION_START; t <= MR_SECTION_FULL; t++)
        if (w->unlisted.by_type[t])
            json_object_set_new(types, mr_stream_type_name(t),
                                json_u64(w->unlisted.by_type[t]));
    return json_pack("{s:o, s:o, s:o}", "count", json_u64(w->unlisted.count),
                     "bytes", json_u64(w->unlisted.bytes), "types", types);
}

static json_t *command_counts_json(const struct mr_walk *w)
{
    json_t *o = json_object();

    for (uint16_t i = 0; i < MR_WALK_CMD_KINDS; i++)
        if (w->command_counts[i])
            json_object_set_new(o, mr_stream_command_name(i),
                                json_u64(w->command_counts[i]));
    return o;
}

static uint64_t commands_total(const struct mr_walk *w)
{
    uint64_t n = 0;

    for (uint16_t i = 0; i < MR_WALK_CMD_KINDS; i++)
        n += w->command_counts[i];
    return n;
}

static json_t *model_json(const struct cli_file *f)
{
    const struct mr_walk *w = &f->walk;
    json_t *root = json_pack("{s:i, s:o, s:o, s:o}", "schema",
                             MR_INSPECT_JSON_SCHEMA, "file",
                             json_text(f->path),
                             "file_size",
                             json_u64(w->file_size), "container",
                             container_json(w));
    json_t *blocks = json_array(), *cmds = json_array(), *probs = json_array();

    json_object_set_new(root, "launch", w->loc.kind == MR_CONTAINER_MAPRAM ?
                        launch_config_json(f->fd, &w->loc.mapram) : json_null());
    if (w->have_config)
        json_object_set_new(root, "stream", stream_json(w));
    json_object_set_new(root, "sections", sections_json(w));
    for (size_t i = 0; i < w->nr_commands; i++) {
        const char *name = mr_stream_command_name(w->commands[i].cmd);

        json_array_append_new(cmds, json_pack("{s:o, s:s, s:i, s:i}",
            "offset", json_u64(w->commands[i].offset), "name",
            name ? name : "?", "number", (int)w->commands[i].cmd, "length",
            (int)w->commands[i].len));
    }
    json_object_set_new(root, "sections_not_listed", unlisted_json(w));
    json_object_set_new(root, "commands", cmds);
    json_object_set_new(root, "command_counts", command_counts_json(w));
    json_object_set_new(root, "commands_not_listed",
                        json_u64(commands_total(w) - w->nr_commands));
    for (size_t i = 0; i < w->nr_blocks; i++)
        json_array_append_new(blocks, block_json(w, &w->blocks[i]));
    json_object_set_new(root, "ram", w->have_ram ? json_pack(
        "{s:o, s:o, s:o}", "section_id", json_u64(w->ram_section_id),
        "total_bytes", json_u64(w->ram_total_bytes), "blocks", blocks)
        : (json_decref(blocks), json_null()));
    json_object_set_new(root, "eof_offset", w->eof_seen
                        ? json_u64(w->eof_offset) : json_null());
    json_object_set_new(root, "vmdesc", w->vmdesc_present ? json_pack(
        "{s:o, s:o, s:o}", "offset", json_u64(w->vmdesc_offset), "length",
        json_u64(w->vmdesc_len), "devices", json_u64(w->vmdesc_devices))
        : json_null());
    json_object_set_new(root, "stream_end", json_u64(w->stream_end));
    json_object_set_new(root, "checksums", w->have_cksum ? json_pack(
        "{s:s, s:o, s:o, s:o}", "algorithm", "crc32c", "extent_bytes",
        json_u64(MR_CKSUM_EXTENT_BYTES), "trailer_offset",
        json_u64(w->cksum_offset), "extents", json_u64(cksum_extents(w)))
        : json_null());
    for (size_t i = 0; i < w->nr_problems; i++)
        json_array_append_new(probs, json_text(w->problems[i]));
    json_object_set_new(root, "problems", probs);
    json_object_set_new(root, "ram_complete", json_boolean(w->ram_complete));
    json_object_set_new(root, "complete", json_boolean(w->complete));
    json_object_set_new(root, "error", mr_error_is_set(&f->err)
                        ? json_text(f->err.msg) : json_null());
    return root;
}

static void print_container(const struct mr_walk *w)
{
    const struct mr_location *l = &w->loc;
    char name[MR_STREAM_NAME_MAX], vm[MR_STREAM_NAME_MAX],
         tool[MR_STREAM_NAME_MAX];

    printf("  container     %s, stream at offset 0x%" PRIx64 "\n",
           mr_container_name(l->kind), l->stream_offset);
    if (l->kind == MR_CONTAINER_LIBVIRT)
        printf("  libvirt       %s, version %u, %s-endian, format %u (%s), "
               "was_running %u\n"
               "                XML %u bytes, cookie %u bytes\n",
               l->libvirt.complete ? "complete (LibvirtQemudSave)"
                                   : "INCOMPLETE (LibvirtQemudPart)",
               l->libvirt.version, l->libvirt.big_endian ? "big" : "little",
               l->libvirt.format, mr_libvirt_format_name(l->libvirt.format),
               l->libvirt.was_running, l->libvirt.xml_len,
               l->libvirt.cookie_len);
    if (l->kind == MR_CONTAINER_MAPRAM)
        printf("  mapram header %s, vm '%s' (%s), written by %s, %u "
               "channels\n", mr_file_header_is_complete(&l->mapram)
               ? "complete (DONE)" : "INCOMPLETE (PART)",
               printable(l->mapram.vm_name, name),
               printable(l->mapram.vm_version, vm),
               printable(l->mapram.tool_version, tool), l->mapram.channels);
    if (l->kind == MR_CONTAINER_PROBED)
        printf("  prefix        0x%" PRIx64 " bytes of unknown data before "
               "the stream (starts \"%s\")\n", l->stream_offset,
               l->prefix_preview);
}

/* Past the listed commands: how many more of each kind. */
static void print_more_commands(const struct mr_walk *w)
{
    uint64_t more = commands_total(w) - w->nr_commands;
    const char *sep = "";

    if (!more)
        return;
    printf("  command       %" PRIu64 " more not listed (all %" PRIu64 ":",
           more, commands_total(w));
    for (uint16_t i = 0; i < MR_WALK_CMD_KINDS; i++) {
        if (w->command_counts[i]) {
            printf("%s %s %" PRIu64, sep, mr_stream_command_name(i),
                   w->command_counts[i]);
            sep = ",";
        }
    }
    printf(")\n");
}

static void print_summary(const struct cli_file *f)
{
    const struct mr_walk *w = &f->walk;
    char hb[32], name[MR_STREAM_NAME_MAX];

    printf("%s: %s\n", f->path, cli_human_bytes(w->file_size, hb, sizeof(hb)));
    print_container(w);
    if (!w->have_config)
        return;
    printf("  stream        QEVM version %u, machine %s\n", w->stream_version,
           printable(w->config.machine, name));
    printf("  capabilities  ");
    for (uint32_t i = 0; i < w->config.nr_caps; i++)
        printf("%s%s", i ? ", " : "", printable(w->config.caps[i], name));
    printf("%s\n", w->config.nr_caps ? "" : "(none)");
    if (w->have_ram)
        printf("  RAM           %s, %zu blocks, %s\n", w->mapped_ram
               ? "mapped-ram" : "legacy page records", w->nr_blocks,
               cli_human_bytes(w->ram_total_bytes, hb, sizeof(hb)));
    if (w->have_ram && w->mapped_ram) {
        uint64_t logical = 0, present = 0, alloc = 0;
        bool measured = true;
        char hp[32], ha[32];

        for (size_t i = 0; i < w->nr_blocks; i++) {
            logical += w->blocks[i].entry.used_length;
            present += w->blocks[i].pages_present * MR_STREAM_PAGE_SIZE;
            measured &= w->blocks[i].allocated_bytes >= 0;
            if (w->blocks[i].allocated_bytes > 0)
                alloc += (uint64_t)w->blocks[i].allocated_bytes;
        }
        printf("  pages area    %s logical, %s present, %s allocated\n",
               cli_human_bytes(logical, hb, sizeof(hb)),
               cli_human_bytes(present, hp, sizeof(hp)),
               measured ? cli_human_bytes(alloc, ha, sizeof(ha)) : "?");
    }
    for (size_t i = 0; i < w->nr_commands; i++)
        printf("  command       %s at 0x%" PRIx64 "\n",
               mr_stream_command_name(w->commands[i].cmd),
               w->commands[i].offset);
    print_more_commands(w);
    if (w->eof_seen)
        printf("  end           EOF at 0x%" PRIx64 ", VMDESCRIPTION %s\n",
               w->eof_offset, w->vmdesc_present ? "present" : "missing");
    if (w->have_cksum)
        printf("  checksums     CRC32C per 1 MiB extent, %" PRIu64 " extents, "
               "trailer at 0x%" PRIx64 " (mapram verify checks them)\n",
               cksum_extents(w), w->cksum_offset);
    else
        printf("  checksums     none (not written by mapram-vm)\n");
}

static const char *count_text(const struct mr_walk_block *b, uint64_t v,
                              char buf[24])
{
    if (!b->present_known)
        return "?";
    snprintf(buf, 24, "%" PRIu64, v);
    return buf;
}

static void print_blocks(const struct mr_walk *w)
{
    char a[32], b[32], p1[24], p2[24], name[MR_STREAM_NAME_MAX];

    if (!w->nr_blocks)
        return;
    printf("\nRAM blocks:\n");
    if (w->mapped_ram)
        printf("  %-22s %10s %7s %7s %7s %10s %10s %10s\n", "NAME", "LENGTH",
               "PAGES", "PRESENT", "ABSENT", "BITMAP@", "PAGES@",
               "ALLOCATED");
    else
        printf("  %-22s %10s %7s %7s %7s %9s %9s\n", "NAME", "LENGTH", "PAGES",
               "PRESENT", "ABSENT", "PAGE-RECS", "ZERO-RECS");
    for (size_t i = 0; i < w->nr_blocks; i++) {
        const struct mr_walk_block *k = &w->blocks[i];

        printf("  %-22s %10s %7" PRIu64 " %7s %7s",
               printable(k->entry.idstr, name),
               cli_human_bytes(k->entry.used_length, a,
                                               sizeof(a)),
               k->num_pages, count_text(k, k->pages_present, p1),
               count_text(k, k->pages_absent, p2));
        if (w->mapped_ram)
            printf(" %#10" PRIx64 " %#10" PRIx64 " %10s\n",
                   k->entry.bitmap_offset, k->entry.pages_offset,
                   k->allocated_bytes < 0 ? "?" :
                   cli_human_bytes((uint64_t)k->allocated_bytes, b,
                                   sizeof(b)));
        else
            printf(" %9" PRIu64 " %9" PRIu64 "\n", k->page_records,
                   k->zero_records);
    }
}

static void print_sections(const struct mr_walk *w)
{
    char name[MR_STREAM_NAME_MAX];

    if (!w->nr_sections)
        return;
    printf("\nSections:\n  %-10s %-5s %4s %-28s %4s %4s %8s\n", "OFFSET",
           "TYPE", "ID", "NAME", "INST", "VER", "BYTES");
    for (size_t i = 0; i < w->nr_sections; i++) {
        const struct mr_walk_section *s = &w->sections[i];

        printf("  0x%08" PRIx64 " %-5s %4u %-28s %4u %4u %8" PRIu64 "\n",
               s->start, mr_stream_type_name(s->type), s->section_id,
               printable(s->idstr, name), s->instance_id, s->version_id,
               s->end ? s->end - s->start : 0);
    }
    if (w->unlisted.count)
        printf("  ... %" PRIu64 " more sections not listed (%" PRIu64
               " START, %" PRIu64 " PART, %" PRIu64 " END, %" PRIu64
               " FULL; %" PRIu64 " bytes)\n", w->unlisted.count,
               w->unlisted.by_type[MR_SECTION_START],
               w->unlisted.by_type[MR_SECTION_PART],
               w->unlisted.by_type[MR_SECTION_END],
               w->unlisted.by_type[MR_SECTION_FULL], w->unlisted.bytes);
}

static bool failed(const struct cli_file *f)
{
    return mr_error_is_set(&f->err) || cli_incomplete_reason(&f->walk);
}

static void print_human(const struct cli_file *f)
{
    const struct mr_walk *w = &f->walk;
    char line[MR_ERROR_MSG_MAX];

    print_summary(f);
    if (w->loc.kind == MR_CONTAINER_MAPRAM)
        launch_config_print(f->fd, &w->loc.mapram);
    print_blocks(w);
    print_sections(w);
    /* "none" only for a file read to its end: a failure is a problem. */
    printf("\nProblems:%s\n", w->nr_problems || failed(f) ? "" : " none");
    for (size_t i = 0; i < w->nr_problems; i++)
        printf("  %s\n", cli_printable(w->problems[i], line, sizeof(line)));
    if (cli_incomplete_reason(w))
        printf("  %s\n", cli_incomplete_reason(w));
    if (mr_error_is_set(&f->err))
        printf("  reading stopped: %s\n",
               cli_printable(f->err.msg, line, sizeof(line)));
}

/* --xml: the domain XML lies at offset 92, xml_len bytes. */
static int print_xml(const struct cli_file *f)
{
    const struct mr_libvirt_header *lv = &f->walk.loc.libvirt;
    char *buf;
    ssize_t n;

    if (f->walk.loc.kind != MR_CONTAINER_LIBVIRT) {
        fprintf(stderr, "mapram: %s: not a libvirt save image (no "
                "LibvirtQemudSave header), so it has no domain XML\n",
                f->path);
        return CLI_UNSUPPORTED;
    }
    buf = malloc(lv->xml_len ? lv->xml_len : 1);
    if (!buf)
        return CLI_UNREADABLE;
    n = pread(f->fd, buf, lv->xml_len, MR_LIBVIRT_HEADER_SIZE);
    if (n != (ssize_t)lv->xml_len) {
        fprintf(stderr, "mapram: %s: cannot read the domain XML: %s\n",
                f->path, n < 0 ? strerror(errno) : "short read");
        free(buf);
        return CLI_UNREADABLE;
    }
    fwrite(buf, 1, lv->xml_len, stdout);
    free(buf);
    return CLI_OK;
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        { "offset", required_argument, NULL, 'o' },
        { "json", no_argument, NULL, 'j' },
        { "xml", no_argument, NULL, 'x' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int64_t offset = -1;
    bool as_json = false, as_xml = false;
    struct cli_file f;
    int opt, status;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:jh", opts, NULL)) != -1) {
        uint64_t v;

        switch (opt) {
        case 'o':
            if (!cli_parse_u64(optarg, &v) || v > INT64_MAX) {
                fprintf(stderr, "mapram inspect: bad --offset '%s'\n", optarg);
                return 2;
            }
            offset = (int64_t)v;
            break;
        case 'j':
            as_json = true;
            break;
        case 'x':
            as_xml = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || (as_json && as_xml)) {
        usage(stderr);
        return 2;
    }
    if ((status = cli_file_open(&f, argv[optind], offset)))
        return status;
    if (as_xml) {
        status = print_xml(&f);
        cli_file_close(&f);
        return status;
    }
    if (as_json) {
        json_t *root = model_json(&f);

        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("\n");
        json_decref(root);
    } else {
        print_human(&f);
    }
    status = cli_file_report(&f);
    cli_file_close(&f);
    return status;
}
