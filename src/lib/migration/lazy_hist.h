/*
 * A lock-free latency histogram for the lazy load's fault service times:
 * eight buckets per power of two of nanoseconds (at most 12.5 % high),
 * so query-migrate can report p50 and p99 without keeping samples.
 */
#ifndef MAPRAM_MIGRATION_LAZY_HIST_H
#define MAPRAM_MIGRATION_LAZY_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define MIG_LAT_BUCKETS (64 * 8)

struct mig_lat_hist {
    atomic_uint_fast64_t b[MIG_LAT_BUCKETS];
};

void mig_lat_hist_add(struct mig_lat_hist *h, uint64_t ns);
/* The upper bound (ns) of the bucket holding quantile q (0..1); 0 when
 * empty. */
uint64_t mig_lat_hist_quantile(struct mig_lat_hist *h, double q);

#endif
