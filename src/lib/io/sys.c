/*
 * The default OS-call table and the full-transfer helpers over it.  In
 * fault-injection builds every entry goes through the fault plan first, so
 * a test can make the Nth ftruncate or bitmap pwrite fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "io/fault.h"
#include "io/sys.h"

/* Every descriptor libmapram opens is close-on-exec, whatever the caller
 * passed. */
static int sys_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags | O_CLOEXEC, mode);
}

static int sys_fcntl(int fd, int cmd, long arg)
{
    return fcntl(fd, cmd, arg);
}

#ifdef MR_FAULT_INJECTION
/* Returns 0 to go ahead, or -1 with errno set to the injected error. */
static int fault_gate(enum mr_fault_op op)
{
    ssize_t r = mr_fault_filter(op, 0);

    if (r < 0) {
        errno = (int)-r;
        return -1;
    }
    return 0;
}

static int fi_open(const char *path, int flags, mode_t mode)
{
    return fault_gate(MR_FAULT_OP_OPEN) ? -1 : sys_open(path, flags, mode);
}

static int fi_fcntl(int fd, int cmd, long arg)
{
    return fault_gate(MR_FAULT_OP_FCNTL) ? -1 : sys_fcntl(fd, cmd, arg);
}

static int fi_ftruncate(int fd, off_t length)
{
    return fault_gate(MR_FAULT_OP_FTRUNCATE) ? -1 : ftruncate(fd, length);
}

static int fi_fallocate(int fd, int mode, off_t offset, off_t len)
{
    return fault_gate(MR_FAULT_OP_FALLOCATE) ? -1
                                             : fallocate(fd, mode, offset, len);
}

static int fi_fdatasync(int fd)
{
    return fault_gate(MR_FAULT_OP_FDATASYNC) ? -1 : fdatasync(fd);
}

/* Byte-moving calls: the plan sees the real result and may shorten it. */
static ssize_t filtered(enum mr_fault_op op, ssize_t n)
{
    ssize_t r = mr_fault_filter(op, n < 0 ? -errno : n);

    if (r < 0) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

static ssize_t fi_pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    return filtered(MR_FAULT_OP_PWRITE, pwrite(fd, buf, count, offset));
}

static ssize_t fi_pread(int fd, void *buf, size_t count, off_t offset)
{
    return filtered(MR_FAULT_OP_PREAD, pread(fd, buf, count, offset));
}

static const struct mr_sys sys_table = {
    .open = fi_open,           .fcntl = fi_fcntl,
    .ftruncate = fi_ftruncate, .fallocate = fi_fallocate,
    .fdatasync = fi_fdatasync, .pwrite = fi_pwrite,
    .pread = fi_pread,
};
#else
static const struct mr_sys sys_table = {
    .open = sys_open,        .fcntl = sys_fcntl,
    .ftruncate = ftruncate,  .fallocate = fallocate,
    .fdatasync = fdatasync,  .pwrite = pwrite,
    .pread = pread,
};
#endif

const struct mr_sys *mr_sys_default(void)
{
    return &sys_table;
}

int mr_sys_pwrite_all(const struct mr_sys *sys, int fd, const void *buf,
                      size_t count, off_t offset)
{
    const char *p = buf;

    while (count > 0) {
        ssize_t n = sys->pwrite(fd, p, count, offset);

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENOSPC;
        p += n;
        count -= (size_t)n;
        offset += n;
    }
    return 0;
}

ssize_t mr_sys_pread_all(const struct mr_sys *sys, int fd, void *buf,
                         size_t count, off_t offset)
{
    char *p = buf;
    size_t got = 0;

    while (got < count) {
        ssize_t n = sys->pread(fd, p + got, count - got, offset + (off_t)got);

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}
