/*
 * Helpers for the commands that read save files (inspect, extract,
 * verify): opening, walking, number parsing, human-readable sizes and the
 * filter for text taken from a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_file_open(struct cli_file *f, const char *path, int64_t offset)
{
    return cli_file_open_mode(f, path, offset, O_RDONLY);
}

int cli_file_open_mode(struct cli_file *f, const char *path, int64_t offset,
                       int flags)
{
    memset(f, 0, sizeof(*f));
    f->path = path;
    f->fd = cli_open_regular(path, flags, &f->err);
    if (f->fd < 0) {
        fprintf(stderr, "mapram: %s: %s\n", path, f->err.msg);
        mr_error_clear(&f->err);
        return CLI_UNREADABLE;
    }
    mr_image_walk(f->fd, offset, &f->walk, &f->err);
    mr_walk_measure_allocation(&f->walk, f->fd);
    return 0;
}

void cli_file_close(struct cli_file *f)
{
    mr_walk_free(&f->walk);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

int cli_write_all(int fd, const void *buf, size_t len, struct mr_error *err)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return mr_error_set(err, n < 0 ? -errno : -ENOSPC, "write "
                                "failed: %s", n < 0 ? strerror(errno) :
                                "no space");
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

bool cli_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    unsigned shift = 0;

    if (!s || !*s || *s == '-')
        return false;
    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || end == s)
        return false;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

const char *cli_human_bytes(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = (double)bytes;
    int u = 0;

    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

const char *cli_incomplete_reason(const struct mr_walk *w)
{
    if (!w->loc.incomplete)
        return NULL;
    if (w->loc.kind == MR_CONTAINER_LIBVIRT)
        return "incomplete image: the libvirt header says "
               "\"LibvirtQemudPart\" (the save never finished)";
    return "incomplete image: the mapram header state is PART (the save "
           "never finished)";
}

const char *cli_printable(const char *s, char *buf, size_t buf_bytes)
{
    size_t n = 0;

    for (; *s && n + 1 < buf_bytes; s++)
        buf[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    buf[n] = '\0';
    return buf;
}

/* Messages quote names from the file; keep the report on one line. */
static const char *one_line(const char *msg, char buf[MR_ERROR_MSG_MAX])
{
    return cli_printable(msg, buf, MR_ERROR_MSG_MAX);
}

int cli_file_report(const struct cli_file *f)
{
    const char *incomplete = cli_incomplete_reason(&f->walk);
    char msg[MR_ERROR_MSG_MAX];

    /* Incompleteness explains any read error that follows from it, so it
     * leads the line. */
    if (incomplete && mr_error_is_set(&f->err))
        fprintf(stderr, "mapram: %s: %s; reading stopped: %s\n", f->path,
                incomplete, one_line(f->err.msg, msg));
    else if (incomplete)
        fprintf(stderr, "mapram: %s: %s\n", f->path, incomplete);
    else if (mr_error_is_set(&f->err))
        fprintf(stderr, "mapram: %s: %s\n", f->path,
                one_line(f->err.msg, msg));
    else
        return 0;
    return incomplete ? CLI_CORRUPT : (int)cli_status_of(&f->err);
}

/* After a file is open, its walk reports damage with many codes (a
 * missing record is -ENOENT); truncation is -EIO too, but it is damage,
 * not a failing disk: only the OS's own read errors ("read error ...")
 * and seal's failed writes ("seal: ...") make a file unreadable. */
enum cli_status cli_status_of(const struct mr_error *err)
{
    switch (err->code) {
    case 0:
        return CLI_OK;
    case -ENOTSUP:
        return CLI_UNSUPPORTED;
    case -EALREADY:
        return CLI_NOTHING;
    case -ENOMEM: case -EROFS: case -ENOSPC: case -EDQUOT:
        return CLI_UNREADABLE;
    default:
        return !strncmp(err->msg, "read error", 10) ||
               !strncmp(err->msg, "seal: ", 6) ? CLI_UNREADABLE : CLI_CORRUPT;
    }
}

const char *cli_status_name(enum cli_status s)
{
    switch (s) {
    case CLI_OK: return "ok";
    case CLI_CORRUPT: return "corrupt";
    case CLI_USAGE: return "usage";
    case CLI_UNREADABLE: return "unreadable";
    case CLI_NOTHING: return "nothing to do";
    case CLI_UNSUPPORTED: return "unsupported";
    }
    return "corrupt";
}
