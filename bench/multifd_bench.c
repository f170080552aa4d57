/*
 * multifd_bench: how fast the page-channel pool moves guest-like memory
 * into a file, per engine, channel count, direct I/O and zero-page layout;
 * and how fast the zero-page test is.  Timings live here, never in tests.
 *
 *   multifd_bench [-s MiB] [-d DIR] [-r N] [-q]
 *     -s  bytes of "guest RAM" per run (default 1024 MiB)
 *     -d  directory for the scratch file (default /tmp)
 *     -r  repeat each run N times and print the median rates (default 1)
 *     -q  quick: scattered layout only, 1 and 2 channels
 *     -z  only the zero-page test
 *     -l  only the load test (1 MiB reads from a file not in the page cache)
 *
 * Each save run queues every page of the block in order, syncs the pool
 * (the rate printed as "GB/s"), then fdatasyncs the file ("+sync GB/s",
 * which is what a disk really sustains without O_DIRECT).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "io/engine.h"
#include "multifd/multifd.h"
#include "multifd/multifd_internal.h"
#include "multifd/zero.h"
#include "util/bitmap.h"

#define PS 4096u
#define PAGES_OFFSET 0x100000u

enum layout { LAYOUT_DATA, LAYOUT_SCATTERED, LAYOUT_CLUSTERED };
static const char *const layout_names[] = { "data", "scattered", "clustered" };

struct run {
    enum layout layout;
    const char *engine;
    unsigned nch;
    bool dio;
    unsigned zero_gap;
};

static bool quiet;             /* warm-up run: print nothing */
static unsigned reps = 1;

struct result {
    double rate, rate_sync;
    struct mr_multifd_stats st;
};

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* 25% zero pages: isolated at random (scattered) or in 1 MiB clusters. */
static void fill(uint8_t *ram, uint64_t npages, enum layout layout)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;

    for (uint64_t i = 0; i < npages; i++) {
        uint8_t *p = ram + i * PS;
        bool zero = layout == LAYOUT_SCATTERED ? xorshift(&seed) % 4 == 0
                  : layout == LAYOUT_CLUSTERED ? (i / 256) % 4 == 1 : false;

        if (zero)
            memset(p, 0, PS);
        else
            memset(p, (int)(i % 251) + 1, PS);
    }
}

static int open_channels(const char *path, int mode, bool dio, int *fds,
                         unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        fds[i] = open(path, mode | O_CLOEXEC | (dio ? O_DIRECT : 0));
        if (fds[i] < 0) {
            while (i-- > 0)
                close(fds[i]);
            return -errno;
        }
    }
    return 0;
}

static int one_save(const struct run *r, uint8_t *ram, uint64_t bytes,
                    const char *path, struct result *res)
{
    uint64_t npages = bytes / PS;
    unsigned long *bitmap = mr_bitmap_new(npages);
    unsigned nfds = r->nch ? r->nch : 1;
    struct mr_multifd_block block = { "pc.ram", ram, bytes, PS, PAGES_OFFSET,
                                      bitmap };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_multifd_stats st;
    struct mr_multifd *m;
    int fds[8], main_fd;
    double t0, t1, t2;

    main_fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (main_fd < 0 || open_channels(path, O_WRONLY, r->dio, fds, nfds) < 0) {
        printf("%-9s %-8s %2u %-3s  cannot open %s%s\n", layout_names[r->layout],
               r->engine, r->nch, r->dio ? "yes" : "no", path,
               r->dio ? " with O_DIRECT" : "");
        if (main_fd >= 0)
            close(main_fd);
        free(bitmap);
        return -1;
    }
    struct mr_multifd_config cfg = {
        .nchannels = r->nch, .fds = fds, .sync_fd = fds[0], .direct_io = r->dio,
        .zero_detection = MR_ZERO_PAGE_CHANNEL, .blocks = &block, .nblocks = 1,
        .engine = r->engine,
    };
    m = mr_multifd_new(&cfg, &err);
    if (!m) {
        fprintf(stderr, "multifd_bench: %s\n", err.msg);
        return -1;
    }
    mr_multifd_set_zero_gap(m, r->zero_gap);
    t0 = now();
    for (uint64_t i = 0; i < npages && !err.code; i++)
        mr_multifd_queue_page(m, 0, i, &err);
    mr_multifd_sync(m, &err);
    t1 = now();
    fdatasync(main_fd);
    t2 = now();
    mr_multifd_get_stats(m, &st);
    mr_multifd_free(m);
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    close(main_fd);
    unlink(path);
    free(bitmap);
    if (err.code) {
        fprintf(stderr, "multifd_bench: %s\n", err.msg);
        return -1;
    }
    res->rate = (double)bytes / (t1 - t0) / 1e9;
    res->rate_sync = (double)bytes / (t2 - t0) / 1e9;
    res->st = st;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int save_run(const struct run *r, uint8_t *ram, uint64_t bytes,
                    const char *path)
{
    double rate[16], rate_sync[16];
    struct result res = { 0 };

    for (unsigned i = 0; i < reps; i++) {
        if (one_save(r, ram, bytes, path, &res) < 0)
            return -1;
        rate[i] = res.rate;
        rate_sync[i] = res.rate_sync;
    }
    if (quiet)
        return 0;
    printf("%-9s %-8s %2u %-3s %4u %7.2f %7.2f %9llu %6.1f\n",
           layout_names[r->layout], r->engine, r->nch, r->dio ? "yes" : "no",
           r->zero_gap, median(rate, reps), median(rate_sync, reps),
           (unsigned long long)res.st.requests,
           (double)res.st.bytes_written /
               (double)(res.st.requests ? res.st.requests : 1) / 1024.0);
    fflush(stdout);
    return 0;
}

/* Zero test over every page of the block, both implementations. */
static void zero_bench(uint8_t *ram, uint64_t bytes)
{
    static const enum layout layouts[] = { LAYOUT_DATA, LAYOUT_CLUSTERED };

    printf("\nzero-page test over %llu MiB (GB/s of memory scanned)\n",
           (unsigned long long)(bytes >> 20));
    memset(ram, 0, bytes);
    for (int l = -1; l < 2; l++) {
        double t[2];
        uint64_t nz[2] = { 0, 0 };

        if (l >= 0)
            fill(ram, bytes / PS, layouts[l]);
        t[0] = t[1] = 1e9;
        /* Alternate the two, three times each, and keep the best: the
         * first pass over the memory pays for cold caches and TLBs. */
        for (int pass = 0; pass < 6; pass++) {
            int impl = pass % 2;
            uint64_t found = 0;
            double t0 = now(), dt;

            for (uint64_t off = 0; off < bytes; off += PS)
                found += impl ? mr_page_is_zero_words(ram + off, PS)
                              : mr_page_is_zero(ram + off, PS);
            dt = now() - t0;
            nz[impl] = found;
            if (dt < t[impl])
                t[impl] = dt;
        }
        printf("  %-9s sse2 %7.2f  words %7.2f  (zero pages %llu/%llu)\n",
               l < 0 ? "all-zero" : layout_names[layouts[l]],
               (double)bytes / t[0] / 1e9, (double)bytes / t[1] / 1e9,
               (unsigned long long)nz[0], (unsigned long long)nz[1]);
    }
}

/* Write the whole block to `path` and push it out of the page cache, so
 * the load below reads from the disk. */
static int prepare_file(uint8_t *ram, uint64_t bytes, const char *path)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    uint64_t off = 0;

    if (fd < 0)
        return -errno;
    while (off < bytes) {
        ssize_t n = pwrite(fd, ram + off, bytes - off, (off_t)(PAGES_OFFSET + off));

        if (n <= 0) {
            close(fd);
            return -EIO;
        }
        off += (uint64_t)n;
    }
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    return 0;
}

/* Load: 1 MiB pieces handed to the channels, as the loader cuts them. */
static double one_load(const struct run *r, uint8_t *dst, uint64_t bytes,
                       const char *path)
{
    unsigned nfds = r->nch ? r->nch : 1;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_multifd *m;
    int fds[8];
    double t0, t1;

    if (open_channels(path, O_RDONLY, r->dio, fds, nfds) < 0)
        return -1;
    posix_fadvise(fds[0], 0, 0, POSIX_FADV_DONTNEED);
    struct mr_multifd_config cfg = {
        .nchannels = r->nch, .fds = fds, .sync_fd = fds[0], .direct_io = r->dio,
        .engine = r->engine,
    };
    m = mr_multifd_new(&cfg, &err);
    t0 = now();
    for (uint64_t off = 0; m && off < bytes && !err.code; off += 1 << 20) {
        uint64_t len = bytes - off < (1 << 20) ? bytes - off : 1 << 20;

        mr_multifd_queue_read(m, dst + off, len, PAGES_OFFSET + off, &err);
    }
    if (m)
        mr_multifd_sync(m, &err);
    t1 = now();
    mr_multifd_free(m);
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (err.code) {
        fprintf(stderr, "multifd_bench: %s\n", err.msg);
        return -1;
    }
    return (double)bytes / (t1 - t0) / 1e9;
}

static void load_bench(uint8_t *ram, uint64_t bytes, const char *path,
                       bool quick)
{
    static const char *engines[] = { "psync", "io_uring" };
    static const unsigned nchs[] = { 1, 2, 4 };
    uint8_t *dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (dst == MAP_FAILED || prepare_file(ram, bytes, path) < 0) {
        fprintf(stderr, "multifd_bench: cannot prepare the load file\n");
        return;
    }
    memset(dst, 0, bytes);
    printf("\nload of %llu MiB from disk in 1 MiB pieces, median of %u (GB/s)\n",
           (unsigned long long)(bytes >> 20), reps);
    printf("%-8s %2s %-3s %7s\n", "engine", "ch", "dio", "GB/s");
    for (int dio = 0; dio < 2; dio++)
        for (size_t e = 0; e < 2; e++)
            for (size_t c = 0; c < (quick ? 2 : 3); c++) {
                struct run r = { LAYOUT_DATA, engines[e], nchs[c], dio, 0 };
                double rate[16];
                unsigned i;

                for (i = 0; i < reps; i++) {
                    rate[i] = one_load(&r, dst, bytes, path);
                    if (rate[i] < 0)
                        break;
                }
                if (i < reps)
                    printf("%-8s %2u %-3s  failed\n", r.engine, r.nch,
                           dio ? "yes" : "no");
                else
                    printf("%-8s %2u %-3s %7.2f\n", r.engine, r.nch,
                           dio ? "yes" : "no", median(rate, reps));
                fflush(stdout);
            }
    if (memcmp(dst, ram, bytes))
        printf("load: memory differs from what was saved!\n");
    unlink(path);
    munmap(dst, bytes);
}

static void usage(void)
{
    fprintf(stderr, "usage: multifd_bench [-s MiB] [-d DIR] [-r N] [-q] [-z] [-l]\n");
}

int main(int argc, char **argv)
{
    static const char *engines[] = { "psync", "io_uring" };
    static const unsigned nchs[] = { 1, 2, 4 };
    const char *dir = "/tmp";
    uint64_t mib = 1024;
    bool quick = false, zero_only = false, load_only = false;
    char path[4096];
    uint8_t *ram;
    int opt;

    while ((opt = getopt(argc, argv, "s:d:r:qzl")) != -1) {
        if (opt == 's')
            mib = strtoull(optarg, NULL, 10);
        else if (opt == 'd')
            dir = optarg;
        else if (opt == 'r')
            reps = (unsigned)strtoul(optarg, NULL, 10);
        else if (opt == 'q')
            quick = true;
        else if (opt == 'z')
            zero_only = true;
        else if (opt == 'l')
            load_only = true;
        else {
            usage();
            return 2;
        }
    }
    if (mib == 0 || mib > 64 * 1024 || reps == 0 || reps > 16) {
        usage();
        return 2;
    }
    snprintf(path, sizeof(path), "%s/multifd_bench.%d", dir, (int)getpid());
    ram = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ram == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    if (load_only) {
        fill(ram, (mib << 20) / PS, LAYOUT_DATA);
        load_bench(ram, mib << 20, path, quick);
        munmap(ram, mib << 20);
        return 0;
    }
    if (zero_only) {
        zero_bench(ram, mib << 20);
        munmap(ram, mib << 20);
        return 0;
    }
    printf("save of %llu MiB, median of %u; GB/s = until the pool synced, +sync = until "
           "fdatasync returned; KiB/req = bytes written per request\n",
           (unsigned long long)mib, reps);
    printf("%-9s %-8s %2s %-3s %4s %7s %7s %9s %6s\n", "layout", "engine", "ch",
           "dio", "gap", "GB/s", "+sync", "requests", "KiB/req");
    /* Warm-up: first file allocation and page-cache growth are slow. */
    fill(ram, (mib << 20) / PS, LAYOUT_DATA);
    quiet = true;
    save_run(&(struct run){ LAYOUT_DATA, "psync", 2, false, 4 }, ram,
             mib << 20, path);
    quiet = false;
    for (int l = quick ? 1 : 0; l < (quick ? 2 : 3); l++) {
        fill(ram, (mib << 20) / PS, (enum layout)l);
        for (int dio = 0; dio < 2; dio++)
            for (size_t e = 0; e < 2; e++)
                for (size_t c = 0; c < (quick ? 2 : 3); c++) {
                    struct run r = { (enum layout)l, engines[e], nchs[c],
                                     dio, MR_MULTIFD_ZERO_GAP_DEFAULT };
                    save_run(&r, ram, mib << 20, path);
                }
        if (l == LAYOUT_SCATTERED) {
            /* QEMU's policy (one request per run of non-zero pages) is gap 0. */
            static const unsigned gaps[] = { 0, 1, 16 };

            for (int dio = 0; dio < 2; dio++)
                for (size_t g = 0; g < 3; g++) {
                    struct run r = { LAYOUT_SCATTERED, "psync", 2, dio, gaps[g] };
                    save_run(&r, ram, mib << 20, path);
                }
        }
    }
    fill(ram, (mib << 20) / PS, LAYOUT_DATA);
    load_bench(ram, mib << 20, path, quick);
    zero_bench(ram, mib << 20);
    munmap(ram, mib << 20);
    return 0;
}
