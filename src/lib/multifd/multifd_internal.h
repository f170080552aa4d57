/*
 * Knobs of the channel pool that only tests and the benchmark turn.
 */
#ifndef MAPRAM_MULTIFD_INTERNAL_H
#define MAPRAM_MULTIFD_INTERNAL_H

#include "multifd/multifd.h"

/* Zero pages between data pages that a channel still writes to keep one
 * request (see batch.h); the default is MR_MULTIFD_ZERO_GAP_DEFAULT. */
#define MR_MULTIFD_ZERO_GAP_DEFAULT 4
void mr_multifd_set_zero_gap(struct mr_multifd *m, unsigned max_pages);

/* Requests each channel's engine keeps in flight (io_uring). */
#define MR_MULTIFD_IO_DEPTH 16

#endif
