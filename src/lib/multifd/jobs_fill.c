/*
 * The fill job (docs/lazy-load.md, "Fill"): a range of one block's pages
 * read into a bounce buffer on a channel (absent pages zero: a short gap
 * between present runs is read with them and zeroed, never trusted),
 * every checksum extent of it verified, and only then handed to the
 * owner's `done` hook, which installs it.  A range that fails is handed
 * over with its error and is never installed.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "format/cksum.h"
#include "format/mapped_ram.h"
#include "mapram/crc32c.h"
#include "multifd/jobs.h"

struct fill_args {
    struct mr_multifd_fill *f;
};
MR_POOL_ARGS_FIT(struct fill_args);

/* Runs of present pages closer than this are read as one request, the
 * absent pages between them zeroed afterwards (never trusted): a
 * scattered layout otherwise costs a request per few pages. */
#define FILL_READ_GAP 64

static void zero_absent(const struct mr_multifd_fill *f, uint64_t a,
                        uint64_t b)
{
    for (uint64_t q = a; q < b; q++)
        if (!mr_bitmap_le64_test(f->bitmap, q))
            memset(f->buf + (q - f->first) * f->page_size, 0, f->page_size);
}

static int fill_read(struct mr_channel *c, const struct mr_multifd_fill *f,
                     uint64_t *count, struct mr_error *e)
{
    uint64_t a, b, ra = 0, rb = 0;
    bool open = false;

    memset(f->buf, 0, (f->end - f->first) * f->page_size);
    for (uint64_t from = f->first;; from = b) {
        bool more = mr_bitmap_le64_next_run(f->bitmap, f->end, from, &a, &b);

        if (open && more && a - rb <= FILL_READ_GAP) {
            rb = b;             /* bridge the gap */
            continue;
        }
        if (open) {
            if (mr_channel_read(c, f->buf + (ra - f->first) * f->page_size,
                                (rb - ra) * f->page_size,
                                f->pages_offset + ra * f->page_size, count, e))
                return e->code;
            zero_absent(f, ra, rb);
        }
        if (!more)
            return 0;
        ra = a;
        rb = b;
        open = true;
    }
}

/* Each extent of [first, end) as the loader sees it (absent = zero). */
static int fill_verify(const struct mr_multifd_fill *f, struct mr_error *e)
{
    uint64_t per = mr_cksum_extent_pages(f->page_size);

    for (uint64_t q = f->first; f->crc && q < f->end; q += per) {
        uint64_t n = q + per < f->end ? per : f->end - q, x = q / per;
        uint32_t got = mr_crc32c(0, f->buf + (q - f->first) * f->page_size,
                                 n * f->page_size);

        if (x >= f->nr_extents || got != f->crc[x])
            return mr_error_set(e, -EBADMSG, "checksum mismatch in RAM block "
                                "%s, extent %" PRIu64 " (pages at 0x%" PRIx64
                                "): the file's data differs from what was "
                                "saved; nothing of it was installed",
                                f->block, x, q * f->page_size);
    }
    return 0;
}

static int fill_run(void *worker, const struct mr_pool_job *job,
                    uint64_t *count, struct mr_error *e)
{
    struct fill_args a;
    struct mr_error why = MR_ERROR_INIT;
    int rc;

    memcpy(&a, job->args, sizeof(a));
    rc = fill_read(worker, a.f, count, &why);
    if (!rc)
        rc = fill_verify(a.f, &why);
    rc = a.f->done(a.f, rc, &why);
    if (rc)
        mr_error_propagate(e, &why);
    return rc;
}

struct mr_pool_job mr_job_fill(struct mr_multifd_fill *f)
{
    struct mr_pool_job job = { .run = fill_run };
    struct fill_args a = { f };

    memcpy(job.args, &a, sizeof(a));
    return job;
}
