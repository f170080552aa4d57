/*
 * iovec helpers shared by every I/O engine: total length, advancing an
 * array in place after a short transfer (so the remainder can be
 * resubmitted), and cutting an array into runs of contiguous memory.
 */
#ifndef MAPRAM_UTIL_IOV_H
#define MAPRAM_UTIL_IOV_H

#include <stddef.h>
#include <sys/uio.h>

size_t mr_iov_total(const struct iovec *iov, int iovcnt);

/*
 * Drop the first `bytes` bytes: fully consumed entries are skipped
 * (*iov moves forward, *iovcnt shrinks) and a partly consumed entry is
 * trimmed in place.  Returns the bytes that could not be dropped because
 * the array was shorter (0 normally).
 */
size_t mr_iov_advance(struct iovec **iov, int *iovcnt, size_t bytes);

/*
 * Number of entries, starting at iov[0], whose memory is contiguous
 * (each entry starts where the previous ended); at most `max` (> 0).
 * 0 only when iovcnt is 0.
 */
int mr_iov_run_len(const struct iovec *iov, int iovcnt, int max);

#endif
