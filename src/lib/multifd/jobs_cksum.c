/*
 * The checksum jobs (format/cksum.h extents): on save, compute a range of
 * a block's extent CRCs from guest memory and the file bitmap; on load,
 * read one extent's present pages and check its CRC before the guest runs.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "format/cksum.h"
#include "format/mapped_ram.h"
#include "multifd/jobs.h"

struct checksum_args {
    const struct mr_multifd_block *block;
    uint64_t first, n;
    uint32_t *out;               /* indexed by extent */
};
MR_POOL_ARGS_FIT(struct checksum_args);
MR_POOL_ARGS_FIT(struct mr_multifd_extent);

static int checksum_run(void *worker, const struct mr_pool_job *job,
                        uint64_t *count, struct mr_error *e)
{
    struct checksum_args a;
    uint64_t pages;

    (void)worker, (void)count, (void)e;
    memcpy(&a, job->args, sizeof(a));
    pages = a.block->used_length / a.block->page_size;
    for (uint64_t x = a.first; x < a.first + a.n; x++)
        a.out[x] = mr_cksum_extent(a.block->host, a.block->page_size, pages, x,
                                   mr_cksum_present_ulong,
                                   a.block->file_bitmap);
    return 0;
}

struct mr_pool_job mr_job_checksum(const struct mr_multifd_block *b,
                                   uint64_t first, uint64_t n, uint32_t *out)
{
    struct mr_pool_job job = { .run = checksum_run };
    struct checksum_args a = { b, first, n, out };

    memcpy(job.args, &a, sizeof(a));
    return job;
}

/* Read each run of present pages of the extent, then check its CRC. */
static int verify_run(void *worker, const struct mr_pool_job *job,
                      uint64_t *count, struct mr_error *e)
{
    struct mr_multifd_extent x;
    uint64_t per, first, end, a, b;
    uint32_t got;

    memcpy(&x, job->args, sizeof(x));
    per = mr_cksum_extent_pages(x.page_size);
    first = x.extent * per;
    end = first + per < x.num_pages ? first + per : x.num_pages;
    for (uint64_t from = first;
         mr_bitmap_le64_next_run(x.bitmap, end, from, &a, &b); from = b)
        if (mr_channel_read(worker, x.host + a * x.page_size,
                            (b - a) * x.page_size,
                            x.pages_offset + a * x.page_size, count, e))
            return e->code;
    got = mr_cksum_extent(x.host, x.page_size, x.num_pages, x.extent,
                          mr_cksum_present_le64, x.bitmap);
    if (got != x.crc)
        return mr_error_set(e, -EBADMSG, "checksum mismatch in RAM block %s "
                            "extent %" PRIu64 " (file offset 0x%" PRIx64
                            "): expected 0x%08x, computed 0x%08x", x.block,
                            x.extent, x.pages_offset + first * x.page_size,
                            x.crc, got);
    return 0;
}

struct mr_pool_job mr_job_verify_extent(const struct mr_multifd_extent *x)
{
    struct mr_pool_job job = { .run = verify_run };

    memcpy(job.args, x, sizeof(*x));
    return job;
}
