/*
 * mapram seal FILE [--offset N]: add mapram's per-extent CRC32C trailer
 * to a mapped-ram save that has none (QEMU's, libvirt's, an old mapram
 * save), so that verify and the loader detect bit rot from then on.  The
 * file stays a valid QEMU save (docs/seal.md).
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "mapram/image.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: mapram seal FILE [--offset N]\n"
            "  --offset N   the QEMU stream starts at byte N (default: "
            "found)\n"
            "Appends a CRC32C per 1 MiB extent of every RAM block to a "
            "mapped-ram file\nthat has none; QEMU still loads it. Exit 0: "
            "sealed; 1: corrupt or incomplete;\n3: unreadable or not "
            "writable; 4: already sealed; 63: unsupported (legacy).\n");
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
                fprintf(stderr, "mapram seal: bad --offset '%s'\n", optarg);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    return -1;
}

static void print_sealed(const char *path, const struct mr_seal_report *r)
{
    char data[32];

    printf("%s: sealed: %" PRIu64 " RAM blocks, %" PRIu64 " extents "
           "(%s of page data); trailer of %" PRIu64 " bytes at 0x%" PRIx64
           "%s\n", path, r->blocks, r->extents,
           cli_human_bytes(r->data_bytes, data, sizeof(data)), r->trailer_len,
           r->trailer_offset, r->replaced_unfinished ? " (replacing an "
           "interrupted seal's unfinished trailer)" : "");
}

int cmd_seal(int argc, char **argv)
{
    int64_t offset = -1;
    struct cli_file f;
    struct mr_seal_report rep;
    struct mr_error err = MR_ERROR_INIT;
    char line[MR_ERROR_MSG_MAX];
    int status = parse_args(argc, argv, &offset);

    if (status >= 0)
        return status;
    if ((status = cli_file_open_mode(&f, argv[optind], offset, O_RDWR)))
        return status;
    status = cli_file_report(&f);
    if (!status && mr_image_seal(f.fd, &f.walk, &rep, &err)) {
        status = (int)cli_status_of(&err);
        fprintf(stderr, "mapram: %s: %s%s\n", f.path,
                status == CLI_NOTHING ? "nothing to do: " : "",
                cli_printable(err.msg, line, sizeof(line)));
    }
    if (!status)
        print_sealed(f.path, &rep);
    cli_file_close(&f);
    return status;
}
