/*
 * mapram extract FILE --block NAME -o OUT | --all -d DIR: RAM blocks of a
 * save file as raw images of used_length bytes, sparse where pages are
 * absent.  Output files are created next to nothing else: with --all every
 * name is derived from the block name without '/', opened relative to DIR
 * with O_NOFOLLOW, so nothing is written outside DIR.  Existing files are
 * kept unless --force.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "format/extract.h"

struct extract_opts {
    int64_t offset;
    const char *block;
    const char *out;
    const char *dir;
    bool all;
    bool force;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mapram extract FILE --block NAME -o OUT [--force] "
            "[--offset N]\n"
            "       mapram extract FILE --all -d DIR [--force] [--offset N]\n"
            "Writes a RAM block as a raw image of its used length; absent "
            "pages stay holes.\n");
}

static int fd_sink_write(void *opaque, const void *buf, size_t len,
                         uint64_t off, struct mr_error *err)
{
    int fd = *(int *)opaque;
    const char *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return mr_error_set(err, n < 0 ? -errno : -ENOSPC, "write at "
                                "0x%" PRIx64 " failed: %s", off,
                                n < 0 ? strerror(errno) : "no space");
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* Create dirfd/name (dirfd may be AT_FDCWD), fill it, remove it on error. */
static int write_block(struct cli_file *f, size_t idx, int dirfd,
                       const char *name, bool force)
{
    const struct mr_walk_block *b = &f->walk.blocks[idx];
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
                (force ? O_TRUNC : O_EXCL);
    struct mr_error err = MR_ERROR_INIT;
    struct mr_sink sink;
    int fd = openat(dirfd, name, flags, 0644);

    if (fd < 0) {
        fprintf(stderr, "mapram: %s: %s%s\n", name, strerror(errno),
                errno == EEXIST ? " (use --force to overwrite)" : "");
        return 1;
    }
    sink.write = fd_sink_write;
    sink.opaque = &fd;
    if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)b->entry.used_length) < 0)
        mr_error_set(&err, -errno, "cannot size the output: %s",
                     strerror(errno));
    else
        mr_extract_block(&f->src, &f->walk, idx, &sink, &err);
    if (close(fd) < 0)
        mr_error_set(&err, -errno, "close failed: %s", strerror(errno));
    if (mr_error_is_set(&err)) {
        fprintf(stderr, "mapram: %s: block '%s': %s\n", f->path,
                b->entry.idstr, err.msg);
        unlinkat(dirfd, name, 0);
        return 1;
    }
    if (b->present_known)
        printf("%s: %s, %" PRIu64 " of %" PRIu64 " pages present\n", name,
               b->entry.idstr, b->pages_present, b->num_pages);
    else    /* a legacy block past the walk's map budget */
        printf("%s: %s, %" PRIu64 " pages\n", name, b->entry.idstr,
               b->num_pages);
    return 0;
}

static int extract_all(struct cli_file *f, const struct extract_opts *o)
{
    int dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int status = 0;

    if (dirfd < 0) {
        fprintf(stderr, "mapram: %s: %s\n", o->dir, strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < f->walk.nr_blocks && !status; i++) {
        char name[261];

        mr_extract_file_name(f->walk.blocks[i].entry.idstr, name);
        status = write_block(f, i, dirfd, name, o->force);
    }
    close(dirfd);
    return status;
}

/* A stream that breaks after its RAM END section (e.g. a device section
 * the VMDESCRIPTION cannot size) still holds every page: extraction goes
 * ahead, with a note. */
static bool ram_only_usable(const struct cli_file *f)
{
    return mr_error_is_set(&f->err) && f->walk.ram_complete &&
           !f->walk.loc.incomplete;
}

static int run(const char *path, const struct extract_opts *o)
{
    struct cli_file f;
    int status = 1, idx;

    if (cli_file_open(&f, path, o->offset))
        return 1;
    if (ram_only_usable(&f)) {
        fprintf(stderr, "mapram: %s: note: %s (the RAM sections before it "
                "are complete)\n", path, f.err.msg);
        mr_error_clear(&f.err);
    }
    if (cli_file_report(&f)) {
        /* nothing more to do: the line is printed */
    } else if (o->all) {
        status = extract_all(&f, o);
    } else if ((idx = mr_walk_find_block(&f.walk, o->block)) < 0) {
        fprintf(stderr, "mapram: %s: expected a RAM block named '%s', found "
                "%zu other blocks (see mapram inspect)\n", path, o->block,
                f.walk.nr_blocks);
    } else {
        status = write_block(&f, (size_t)idx, AT_FDCWD, o->out, o->force);
    }
    cli_file_close(&f);
    return status;
}

int cmd_extract(int argc, char **argv)
{
    static const struct option opts[] = {
        { "block", required_argument, NULL, 'b' },
        { "output", required_argument, NULL, 'o' },
        { "all", no_argument, NULL, 'a' },
        { "dir", required_argument, NULL, 'd' },
        { "force", no_argument, NULL, 'f' },
        { "offset", required_argument, NULL, 'O' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct extract_opts o = { .offset = -1 };
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "b:o:ad:fh", opts, NULL)) != -1) {
        uint64_t v;

        switch (opt) {
        case 'b': o.block = optarg; break;
        case 'o': o.out = optarg; break;
        case 'a': o.all = true; break;
        case 'd': o.dir = optarg; break;
        case 'f': o.force = true; break;
        case 'O':
            if (!cli_parse_u64(optarg, &v) || v > INT64_MAX) {
                fprintf(stderr, "mapram extract: bad --offset '%s'\n", optarg);
                return 2;
            }
            o.offset = (int64_t)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || (o.all ? (!o.dir || o.block || o.out)
                                     : (!o.block || !o.out || o.dir))) {
        usage(stderr);
        return 2;
    }
    return run(argv[optind], &o);
}
