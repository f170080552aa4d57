/*
 * File names for `mapram extract --all`: one per RAM block, never two
 * alike, each a single path component of at most NAME_MAX bytes.  Rules
 * and examples in docs/inspect.md ("extract").
 */
#ifndef MAPRAM_CLI_BLOCK_NAMES_H
#define MAPRAM_CLI_BLOCK_NAMES_H

#include <limits.h>
#include <stddef.h>

#include "mapram/error.h"

enum block_name_kind {
    BLOCK_NAME_PLAIN,          /* mr_extract_file_name() as it is */
    BLOCK_NAME_SUFFIXED,       /* another block maps to the same name */
    BLOCK_NAME_SHORTENED,      /* too long for NAME_MAX */
};

struct block_file_name {
    char file[NAME_MAX + 1];
    enum block_name_kind kind;
};

/* Names for blocks ids[0..n): out[i] for ids[i].  A block whose name
 * needs no change keeps it; others get "~XXXXXXXX" (a hash of the block
 * name) when they would collide or are too long, then "-K" until unique. */
int block_file_names(const char *const *ids, size_t n,
                     struct block_file_name *out, struct mr_error *err);

#endif
