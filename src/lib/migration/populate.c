/*
 * Populate-ahead for loads (see populate.h).  Ranges are cut into pieces of
 * at most MR_POPULATE_PIECE_BYTES when added; threads take pieces in order
 * from one atomic cursor, so the populated front moves like the reads do.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "migration/populate.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define MR_POPULATE_PIECE_BYTES (2u << 20)
#define MR_POPULATE_MAX_THREADS 16u

struct populate_piece {
    uint8_t *host;
    uint64_t len;
};

struct mr_populate {
    struct populate_piece *pieces;
    size_t npieces, cap;
    atomic_size_t next;
    atomic_bool stop;
    atomic_uint_least64_t done_bytes;
    unsigned nthreads, started;
    pthread_t tids[MR_POPULATE_MAX_THREADS];
    bool oom;
};

static unsigned threads_wanted(void)
{
    const char *s = getenv("MAPRAM_POPULATE_THREADS");
    char *end;
    unsigned long v;

    if (!s || !*s)
        return MR_POPULATE_THREADS_DEFAULT;
    v = strtoul(s, &end, 10);
    if (*end || v > MR_POPULATE_MAX_THREADS)
        return MR_POPULATE_THREADS_DEFAULT;
    return (unsigned)v;
}

struct mr_populate *mr_populate_new(void)
{
    unsigned n = threads_wanted();
    struct mr_populate *p;

    if (n == 0)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (p)
        p->nthreads = n;
    return p;
}

void mr_populate_add(struct mr_populate *p, void *host, uint64_t len)
{
    uint8_t *h = host;

    if (!p || p->oom)
        return;
    while (len) {
        uint64_t n = len < MR_POPULATE_PIECE_BYTES ? len
                                                   : MR_POPULATE_PIECE_BYTES;

        if (p->npieces == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 256;
            struct populate_piece *np = realloc(p->pieces, cap * sizeof(*np));

            if (!np) {
                /* populating is only an optimisation: keep what we have */
                p->oom = true;
                return;
            }
            p->pieces = np;
            p->cap = cap;
        }
        p->pieces[p->npieces++] = (struct populate_piece){ h, n };
        h += n;
        len -= n;
    }
}

static void *populate_thread(void *arg)
{
    struct mr_populate *p = arg;

    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        size_t i = atomic_fetch_add(&p->next, 1);

        if (i >= p->npieces)
            break;
        /* EINVAL: a kernel without MADV_POPULATE_WRITE; any other error
         * (ENOMEM, EFAULT) the read itself will report properly */
        if (madvise(p->pieces[i].host, p->pieces[i].len,
                    MADV_POPULATE_WRITE) != 0)
            break;
        atomic_fetch_add(&p->done_bytes, p->pieces[i].len);
    }
    return NULL;
}

void mr_populate_start(struct mr_populate *p)
{
    if (!p || p->started)
        return;
    for (unsigned i = 0; i < p->nthreads; i++) {
        if (pthread_create(&p->tids[i], NULL, populate_thread, p) != 0)
            break;
        p->started++;
    }
}

void mr_populate_free(struct mr_populate *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    for (unsigned i = 0; i < p->started; i++)
        pthread_join(p->tids[i], NULL);
    free(p->pieces);
    free(p);
}

uint64_t mr_populate_done_bytes(struct mr_populate *p)
{
    return p ? atomic_load(&p->done_bytes) : 0;
}
