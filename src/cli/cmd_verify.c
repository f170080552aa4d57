/*
 * mapram verify FILE [--offset N]: check a save file offline.  Exit 0 when
 * it is sound, 1 with one line naming the first problem (for data, the
 * block and extent), 2 on usage errors.  Files written by mapram-vm carry
 * per-extent checksums (docs/file-format.md) and are checked byte for
 * byte; for others (QEMU's) the layout and bitmaps are checked and the
 * output says that data checksums are absent.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "mapram/image.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: mapram verify FILE [--offset N]\n"
            "  --offset N   the QEMU stream starts at byte N (default: "
            "found)\n"
            "Checks the header, the stream, the bitmaps and, when the file "
            "has them,\nevery 1 MiB extent's CRC32C. Exit 0: sound; 1: the "
            "first problem is printed.\n");
}

static int parse_args(int argc, char **argv, int64_t *offset)
{
    static const struct option opts[] = {
        { "offset", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        uint64_t v;

        if (opt == 'o' && cli_parse_u64(optarg, &v) && v <= INT64_MAX) {
            *offset = (int64_t)v;
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

int cmd_verify(int argc, char **argv)
{
    int64_t offset = -1;
    struct cli_file f;
    struct mr_verify_report rep;
    struct mr_error err = MR_ERROR_INIT;
    char line[MR_ERROR_MSG_MAX];
    int status = parse_args(argc, argv, &offset);

    if (status >= 0)
        return status;
    if (cli_file_open(&f, argv[optind], offset))
        return 1;
    status = cli_file_report(&f);
    if (!status && f.walk.nr_problems) {
        fprintf(stderr, "mapram: %s: %s\n", f.path,
                cli_printable(f.walk.problems[0], line, sizeof(line)));
        status = 1;
    }
    if (!status && mr_image_verify(f.fd, &f.walk, &rep, &err)) {
        fprintf(stderr, "mapram: %s: %s\n", f.path,
                cli_printable(err.msg, line, sizeof(line)));
        status = 1;
    }
    if (!status)
        print_ok(&f, &rep);
    cli_file_close(&f);
    return status;
}
