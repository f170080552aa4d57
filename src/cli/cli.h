/* The mapram tool's subcommands.  Each returns the exit status: for the
 * file commands (inspect, extract, verify, seal) one of enum cli_status
 * (docs/inspect.md "Exit status"); save and restore: 0, 1 failure (a
 * message was printed), 2 usage error. */
#ifndef MAPRAM_CLI_H
#define MAPRAM_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include <jansson.h>

#include "mapram/image.h"

/* Exit statuses of the file commands, in the spirit of qemu-img check. */
enum cli_status {
    CLI_OK = 0,
    CLI_CORRUPT = 1,            /* the file is damaged or incomplete */
    CLI_USAGE = 2,
    CLI_UNREADABLE = 3,         /* it could not be opened or read */
    CLI_NOTHING = 4,            /* nothing to do (seal: already sealed) */
    CLI_UNSUPPORTED = 63,       /* a kind of file or feature not handled */
};

/* The status for a library error code (negative errno) and message. */
enum cli_status cli_status_of(const struct mr_error *err);
/* "ok", "corrupt", ... for JSON output. */
const char *cli_status_name(enum cli_status s);

struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *summary;
};

int cmd_version(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_seal(int argc, char **argv);

/* ---- helpers shared by the file-reading commands (cli_file.c) ---- */

/* A save file opened read-only and walked. */
struct cli_file {
    const char *path;
    int fd;
    struct mr_walk walk;
    struct mr_error err;        /* the walk's error, if any */
};

/* Open and walk; returns 0 if the file could be opened (the walk may still
 * have failed: see f->err), else prints "mapram: PATH: ..." and returns
 * CLI_UNREADABLE.  flags: O_RDONLY, or O_RDWR for seal. */
int cli_file_open_mode(struct cli_file *f, const char *path, int64_t offset,
                       int flags);
int cli_file_open(struct cli_file *f, const char *path, int64_t offset);
void cli_file_close(struct cli_file *f);

/* If the file is incomplete or its walk failed, print the one stderr line
 * ("mapram: PATH: ...") and return its status (cli_status_of); else 0. */
int cli_file_report(const struct cli_file *f);

/* write(2) all of buf (EINTR retried); 0 or -errno with a message. */
int cli_write_all(int fd, const void *buf, size_t len, struct mr_error *err);

/* Parse a non-negative integer (decimal, 0x hex, optional K/M/G suffix). */
bool cli_parse_u64(const char *s, uint64_t *out);

/* "64.0 MiB" style, into buf. */
const char *cli_human_bytes(uint64_t bytes, char *buf, size_t len);

/* The one-line reason an incomplete image is incomplete, or NULL. */
const char *cli_incomplete_reason(const struct mr_walk *w);

/* A JSON string of text from a file, which need not be UTF-8: non-ASCII
 * bytes then become \xNN (cmd_inspect.c; shared by every --json). */
json_t *json_text(const char *s);

/* Text from a file, safe for a terminal: control bytes become '?'.  The
 * one filter for everything inspect and extract print from a file. */
const char *cli_printable(const char *s, char *buf, size_t buf_bytes);

/* ---- paths the tool opens, creates or removes (cli_path.c) ---- */

/* "a FIFO", "a directory", ... for messages. */
const char *cli_file_kind(mode_t mode);

/* open(path, flags | O_NONBLOCK | O_CLOEXEC) that never blocks on a FIFO,
 * then refuse anything but a regular file ("not a regular file (it is a
 * FIFO)") and clear O_NONBLOCK.  Returns the fd or -errno; err's message
 * does not name the path (callers put it in their own form). */
int cli_open_regular(const char *path, int flags, struct mr_error *err);
int cli_openat_regular(int dirfd, const char *path, int flags, mode_t mode,
                       struct mr_error *err);

/* A second, independent open of the file `fd` refers to (never of what
 * `path` names by then): through /proc/self/fd, else by path with an
 * inode check.  Returns the fd or -errno (errno kept for O_DIRECT). */
int cli_reopen(int fd, const char *path, int flags, struct mr_error *err);

/* Do `a` and `b` name the same file? */
bool cli_same_inode(const struct stat *a, const struct stat *b);

/* Remove dirfd/name only if it still is the file `fd` refers to (a file
 * put there by someone else since is left alone).  true if removed. */
bool cli_unlink_if_ours(int dirfd, const char *name, int fd);

#endif
