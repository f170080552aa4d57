/*
 * mapram extract FILE --block NAME -o OUT|- | --all -d DIR [--json]: RAM
 * blocks as raw images of used_length bytes, sparse where pages are
 * absent.  --all names come from block_names.h, opened in DIR with
 * O_NOFOLLOW.  Outputs are regular files other than the input, kept
 * unless --force, never removed unless created here; "-" is stdout
 * (docs/inspect.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block_names.h"
#include "cli.h"
#include "mapram/image.h"

struct extract_opts {
    int64_t offset;
    const char *block;
    const char *out;
    const char *dir;
    bool all;
    bool force;
    json_t *report;             /* --json: the blocks written, else NULL */
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mapram extract FILE --block NAME -o OUT [--force] "
            "[--offset N]\n"
            "       mapram extract FILE --all -d DIR [--force] [--offset N]\n"
            "  -o -     write the block to stdout (not a terminal; absent "
            "pages as zeros)\n"
            "  --json   report what was written as JSON (docs/inspect.md)\n"
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

/* Where a block goes: `created` says the file did not exist before. */
struct output {
    int fd;
    bool created;
};

/* An existing OUT (--force): a regular file, never followed through a
 * symlink, never the input itself; checked on the descriptor before
 * anything is written or truncated. */
static int open_existing(int dirfd, const char *name, const struct stat *input,
                         struct output *o, struct mr_error *err)
{
    struct stat st;

    o->fd = cli_openat_regular(dirfd, name, O_WRONLY | O_NOFOLLOW, 0, err);
    if (o->fd < 0)
        return err->code;
    if (fstat(o->fd, &st) == 0 && !cli_same_inode(&st, input))
        return 0;
    close(o->fd);
    o->fd = -1;
    return mr_error_set(err, -EINVAL, "is the input file itself (the same "
                        "inode); refusing to overwrite it");
}

static int open_output(int dirfd, const char *name, bool force,
                       const struct stat *input, struct output *o,
                       struct mr_error *err)
{
    o->created = false;
    for (int tries = 0; tries < 3; tries++) {
        o->fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                       O_CLOEXEC, 0644);
        if (o->fd >= 0) {
            o->created = true;
            return 0;
        }
        if (errno != EEXIST)
            return mr_error_set(err, -errno, "%s", strerror(errno));
        if (!force)
            return mr_error_set(err, -EEXIST, "%s (use --force to overwrite)",
                                strerror(EEXIST));
        if (open_existing(dirfd, name, input, o, err) != -ENOENT)
            return err->code;
        mr_error_clear(err); /* gone again: claim the name once more */
    }
    return mr_error_set(err, -EAGAIN, "keeps appearing and disappearing");
}

static int fill_output(struct cli_file *f, size_t idx, int fd,
                       struct mr_error *err)
{
    const struct mr_walk_block *b = &f->walk.blocks[idx];
    struct mr_sink sink = { .write = fd_sink_write, .opaque = &fd };

    if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)b->entry.used_length) < 0)
        return mr_error_set(err, -errno, "cannot size the output: %s",
                            strerror(errno));
    return mr_image_extract(f->fd, &f->walk, idx, &sink, err);
}

/* Write block idx to dirfd/name (dirfd may be AT_FDCWD).  On error a file
 * we created is removed (if it still is ours); one that existed before is
 * never removed. */
/* One line of text, or one object of the --json report. */
static void report_block(const struct mr_walk_block *b, const char *name,
                         const char *note, json_t *report, FILE *out)
{
    char shown[MR_STREAM_NAME_MAX];

    if (report) {
        json_array_append_new(report, json_pack("{s:o, s:o, s:I, s:I, s:o}",
            "name", json_text(b->entry.idstr), "output", json_text(name),
            "used_length", (json_int_t)b->entry.used_length,
            "num_pages", (json_int_t)b->num_pages, "pages_present",
            b->present_known ? json_integer((json_int_t)b->pages_present)
                             : json_null()));
        return;
    }
    cli_printable(b->entry.idstr, shown, sizeof(shown));
    if (b->present_known)
        fprintf(out, "%s: %s, %" PRIu64 " of %" PRIu64 " pages present%s\n",
                name, shown, b->pages_present, b->num_pages, note);
    else    /* a legacy block past the walk's map budget */
        fprintf(out, "%s: %s, %" PRIu64 " pages%s\n", name, shown,
                b->num_pages, note);
}

static int write_block(struct cli_file *f, size_t idx, int dirfd,
                       const char *name, bool force, const char *note,
                       json_t *report)
{
    const struct mr_walk_block *b = &f->walk.blocks[idx];
    struct mr_error err = MR_ERROR_INIT;
    char shown[MR_STREAM_NAME_MAX];
    struct output o;
    struct stat input;

    if (fstat(f->fd, &input) < 0 ||
        open_output(dirfd, name, force, &input, &o, &err) < 0) {
        fprintf(stderr, "mapram: %s: %s\n", name, err.msg);
        return CLI_UNREADABLE;
    }
    cli_printable(b->entry.idstr, shown, sizeof(shown));
    fill_output(f, idx, o.fd, &err);
    if (mr_error_is_set(&err) && o.created)
        cli_unlink_if_ours(dirfd, name, o.fd);
    if (close(o.fd) < 0)
        mr_error_set(&err, -errno, "close failed: %s", strerror(errno));
    if (mr_error_is_set(&err)) {
        fprintf(stderr, "mapram: %s: block '%s': %s%s\n", f->path, shown,
                err.msg, o.created ? "" : " (the existing output is left "
                "as far as it was written)");
        return (int)cli_status_of(&err);
    }
    report_block(b, name, note, report, stdout);
    return 0;
}

static const char *const kind_notes[] = {
    [BLOCK_NAME_PLAIN] = "",
    [BLOCK_NAME_SUFFIXED] = " (suffixed: another block maps to the same name)",
    [BLOCK_NAME_SHORTENED] = " (shortened: the name is too long for a file)",
};

static int write_all(struct cli_file *f, int dirfd, bool force,
                     json_t *report)
{
    size_t n = f->walk.nr_blocks;
    const char **ids = calloc(n ? n : 1, sizeof(*ids));
    struct block_file_name *names = calloc(n ? n : 1, sizeof(*names));
    struct mr_error err = MR_ERROR_INIT;
    int status = 0;

    for (size_t i = 0; ids && i < n; i++)
        ids[i] = f->walk.blocks[i].entry.idstr;
    if (!ids || !names || block_file_names(ids, n, names, &err) < 0) {
        fprintf(stderr, "mapram: %s: out of memory\n", f->path);
        status = 1;
    }
    for (size_t i = 0; i < n && !status; i++)
        status = write_block(f, i, dirfd, names[i].file, force,
                             kind_notes[names[i].kind], report);
    free(ids);
    free(names);
    return status;
}

static int extract_all(struct cli_file *f, const struct extract_opts *o)
{
    int dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int status;

    if (dirfd < 0) {
        fprintf(stderr, "mapram: %s: %s\n", o->dir, strerror(errno));
        return CLI_UNREADABLE;
    }
    status = write_all(f, dirfd, o->force, o->report);
    close(dirfd);
    return status;
}

/* -o -: the block in address order, absent pages and gaps as zeros, so
 * that a pipe gets exactly used_length bytes. */
struct seq_sink {
    int fd;
    uint64_t pos;
};

static int put_zeros(struct seq_sink *s, uint64_t upto, struct mr_error *err)
{
    static const uint8_t zeros[65536];

    while (s->pos < upto) {
        size_t n = upto - s->pos < sizeof(zeros) ? (size_t)(upto - s->pos)
                                                 : sizeof(zeros);

        if (cli_write_all(s->fd, zeros, n, err))
            return err->code;
        s->pos += n;
    }
    return 0;
}

static int seq_write(void *opaque, const void *buf, size_t len, uint64_t off,
                     struct mr_error *err)
{
    struct seq_sink *s = opaque;

    if (off < s->pos)
        return mr_error_set(err, -ESPIPE, "page at 0x%" PRIx64 " comes after "
                            "0x%" PRIx64 ": -o - needs pages in address order",
                            off, s->pos);
    if (put_zeros(s, off, err) || cli_write_all(s->fd, buf, len, err))
        return err->code;
    s->pos += len;
    return 0;
}

/* A legacy stream's pages come in stream order, and a later record of a
 * page replaces an earlier one: only a file can take that. */
static int write_stdout(struct cli_file *f, size_t idx, json_t *report)
{
    const struct mr_walk_block *b = &f->walk.blocks[idx];
    struct seq_sink s = { STDOUT_FILENO, 0 };
    struct mr_sink sink = { .write = seq_write, .opaque = &s };
    struct mr_error err = MR_ERROR_INIT;

    if (isatty(STDOUT_FILENO)) {
        fprintf(stderr, "mapram extract: refusing to write guest memory to "
                "a terminal; redirect stdout or use -o FILE\n");
        return CLI_USAGE;
    }
    if (!f->walk.mapped_ram) {
        fprintf(stderr, "mapram extract: -o - needs a mapped-ram file: a "
                "legacy stream's pages come in stream order, not in address "
                "order; use -o FILE\n");
        return CLI_UNSUPPORTED;
    }
    if (mr_image_extract(f->fd, &f->walk, idx, &sink, &err) ||
        put_zeros(&s, b->entry.used_length, &err)) {
        fprintf(stderr, "mapram: %s: block '%s' to stdout: %s\n", f->path,
                b->entry.idstr, err.msg);
        return (int)cli_status_of(&err);
    }
    report_block(b, "-", "", report, stderr);
    return 0;
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
    int status, idx;

    if ((status = cli_file_open(&f, path, o->offset)))
        return status;
    if (ram_only_usable(&f)) {
        fprintf(stderr, "mapram: %s: note: %s (the RAM sections before it "
                "are complete)\n", path, f.err.msg);
        mr_error_clear(&f.err);
    }
    if ((status = cli_file_report(&f))) {
        /* nothing more to do: the line is printed */
    } else if (o->all) {
        status = extract_all(&f, o);
    } else if ((idx = mr_walk_find_block(&f.walk, o->block)) < 0) {
        fprintf(stderr, "mapram: %s: expected a RAM block named '%s', found "
                "%zu other blocks (see mapram inspect)\n", path, o->block,
                f.walk.nr_blocks);
        status = CLI_USAGE;
    } else if (!strcmp(o->out, "-")) {
        status = write_stdout(&f, (size_t)idx, o->report);
    } else {
        status = write_block(&f, (size_t)idx, AT_FDCWD, o->out, o->force, "",
                             o->report);
    }
    cli_file_close(&f);
    return status;
}

/* --json: one object on stdout (docs/inspect.md "extract --json"). */
static int run_json(const char *path, struct extract_opts *o)
{
    json_t *root;
    int status;

    if (o->out && !strcmp(o->out, "-")) {
        fprintf(stderr, "mapram extract: --json and -o - both want stdout\n");
        return CLI_USAGE;
    }
    o->report = json_array();
    status = run(path, o);
    root = json_pack("{s:i, s:o, s:s, s:i, s:o}", "schema", 1,
                     "file", json_text(path), "status",
                     cli_status_name((enum cli_status)status), "exit", status,
                     "blocks", o->report);
    json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("\n");
    json_decref(root);
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
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct extract_opts o = { .offset = -1 };
    bool as_json = false;
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "b:o:ad:fjh", opts, NULL)) != -1) {
        uint64_t v;

        switch (opt) {
        case 'b': o.block = optarg; break;
        case 'o': o.out = optarg; break;
        case 'a': o.all = true; break;
        case 'd': o.dir = optarg; break;
        case 'f': o.force = true; break;
        case 'j': as_json = true; break;
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
    return as_json ? run_json(argv[optind], &o) : run(argv[optind], &o);
}
