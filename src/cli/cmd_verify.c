/*
 * mapram verify FILE [--offset N] [--json]: check a save file offline.
 * Exit statuses are cli.h's (0 sound, 1 corrupt, 3 unreadable, 63
 * unsupported); one stderr line names the first problem.  Sealed files
 * are checked extent by extent, others for layout only, and the output
 * says which (docs/inspect.md).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "mapram/image.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: mapram verify FILE [--offset N] [--json]\n"
            "  --offset N   the QEMU stream starts at byte N (default: "
            "found)\n"
            "  --json       machine-readable result (docs/inspect.md)\n"
            "Checks the header, the stream, the bitmaps and, when the file "
            "has them,\nevery 1 MiB extent's CRC32C. Exit 0: sound; 1: "
            "corrupt or incomplete;\n3: unreadable; 63: unsupported.\n");
}

static int parse_args(int argc, char **argv, int64_t *offset, bool *as_json)
{
    static const struct option opts[] = {
        { "offset", required_argument, NULL, 'o' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:jh", opts, NULL)) != -1) {
        uint64_t v;

        if (opt == 'o' && cli_parse_u64(optarg, &v) && v <= INT64_MAX) {
            *offset = (int64_t)v;
        } else if (opt == 'j') {
            *as_json = true;
        } else if (opt == 'h') {
            usage(stdout);
            return 0;
        } else {
            if (opt == 'o')
                fprintf(stderr, "mapram verify: bad --offset '%s'\n", optarg);
            usage(stderr);
            return 2;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

static void print_ok(const struct cli_file *f,
                     const struct mr_verify_report *r)
{
    char data[32];

    if (!f->walk.mapped_ram)
        printf("%s: stream OK (legacy stream: pages are inline, no extent "
               "checksums)\n", f->path);
    else if (r->checksums)
        printf("%s: OK: %" PRIu64 " RAM blocks, %" PRIu64 " extents match "
               "their CRC32C (%s of page data)\n", f->path, r->blocks,
               r->extents, cli_human_bytes(r->data_bytes, data, sizeof(data)));
    else
        printf("%s: layout OK (%" PRIu64 " RAM blocks, bitmaps within "
               "bounds); data checksums are absent (not written by "
               "mapram-vm), page data not checked\n", f->path, r->blocks);
}

/* The first problem: the walk's error, incompleteness, a finding, or
 * what verification found, in err (one stderr line); its status. */
static int check(struct cli_file *f, struct mr_verify_report *rep,
                 struct mr_error *err)
{
    char line[MR_ERROR_MSG_MAX];
    int status = cli_file_report(f);

    memset(rep, 0, sizeof(*rep));
    if (status) {
        if (cli_incomplete_reason(&f->walk))
            mr_error_set(err, -EINVAL, "%s", cli_incomplete_reason(&f->walk));
        else
            *err = f->err;
        return status;
    }
    if (f->walk.nr_problems)
        mr_error_set(err, -EINVAL, "%s", f->walk.problems[0]);
    else if (mr_image_verify(f->fd, &f->walk, rep, err) == 0)
        return CLI_OK;
    fprintf(stderr, "mapram: %s: %s\n", f->path,
            cli_printable(err->msg, line, sizeof(line)));
    return (int)cli_status_of(err);
}

/* One object (docs/inspect.md "verify --json"). */
static void print_json(const struct cli_file *f,
                       const struct mr_verify_report *r, int status,
                       const struct mr_error *err)
{
    const struct mr_walk *w = &f->walk;
    json_t *o = json_pack("{s:i, s:o, s:s, s:i, s:s, s:b, s:b, s:b, s:I, "
                          "s:I, s:I}", "schema", 1, "file", json_text(f->path),
                          "status", cli_status_name((enum cli_status)status),
                          "exit", status, "container",
                          mr_container_name(w->loc.kind), "mapped_ram",
                          w->mapped_ram, "checksums", w->have_cksum,
                          "data_checked", status == 0 && r->checksums,
                          "blocks", (json_int_t)r->blocks,
                          "extents", (json_int_t)r->extents,
                          "data_bytes", (json_int_t)r->data_bytes);

    json_object_set_new(o, "error", status ? json_text(err->msg) : json_null());
    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("\n");
    json_decref(o);
}

int cmd_verify(int argc, char **argv)
{
    int64_t offset = -1;
    bool as_json = false;
    struct cli_file f;
    struct mr_verify_report rep;
    struct mr_error err = MR_ERROR_INIT;
    int status = parse_args(argc, argv, &offset, &as_json);

    if (status >= 0)
        return status;
    if ((status = cli_file_open(&f, argv[optind], offset)))
        return status;
    status = check(&f, &rep, &err);
    if (as_json)
        print_json(&f, &rep, status, &err);
    else if (!status)
        print_ok(&f, &rep);
    cli_file_close(&f);
    return status;
}
