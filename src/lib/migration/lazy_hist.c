/*
 * The fault latency histogram (lazy_hist.h): bucket = 8 * log2(ns) plus
 * the three bits below the top one.
 */
#include "migration/lazy_hist.h"

static unsigned bucket(uint64_t ns)
{
    unsigned msb;

    if (ns < 8)
        return (unsigned)ns;
    msb = 63u - (unsigned)__builtin_clzll(ns);
    return msb * 8 + (unsigned)((ns >> (msb - 3)) & 7);
}

static uint64_t upper(unsigned i)
{
    unsigned msb = i / 8, sub = i % 8;

    if (msb < 3)
        return i + 1;
    return (uint64_t)(8 + sub + 1) << (msb - 3);
}

void mig_lat_hist_add(struct mig_lat_hist *h, uint64_t ns)
{
    atomic_fetch_add_explicit(&h->b[bucket(ns)], 1, memory_order_relaxed);
}

uint64_t mig_lat_hist_quantile(struct mig_lat_hist *h, double q)
{
    uint64_t n = 0, seen = 0, want;

    for (unsigned i = 0; i < MIG_LAT_BUCKETS; i++)
        n += atomic_load_explicit(&h->b[i], memory_order_relaxed);
    if (!n)
        return 0;
    want = (uint64_t)(q * (double)n);
    if (want >= n)
        want = n - 1;
    for (unsigned i = 0; i < MIG_LAT_BUCKETS; i++) {
        seen += atomic_load_explicit(&h->b[i], memory_order_relaxed);
        if (seen > want)
            return upper(i);
    }
    return upper(MIG_LAT_BUCKETS - 1);
}
