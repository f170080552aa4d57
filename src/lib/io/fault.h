/*
 * Fault injection (builds with -Dfault_injection=true only, where
 * MR_FAULT_INJECTION is defined).
 */
#ifndef MAPRAM_IO_FAULT_H
#define MAPRAM_IO_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mapram/error.h"

/*
 * A plan names an operation kind, an ordinal N and a fault: the Nth
 * operation of that kind (counting from 1 since the plan was set) has its
 * raw result rewritten, once.  Page I/O is filtered at the one point where
 * every engine turns a raw completion (syscall return or CQE) into request
 * progress, so each engine's own resume and error paths are what run, the
 * way CRIU's FI_PARTIAL_PAGES halves a preadv result.  Non-page OS calls
 * are filtered in the mr_sys table (sys.h).
 *
 * Plans come from mr_fault_set() or, on first use, the environment:
 *     MAPRAM_FAULT=<op>:<N>:<kind>     e.g. MAPRAM_FAULT=write:17:eio
 * op:   write read (page channels), open fcntl ftruncate fallocate
 *       fdatasync pwrite pread (mr_sys calls); for the lazy load
 *       (docs/lazy-load.md): userfaultfd (creating one, the
 *       postcopy-ram probe included), uffd-read (the fault thread's
 *       reads of its events), lazy-read (a granule's reads from the file)
 * kind: short eio enospc eintr eagain
 * A short fault reports half the bytes (whole 4 KiB blocks when possible,
 * so O_DIRECT resumption stays aligned); on calls that move no bytes it
 * acts as eio.
 */

enum mr_fault_op {
    MR_FAULT_OP_WRITE,
    MR_FAULT_OP_READ,
    MR_FAULT_OP_OPEN,
    MR_FAULT_OP_FCNTL,
    MR_FAULT_OP_FTRUNCATE,
    MR_FAULT_OP_FALLOCATE,
    MR_FAULT_OP_FDATASYNC,
    MR_FAULT_OP_PWRITE,
    MR_FAULT_OP_PREAD,
    MR_FAULT_OP_USERFAULTFD,
    MR_FAULT_OP_UFFD_READ,
    MR_FAULT_OP_LAZY_READ,
    MR_FAULT_OP_COUNT,
};

enum mr_fault_kind {
    MR_FAULT_SHORT,
    MR_FAULT_EIO,
    MR_FAULT_ENOSPC,
    MR_FAULT_EINTR,
    MR_FAULT_EAGAIN,
};

struct mr_fault_plan {
    enum mr_fault_op op;
    uint64_t nth;               /* >= 1 */
    enum mr_fault_kind kind;
};

/* Parse "<op>:<N>:<kind>" (pure; available in every build). */
int mr_fault_parse(const char *spec, struct mr_fault_plan *plan,
                   struct mr_error *err);

#ifdef MR_FAULT_INJECTION
/* Install a plan (NULL: none) and reset the counters. */
void mr_fault_set(const struct mr_fault_plan *plan);
/* How many times the current plan fired (0 or 1). */
unsigned mr_fault_fired(void);
/* Count one operation of kind `op` whose raw result is `res` (bytes or
 * -errno); returns the result to act on. */
ssize_t mr_fault_filter(enum mr_fault_op op, ssize_t res);
#else
static inline ssize_t mr_fault_filter(enum mr_fault_op op, ssize_t res)
{
    (void)op;
    return res;
}
#endif

#endif
