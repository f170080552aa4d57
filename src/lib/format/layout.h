/*
 * The mapped-ram layout rules, in one place for the offline verifier (by
 * way of the walk) and the loader: where a block's bitmap and pages may
 * lie in the file, against its own header and every block before it.
 */
#ifndef MAPRAM_FORMAT_LAYOUT_H
#define MAPRAM_FORMAT_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "format/stream_parse.h"

/* The blocks accepted so far. */
struct mr_layout {
    struct mr_ram_block_entry *blocks;
    size_t nr, cap;
};

/*
 * Check block `e` of a file of file_size bytes, then remember it:
 * its bitmap and pages lie inside the file, its pages start after its own
 * header and bitmap, and its pages overlap no header, bitmap or pages of
 * a block before it, nor do theirs overlap its header or bitmap.
 * 0, or -EINVAL with expected and found in `err`.
 */
int mr_layout_add(struct mr_layout *l, const struct mr_ram_block_entry *e,
                  uint64_t file_size, struct mr_error *err);

void mr_layout_free(struct mr_layout *l);

#endif
