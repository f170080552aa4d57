/*
 * The save job: one batch of pages of one block tested for zero, planned
 * into write runs (batch.h), bitmap bits cleared for pages skipped and set
 * for runs written, the runs written straight from guest memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "multifd/jobs.h"
#include "multifd/zero.h"
#include "util/bitmap.h"

struct write_args {
    bool detect;                 /* test pages for zero */
    unsigned zero_gap;
};
MR_POOL_ARGS_FIT(struct write_args);

struct mr_page_batch *mr_page_batch_new(size_t cap)
{
    struct mr_page_batch *bt = calloc(1, sizeof(*bt));

    if (!bt)
        return NULL;
    bt->pages = calloc(cap, sizeof(*bt->pages));
    bt->kind = calloc(cap, 1);
    bt->runs = calloc(cap, sizeof(*bt->runs));
    bt->iov = calloc(cap, sizeof(*bt->iov));
    bt->reqs = calloc(cap, sizeof(*bt->reqs));
    if (!bt->pages || !bt->kind || !bt->runs || !bt->iov || !bt->reqs) {
        mr_page_batch_free(bt);
        return NULL;
    }
    return bt;
}

void mr_page_batch_free(struct mr_page_batch *bt)
{
    if (!bt)
        return;
    free(bt->pages);
    free(bt->kind);
    free(bt->runs);
    free(bt->iov);
    free(bt->reqs);
    free(bt);
}

#define ZERO_TEST_PREFETCH_PAGES 8

static void classify(struct mr_page_batch *bt, bool detect)
{
    const struct mr_multifd_block *b = bt->block;
    size_t n = bt->npages;

    for (size_t i = 0; i < n; i++) {
        /* A data page is told apart by its first bytes, so the test costs
         * one cache miss per page, which the CPU's prefetchers (they stop
         * at page boundaries) do not hide: ask for pages ahead. */
        if (detect && i + ZERO_TEST_PREFETCH_PAGES < n)
            __builtin_prefetch(b->host + bt->pages[i + ZERO_TEST_PREFETCH_PAGES] *
                               b->page_size);
        bt->kind[i] = detect && mr_page_is_zero(b->host + bt->pages[i] *
                                                b->page_size,
                                                (size_t)b->page_size)
                      ? MR_PAGE_ZERO : MR_PAGE_DATA;
    }
}

static void clear_zero_bits(struct mr_page_batch *bt, uint64_t *count)
{
    for (size_t i = 0; i < bt->npages; i++) {
        if (bt->kind[i] == MR_PAGE_ZERO) {
            mr_bitmap_clear_atomic(bt->block->file_bitmap, bt->pages[i]);
            count[MR_CNT_ZERO_PAGES]++;
        }
    }
}

static void build_requests(struct mr_page_batch *bt, int fd, size_t nruns)
{
    const struct mr_multifd_block *b = bt->block;

    for (size_t k = 0; k < nruns; k++) {
        uint64_t off = bt->runs[k].first * b->page_size;

        bt->iov[k].iov_base = b->host + off;
        bt->iov[k].iov_len = (size_t)(bt->runs[k].nr_pages * b->page_size);
        mr_io_req_init(&bt->reqs[k], fd, MR_IO_WRITE, b->pages_offset + off,
                       &bt->iov[k], 1);
    }
}

/* Bits are set only for runs the file now holds. */
static void mark_written(struct mr_page_batch *bt, size_t nruns,
                         uint64_t *count)
{
    const struct mr_multifd_block *b = bt->block;

    for (size_t k = 0; k < nruns; k++) {
        if (bt->reqs[k].result)
            continue;
        mr_bitmap_set_range_atomic(b->file_bitmap, bt->runs[k].first,
                                   bt->runs[k].nr_pages);
        count[MR_CNT_NORMAL_PAGES] += bt->runs[k].nr_pages;
        count[MR_CNT_BYTES_WRITTEN] += bt->runs[k].nr_pages * b->page_size;
    }
}

static int write_run(void *worker, const struct mr_pool_job *job,
                     uint64_t *count, struct mr_error *e)
{
    struct mr_channel *c = worker;
    struct mr_page_batch *bt = job->obj;
    struct write_args a;
    size_t nruns;
    int r;

    memcpy(&a, job->args, sizeof(a));
    mr_batch_sort(bt->pages, bt->npages);
    classify(bt, a.detect);
    nruns = mr_batch_plan(bt->pages, bt->kind, bt->npages, a.zero_gap,
                          bt->runs);
    clear_zero_bits(bt, count);
    build_requests(bt, c->fd, nruns);
    r = mr_io_run(c->io, bt->reqs, nruns);
    count[MR_CNT_REQUESTS] += nruns;
    mark_written(bt, nruns, count);
    if (r < 0)
        return mr_error_set(e, r, "Unable to write to file: %s", strerror(-r));
    return 0;
}

struct mr_pool_job mr_job_write(struct mr_page_batch *bt, bool detect,
                                unsigned zero_gap)
{
    struct mr_pool_job job = { .run = write_run, .obj = bt };
    struct write_args a = { detect, zero_gap };

    memcpy(job.args, &a, sizeof(a));
    return job;
}
