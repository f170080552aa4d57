/*
 * The working-set sidecar (docs/lazy-load.md, "Working set"): FILE.wset
 * beside a save file records, in order, the granules a lazy restore of
 * FILE had to fetch on demand, so the next lazy restore can fetch them
 * first.  It is a hint only: never a source of data.  This is the pure
 * codec (fuzzed: tests/fuzz/fuzz_wset.c).
 *
 * Little-endian:
 *   "MRWSET01" | u32 version (1) | u32 nblocks | u64 granule |
 *   u64 file_size | u64 file_mtime_ns | u64 nentries |
 *   nblocks x { u16 name_len | name | u64 used_length } |
 *   nentries x { u32 block | u32 granule index in the block } |
 *   u32 CRC32C of every byte before it
 */
#ifndef MAPRAM_FORMAT_WSET_H
#define MAPRAM_FORMAT_WSET_H

#include <stddef.h>
#include <stdint.h>

#include "mapram/error.h"

#define MR_WSET_MAGIC "MRWSET01"
#define MR_WSET_VERSION 1
#define MR_WSET_MAX_BLOCKS 1024
#define MR_WSET_NAME_MAX 255
#define MR_WSET_MAX_ENTRIES (16ULL << 20)

struct mr_wset_block {
    char name[MR_WSET_NAME_MAX + 1];
    uint64_t used_length;
};

struct mr_wset_entry {
    uint32_t block, index;
};

struct mr_wset {
    uint64_t granule, file_size, file_mtime_ns;
    uint32_t nblocks;
    struct mr_wset_block *blocks;
    uint64_t n;
    struct mr_wset_entry *e;
};

/* Decode and check a sidecar's bytes (magic, version, bounds, CRC, every
 * entry's block and index in range).  0, or -EINVAL with err set. */
int mr_wset_decode(const uint8_t *buf, size_t len, struct mr_wset *w,
                   struct mr_error *err);
/* Encode w into a malloc'd buffer; 0 or -ENOMEM/-EINVAL. */
int mr_wset_encode(const struct mr_wset *w, uint8_t **out, size_t *len);
void mr_wset_free(struct mr_wset *w);

#endif
