/*
 * A thin userfaultfd wrapper for the lazy load (docs/lazy-load.md):
 * open (the /dev/userfaultfd device, then the syscall), API handshake,
 * MISSING registration, and the resolving ioctls with EEXIST folded in.
 */
#ifndef MAPRAM_MIGRATION_UFFD_H
#define MAPRAM_MIGRATION_UFFD_H

#include <stdbool.h>
#include <stdint.h>

#include "mapram/error.h"

/* A descriptor past the API handshake (O_CLOEXEC|O_NONBLOCK), or -errno
 * with a message naming why userfaultfd is unavailable. */
int mr_uffd_open(struct mr_error *err);

/* MISSING registration of [start, start+len); refuses ranges that cannot
 * take both COPY and ZEROPAGE (regular files, hugetlbfs). */
int mr_uffd_register(int fd, void *start, uint64_t len, const char *name,
                     struct mr_error *err);
int mr_uffd_unregister(int fd, void *start, uint64_t len);

/* Fill [dst, dst+len) from src, or with zero pages; pages already present
 * (EEXIST) are skipped and count as done.  0 or -errno. */
int mr_uffd_copy(int fd, void *dst, const void *src, uint64_t len,
                 uint64_t page_size);
int mr_uffd_zero(int fd, void *dst, uint64_t len, uint64_t page_size);
int mr_uffd_wake(int fd, void *start, uint64_t len);

/* One PAGEFAULT event: 1 with *addr set, 0 if none/another event, -errno. */
int mr_uffd_read_fault(int fd, uint64_t *addr);

#endif
