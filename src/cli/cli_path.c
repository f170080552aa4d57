/*
 * The rules for every path the tool opens, creates or removes: never
 * block on a FIFO, refuse what is not a regular file, reopen the file
 * already opened rather than the name, remove only what is still ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

const char *cli_file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISLNK(mode))
        return "a symbolic link";
    return "not a regular file";
}

static int check_regular(int fd, struct mr_error *err)
{
    struct stat st;
    int fl;

    if (fstat(fd, &st) < 0)
        return mr_error_set(err, -errno, "%s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return mr_error_set(err, -EINVAL, "not a regular file (it is %s)",
                            cli_file_kind(st.st_mode));
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return mr_error_set(err, -errno, "%s", strerror(errno));
    return 0;
}

/* Refuse by name what is plainly not a regular file, so a device is not
 * even opened (opening one can act: a tape rewinds); the descriptor is
 * checked again after the open, which is what counts. */
static int refuse_by_name(int dirfd, const char *path, int flags,
                          struct mr_error *err)
{
    struct stat st;

    if (fstatat(dirfd, path, &st, flags & O_NOFOLLOW ? AT_SYMLINK_NOFOLLOW
                                                     : 0) < 0 ||
        S_ISREG(st.st_mode))
        return 0;
    return mr_error_set(err, -EINVAL, "not a regular file (it is %s)",
                        cli_file_kind(st.st_mode));
}

int cli_openat_regular(int dirfd, const char *path, int flags, mode_t mode,
                       struct mr_error *err)
{
    int fd, saved;

    if (refuse_by_name(dirfd, path, flags, err) < 0)
        return err->code;
    fd = openat(dirfd, path, flags | O_NONBLOCK | O_CLOEXEC, mode);
    saved = errno;
    /* replaced since: a FIFO without a reader (ENXIO), a directory opened
     * for writing (EISDIR); say what it is */
    if (fd < 0 && refuse_by_name(dirfd, path, flags, err) < 0)
        return err->code;
    if (fd < 0)
        return mr_error_set(err, -saved, "%s", strerror(saved));
    if (check_regular(fd, err) < 0) {
        close(fd);
        return err->code;
    }
    return fd;
}

int cli_open_regular(const char *path, int flags, struct mr_error *err)
{
    return cli_openat_regular(AT_FDCWD, path, flags, 0, err);
}

bool cli_same_inode(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

int cli_reopen(int fd, const char *path, int flags, struct mr_error *err)
{
    char proc[64];
    struct stat want, got;
    int saved, nfd;

    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    nfd = open(proc, flags | O_CLOEXEC);
    if (nfd < 0 && errno == ENOENT) /* no /proc: by name, checked below */
        nfd = open(path, flags | O_NONBLOCK | O_CLOEXEC);
    if (nfd < 0)
        return mr_error_set(err, -errno, "%s", strerror(errno));
    if (fstat(fd, &want) < 0 || fstat(nfd, &got) < 0 ||
        !cli_same_inode(&want, &got)) {
        saved = errno;
        close(nfd);
        errno = saved;
        return mr_error_set(err, -ESTALE,
                            "the file was replaced while it was being opened");
    }
    if (fcntl(nfd, F_SETFL, fcntl(nfd, F_GETFL) & ~O_NONBLOCK) < 0) {
        close(nfd);
        return mr_error_set(err, -errno, "%s", strerror(errno));
    }
    return nfd;
}

bool cli_unlink_if_ours(int dirfd, const char *name, int fd)
{
    struct stat ours, there;

    if (fd < 0 || fstat(fd, &ours) < 0 ||
        fstatat(dirfd, name, &there, AT_SYMLINK_NOFOLLOW) < 0 ||
        !cli_same_inode(&ours, &there))
        return false;
    return unlinkat(dirfd, name, 0) == 0;
}
