/*
 * memtool: the small native helpers of the benchmark (bench/bench.py).
 * Python is too slow to write gigabytes of guest memory or to measure
 * memory bandwidth, so those steps live here.
 *
 *   memtool prefill FILE SIZE scattered|clustered [SEED]
 *       write SIZE bytes of guest memory to FILE: 80 % of the 4 KiB pages
 *       hold data, 20 % are zero, either isolated at random (scattered)
 *       or in 16 MiB clusters (clustered); prints the zero-page count.
 *       The first MiB stays zero (the micro-VM's boot area).
 *   memtool memcpy SIZE
 *       memcpy bandwidth between two SIZE buffers (best of 3, GB/s)
 *   memtool populate SIZE THREADS anon|shm
 *       first touch of fresh memory with MADV_POPULATE_WRITE split over
 *       THREADS threads (GB/s); shm = a file in /dev/shm, shared
 *
 * SIZE accepts K, M, G suffixes.  Output is one "key value" line per
 * figure so the driver can parse it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE 4096u
#define CLUSTER_PAGES 4096u     /* 16 MiB */
#define LOW_PAGES 256u          /* 1 MiB */

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t parse_size(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 10);

    switch (*end) {
    case 'G': case 'g': return v << 30;
    case 'M': case 'm': return v << 20;
    case 'K': case 'k': return v << 10;
    default: return v;
    }
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A data page: its index in the first 8 bytes, then a cheap pattern, so
 * no two pages are equal and none is zero. */
static void fill_page(uint8_t *p, uint64_t i)
{
    uint64_t v = i ^ 0x5a5a5a5a5a5a5a5aull;

    memset(p + 8, (int)((i * 7) | 1) & 0xff, PAGE - 8);
    memcpy(p, &v, 8);
}

static bool page_is_zero(uint64_t i, int clustered, uint64_t *seed)
{
    if (!clustered)
        return xorshift(seed) % 5 == 0;
    /* one cluster in five is zero, spread evenly over the block */
    return (i / CLUSTER_PAGES) % 5 == 2;
}

static int cmd_prefill(int argc, char **argv)
{
    uint64_t size, npages, nzero = 0, seed = 0x9e3779b97f4a7c15ull;
    int clustered, fd;
    uint8_t *buf;

    if (argc < 5)
        return 2;
    size = parse_size(argv[3]);
    npages = size / PAGE;
    clustered = strcmp(argv[4], "clustered") == 0;
    if (!clustered && strcmp(argv[4], "scattered") != 0)
        return 2;
    if (argc > 5)
        seed ^= strtoull(argv[5], NULL, 0);
    fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        perror(argv[2]);
        return 1;
    }
    buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (buf == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (uint64_t i = 0; i < npages; i++) {
        /* the first MiB is the micro-VM's boot area: its stop flag and
         * pass counter must start at zero, as in fresh memory */
        if (i < LOW_PAGES) {
            nzero++;
            continue;
        }
        if (page_is_zero(i, clustered, &seed))
            nzero++;
        else
            fill_page(buf + i * PAGE, i);
    }
    munmap(buf, size);
    close(fd);
    printf("pages %llu\nzero_pages %llu\n", (unsigned long long)npages,
           (unsigned long long)nzero);
    return 0;
}

static int cmd_memcpy(int argc, char **argv)
{
    uint64_t size;
    uint8_t *a, *b;
    double best = 0;

    if (argc < 3)
        return 2;
    size = parse_size(argv[2]);
    a = malloc(size);
    b = malloc(size);
    if (!a || !b)
        return 1;
    memset(a, 1, size);
    memset(b, 2, size);
    for (int r = 0; r < 3; r++) {
        double t = now();

        memcpy(b, a, size);
        t = now() - t;
        if (size / t / 1e9 > best)
            best = size / t / 1e9;
    }
    printf("memcpy_gbps %.3f\n", best);
    free(a);
    free(b);
    return 0;
}

struct pop_job {
    uint8_t *base;
    uint64_t len;
    int rc;
};

static void *pop_thread(void *arg)
{
    struct pop_job *j = arg;

    j->rc = madvise(j->base, j->len, MADV_POPULATE_WRITE) ? -errno : 0;
    return NULL;
}

static int cmd_populate(int argc, char **argv)
{
    uint64_t size, chunk;
    unsigned nthreads;
    int shm, fd = -1, flags = MAP_SHARED;
    char path[] = "/dev/shm/memtool-XXXXXX";
    uint8_t *p;
    pthread_t tid[64];
    struct pop_job jobs[64];
    double t;

    if (argc < 5)
        return 2;
    size = parse_size(argv[2]);
    nthreads = (unsigned)atoi(argv[3]);
    if (nthreads < 1 || nthreads > 64)
        return 2;
    shm = strcmp(argv[4], "shm") == 0;
    if (shm) {
        fd = mkstemp(path);
        if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
            return 1;
        unlink(path);
    } else {
        flags = MAP_PRIVATE | MAP_ANONYMOUS;
    }
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED)
        return 1;
    chunk = (size / nthreads + (2u << 20) - 1) & ~(uint64_t)((2u << 20) - 1);
    t = now();
    for (unsigned i = 0; i < nthreads; i++) {
        uint64_t off = i * chunk;

        jobs[i].base = p + off;
        jobs[i].len = off >= size ? 0 : (size - off < chunk ? size - off : chunk);
        pthread_create(&tid[i], NULL, pop_thread, &jobs[i]);
    }
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(tid[i], NULL);
        if (jobs[i].rc) {
            fprintf(stderr, "madvise: %s\n", strerror(-jobs[i].rc));
            return 1;
        }
    }
    t = now() - t;
    printf("populate_gbps %.3f\npopulate_s %.3f\n", size / t / 1e9, t);
    munmap(p, size);
    if (fd >= 0)
        close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 2;

    if (argc >= 2 && strcmp(argv[1], "prefill") == 0)
        rc = cmd_prefill(argc, argv);
    else if (argc >= 2 && strcmp(argv[1], "memcpy") == 0)
        rc = cmd_memcpy(argc, argv);
    else if (argc >= 2 && strcmp(argv[1], "populate") == 0)
        rc = cmd_populate(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: see the comment at the top of memtool.c\n");
    return rc;
}
