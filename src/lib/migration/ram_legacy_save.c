/*
 * Legacy RAM, save side (docs/stream-format.md, "RAM section"): every dirty page is a
 * PAGE or ZERO record in the main stream itself; no channels, no file
 * bitmaps, no stream CRC.
 */
#include "migration/ram_format.h"
#include "migration/save_job.h"
#include "multifd/zero.h"

static int legacy_nothing(struct save_job *j)
{
    (void)j;
    return 0;
}

static void legacy_release(struct save_job *j)
{
    (void)j;
}

static int legacy_send(struct save_job *j, size_t b, uint64_t first,
                       uint64_t n)
{
    struct mr_ram_block *rb = save_blk(j, b);
    bool test = j->params.zero_page_detection != MR_ZPD_NONE;

    for (uint64_t page = first; page < first + n; page++) {
        const uint8_t *p = rb->host + page * rb->page_size;
        const char *name = j->last_block == rb->name ? NULL : rb->name;

        j->last_block = rb->name;
        if (test && mr_page_is_zero(p, rb->page_size)) {
            mr_sw_ram_zero(&j->w, name, page * rb->page_size);
            j->thread_zero++;
            continue;
        }
        mr_sw_ram_page(&j->w, name, page * rb->page_size, p, rb->page_size);
        j->legacy_normal++;
    }
    return 0;
}

static int legacy_stream_crc(struct save_job *j, uint64_t end)
{
    (void)j;
    (void)end;
    return 0;
}

const struct mig_ram_save_ops mig_ram_save_legacy = {
    .name = "legacy",
    .wire_mapped = false,
    .nchannels = mig_ram_no_channels,
    .alloc = legacy_nothing,
    .sink = mig_ram_plain_sink,
    .start = legacy_nothing,
    .send = legacy_send,
    .pass_done = legacy_nothing,
    .finish = legacy_nothing,
    .stream_crc = legacy_stream_crc,
    .release = legacy_release,
    .free = legacy_release,
};
