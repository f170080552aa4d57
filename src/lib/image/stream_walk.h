/*
 * A whole-file walk through a `struct mr_source`: locate the stream,
 * decode it item by item (stream_parse.h) and model it for `inspect`,
 * `extract`, `verify` and the fuzzer, in memory bounded by constants, not
 * by the stream's length (summaries past a listed head: docs/inspect.md).
 */
#ifndef MAPRAM_IMAGE_STREAM_WALK_H
#define MAPRAM_IMAGE_STREAM_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/cksum.h"
#include "format/layout.h"
#include "format/stream_parse.h"
#include "format/vmdesc.h"
#include "image/locate.h"
#include "mapram/image.h"







/* A second walk can watch every legacy record go by, in stream order:
 * data_offset 0 is a ZERO record.  A non-zero return stops the walk. */
struct mr_walk_visitor {
    int (*page)(void *opaque, size_t block, uint64_t page,
                uint64_t data_offset, struct mr_error *err);
    void *opaque;
};

/* What a walk keeps for itself (struct mr_walk's `in`). */
struct mr_walk_internal {
    const struct mr_walk_visitor *visitor;
    struct mr_layout layout;    /* mapped-ram: the blocks' layout checked */
    struct mr_vmdesc vmdesc;    /* its text, once read (vmdesc.h) */
    struct mr_ram_page_ctx pctx; /* the last block named: it carries over
                                  * from one 'ram' section to the next */
};

/*
 * Walk the file behind `src`.  explicit_offset < 0 locates the stream
 * (locate.h).  Returns 0 or a negative code with one message in `err`;
 * either way `w` holds what was read and must be released with
 * mr_walk_free().
 */
int mr_walk_file(const struct mr_source *src, int64_t explicit_offset,
                 struct mr_walk *w, struct mr_error *err);

/* The same walk calling v for every legacy record, without final-state
 * maps; it stops after the END section of 'ram' (extract's second pass). */
int mr_walk_file_visit(const struct mr_source *src, int64_t explicit_offset,
                       const struct mr_walk_visitor *v, struct mr_walk *w,
                       struct mr_error *err);

void mr_walk_free(struct mr_walk *w);

/* Index of the block named `idstr`, or -1. */
int mr_walk_find_block(const struct mr_walk *w, const char *idstr);

/* Measure physically allocated bytes of each mapped-ram pages region with
 * SEEK_DATA/SEEK_HOLE (file systems without it leave -1). */
void mr_walk_measure_allocation(struct mr_walk *w, int fd);

#endif
