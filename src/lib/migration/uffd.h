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
#include "mapram/vm.h"

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

/* Mark [start, start+len) so that any access gets a memory error (SIGBUS,
 * or EHWPOISON from the kernel's own access) instead of waiting or data;
 * wakes the threads asleep there.  Pages installed meanwhile are kept.
 * 0 or -errno (ENOTTY/EINVAL before Linux 6.6). */
int mr_uffd_poison(int fd, void *start, uint64_t len);

/* Before a lazy load is allowed (postcopy-ram on a destination): a
 * userfaultfd can be created and every block registered for MISSING with
 * COPY and ZEROPAGE (then unregistered at once).  0 or -errno with the
 * reason naming the block. */
int mr_uffd_probe(const struct mr_ram_block *blocks, size_t n,
                  struct mr_error *err);

/* One PAGEFAULT event: 1 with *addr set, 0 if none/another event, -errno. */
int mr_uffd_read_fault(int fd, uint64_t *addr);

#endif
