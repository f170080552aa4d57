/*
 * The OS-call table for non-page I/O (after SQLite's aSyscall[]): the
 * migration code opens, sizes, syncs and writes headers and bitmaps only
 * through a `struct mr_sys`, so tests can fail any of those calls.  The
 * entries keep libc's conventions (-1 and errno).
 */
#ifndef MAPRAM_IO_SYS_H
#define MAPRAM_IO_SYS_H

#include <stddef.h>
#include <sys/types.h>

#include "mapram/error.h"

/*
 * mr_sys_default() is plain libc, except in fault-injection builds where
 * each entry first consults the fault plan (io/fault.h).
 */

struct mr_sys {
    int (*open)(const char *path, int flags, mode_t mode);
    int (*fcntl)(int fd, int cmd, long arg);
    int (*ftruncate)(int fd, off_t length);
    int (*fallocate)(int fd, int mode, off_t offset, off_t len);
    int (*fdatasync)(int fd);
    ssize_t (*pwrite)(int fd, const void *buf, size_t count, off_t offset);
    ssize_t (*pread)(int fd, void *buf, size_t count, off_t offset);
};

const struct mr_sys *mr_sys_default(void);

/* Write all of buf at offset through sys->pwrite: short writes resumed,
 * EINTR retried, a zero-length write is -ENOSPC.  0 or -errno. */
int mr_sys_pwrite_all(const struct mr_sys *sys, int fd, const void *buf,
                      size_t count, off_t offset);
/* Read up to count bytes (stopping only at end of file); returns the
 * bytes read or -errno. */
ssize_t mr_sys_pread_all(const struct mr_sys *sys, int fd, void *buf,
                         size_t count, off_t offset);

#endif
