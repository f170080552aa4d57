/*
 * Fuzz target: a whole save file in memory through the reader -- locate,
 * walk (every section, RAM block, bitmap, legacy record, device section via
 * the VMDESCRIPTION) and the extraction of every block -- checking that
 * extraction never writes outside a block.  Built as a libFuzzer binary
 * with -Dfuzz=true, and replayed over the corpus in every build.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "image/extract.h"
#include "image/stream_walk.h"
#include "fuzz.h"

struct bounds_sink {
    uint64_t used_length;
    uint64_t written;
};

static int check_write(void *opaque, const void *buf, size_t len, uint64_t off,
                       struct mr_error *err)
{
    struct bounds_sink *s = opaque;

    (void)buf;
    (void)err;
    /* An invariant, not input validation: the walk must have bounded it. */
    if (off > s->used_length || len > s->used_length - off)
        abort();
    s->written += len;
    return 0;
}

/* Mapped-ram writes each present page once; legacy writes every PAGE
 * record of a page that ends present (a later one overwrites). */
static bool written_ok(const struct mr_walk *w, const struct mr_walk_block *b,
                       uint64_t written)
{
    uint64_t present = b->pages_present * MR_TARGET_PAGE_SIZE;

    if (w->mapped_ram)
        return written == present;
    if (!b->present_known)
        return written <= (b->page_records + b->zero_records) *
                          MR_TARGET_PAGE_SIZE;
    return written >= present &&
           written <= b->page_records * MR_TARGET_PAGE_SIZE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mr_source src;
    struct mr_walk w;
    struct mr_error err = MR_ERROR_INIT;

    mr_source_init_mem(&src, data, size);
    if (mr_walk_file(&src, -1, &w, &err) == 0) {
        for (size_t i = 0; i < w.nr_blocks; i++) {
            struct bounds_sink bs = { w.blocks[i].entry.used_length, 0 };
            struct mr_sink sink = { check_write, &bs };
            struct mr_error xerr = MR_ERROR_INIT;

            if (mr_extract_block(&src, &w, i, &sink, &xerr) == 0 &&
                !written_ok(&w, &w.blocks[i], bs.written))
                abort();
        }
    }
    mr_walk_free(&w);
    return 0;
}
