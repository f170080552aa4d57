/*
 * userfaultfd ioctls (docs/lazy-load.md, "The API handshake", "Resolving
 * faults").  Partial fills (EAGAIN with a count) and present pages
 * (EEXIST) are continued page by page; any other failure is returned.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io/fault.h"
#include "migration/uffd.h"

/* UFFDIO_POISON (Linux 6.6) where the system headers predate it. */
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
    struct uffdio_range range;
    __u64 mode;
    __s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

static int open_raw(void)
{
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

    if (dev >= 0) {
        int fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);

        close(dev);
        if (fd >= 0)
            return fd;
    }
    return (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
}

int mr_uffd_open(struct mr_error *err)
{
    struct uffdio_api api = { .api = UFFD_API };
    int fd = open_raw();
    int rc = (int)mr_fault_filter(MR_FAULT_OP_USERFAULTFD,
                                  fd < 0 ? -errno : fd);

    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        return mr_error_set(err, rc, "Postcopy is not supported: "
                            "userfaultfd not available: %s", strerror(-rc));
    }
    if (ioctl(fd, UFFDIO_API, &api)) {
        int e = errno;

        close(fd);
        return mr_error_set(err, -e, "Postcopy is not supported: "
                            "UFFDIO_API failed: %s", strerror(e));
    }
    return fd;
}

int mr_uffd_register(int fd, void *start, uint64_t len, const char *name,
                     struct mr_error *err)
{
    const uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE);
    struct uffdio_register r = {
        .range = { .start = (uintptr_t)start, .len = len },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };

    if (ioctl(fd, UFFDIO_REGISTER, &r))
        return mr_error_set(err, -errno, "RAM block %s cannot be loaded "
                            "lazily: userfaultfd registration failed (%s); "
                            "host backend files need to be on tmpfs, or use "
                            "memory-backend-ram or memfd", name,
                            strerror(errno));
    if ((r.ioctls & need) != need) {
        mr_uffd_unregister(fd, start, len);
        return mr_error_set(err, -EINVAL, "RAM block %s cannot be loaded "
                            "lazily: its backend uses huge pages (hugetlb), "
                            "which take no 4 KiB copies or zero pages; use "
                            "memory-backend-ram, memfd without hugetlb or a "
                            "file on tmpfs", name);
    }
    return 0;
}

int mr_uffd_unregister(int fd, void *start, uint64_t len)
{
    struct uffdio_range r = { .start = (uintptr_t)start, .len = len };

    return ioctl(fd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

int mr_uffd_wake(int fd, void *start, uint64_t len)
{
    struct uffdio_range r = { .start = (uintptr_t)start, .len = len };

    return ioctl(fd, UFFDIO_WAKE, &r) ? -errno : 0;
}

/* After a call that did `done` bytes (or <0): how far to advance. */
static int advance(int64_t done, uint64_t page_size, uint64_t *off)
{
    if (done > 0) {
        *off += (uint64_t)done;
        return 0;
    }
    if (errno == EEXIST || done == -EEXIST) {
        *off += page_size;          /* present already: done */
        return 0;
    }
    if (errno == EAGAIN)
        return 0;                   /* layout changing: retry */
    return -errno;
}

int mr_uffd_copy(int fd, void *dst, const void *src, uint64_t len,
                 uint64_t page_size)
{
    for (uint64_t off = 0; off < len;) {
        struct uffdio_copy c = {
            .dst = (uintptr_t)dst + off, .src = (uintptr_t)src + off,
            .len = len - off,
        };
        int rc;

        if (!ioctl(fd, UFFDIO_COPY, &c))
            return 0;
        if ((rc = advance(c.copy, page_size, &off)))
            return rc;
    }
    return 0;
}

int mr_uffd_zero(int fd, void *dst, uint64_t len, uint64_t page_size)
{
    for (uint64_t off = 0; off < len;) {
        struct uffdio_zeropage z = {
            .range = { .start = (uintptr_t)dst + off, .len = len - off },
        };
        int rc;

        if (!ioctl(fd, UFFDIO_ZEROPAGE, &z))
            return 0;
        if ((rc = advance(z.zeropage, page_size, &off)))
            return rc;
    }
    return 0;
}

int mr_uffd_poison(int fd, void *start, uint64_t len)
{
    struct uffdio_poison p = {
        .range = { .start = (uintptr_t)start, .len = len },
    };

    int stalls = 0;             /* EAGAIN without progress, in a row */

    while (ioctl(fd, UFFDIO_POISON, &p)) {
        uint64_t skip = 0;

        if (errno == EAGAIN && p.updated > 0)
            skip = (uint64_t)p.updated;     /* a prefix is done */
        else if (errno == EEXIST)
            skip = 4096;    /* installed meanwhile: its data was verified */
        else if (errno != EAGAIN || ++stalls > 1000)
            return -errno;
        if (skip >= p.range.len)
            return 0;
        if (skip)
            stalls = 0;
        p.range.start += skip;
        p.range.len -= skip;
        p.updated = 0;
    }
    return 0;
}

int mr_uffd_probe(const struct mr_ram_block *blocks, size_t n,
                  struct mr_error *err)
{
    struct mr_error e = MR_ERROR_INIT;
    int fd = mr_uffd_open(&e);

    for (size_t i = 0; fd >= 0 && i < n && !e.code; i++) {
        if (blocks[i].page_size != 4096)
            mr_error_set(&e, -EINVAL, "RAM block %s: lazy load needs 4 KiB "
                         "pages", blocks[i].name);
        else if (blocks[i].used_length &&
                 !mr_uffd_register(fd, blocks[i].host, blocks[i].used_length,
                                   blocks[i].name, &e))
            mr_uffd_unregister(fd, blocks[i].host, blocks[i].used_length);
    }
    if (fd >= 0)
        close(fd);
    return e.code ? mr_error_propagate(err, &e) : 0;
}

int mr_uffd_read_fault(int fd, uint64_t *addr)
{
    struct uffd_msg m;
    ssize_t n = read(fd, &m, sizeof(m));

    n = mr_fault_filter(MR_FAULT_OP_UFFD_READ, n < 0 ? -errno : n);
    if (n < 0)
        return n == -EAGAIN ? 0 : (int)n;
    if (n != (ssize_t)sizeof(m) || m.event != UFFD_EVENT_PAGEFAULT)
        return 0;
    *addr = m.arg.pagefault.address;
    return 1;
}
