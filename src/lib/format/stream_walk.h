/*
 * A whole-file walk: locate the stream, decode it item by item
 * (stream_parse.h) and build a model of everything in it, for `inspect`,
 * `extract` and the fuzzer.  The walk reads through a `struct mr_source`
 * only; it allocates in proportion to what the file really contains
 * (sections, blocks, legacy page records), never to lengths it claims.
 *
 * On error the model keeps what was read before the problem, so a broken
 * or incomplete file can still be shown.
 */
#ifndef MAPRAM_FORMAT_STREAM_WALK_H
#define MAPRAM_FORMAT_STREAM_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "format/cksum.h"
#include "format/locate.h"
#include "format/stream_parse.h"

#define MR_WALK_MAX_BLOCKS      256
#define MR_WALK_MAX_PROBLEMS    16
#define MR_WALK_MAX_LIVE        64      /* START sections (live handlers) */

struct mr_walk_section {
    uint8_t type;               /* QEMU_VM_SECTION_* */
    uint32_t section_id;
    char idstr[MR_STREAM_NAME_MAX];     /* PART/END: from their START */
    uint32_t instance_id;
    uint32_t version_id;
    uint64_t start;             /* type byte */
    uint64_t end;               /* just after the footer */
};

struct mr_walk_command {
    uint64_t offset;
    uint16_t cmd;
    uint16_t len;
};

struct mr_walk_block {
    struct mr_ram_block_entry entry;    /* name, length, mapped-ram header */
    uint64_t num_pages;
    uint64_t bitmap_size;       /* mapped-ram: bytes of bitmap */
    uint64_t pages_present;     /* mapped-ram: bits set; legacy: last
                                 * record of the page is PAGE */
    uint64_t pages_absent;
    uint64_t bits_beyond;       /* mapped-ram: set bits past num_pages */
    int64_t allocated_bytes;    /* of the pages region; -1 = not measured */
    /* legacy streams */
    uint64_t page_records;
    uint64_t zero_records;
    size_t rec_first;           /* final per-page records in walk.records */
    size_t rec_count;
};

/* A legacy page's final state: data at data_offset, or a zero page. */
struct mr_walk_page_rec {
    uint64_t page;              /* page index in the block */
    uint64_t data_offset;       /* 0 = ZERO record */
    uint32_t block;
    uint32_t seq;               /* record order, for last-write-wins */
};

struct mr_walk {
    struct mr_location loc;
    uint64_t file_size;
    uint32_t stream_version;
    bool have_config;
    struct mr_stream_config config;
    bool mapped_ram;

    struct mr_walk_section *sections;
    size_t nr_sections, cap_sections;
    size_t live_sections[MR_WALK_MAX_LIVE];     /* indexes of STARTs */
    size_t nr_live;
    struct mr_walk_command *commands;
    size_t nr_commands, cap_commands;

    bool have_ram;
    uint32_t ram_section_id;
    uint64_t ram_total_bytes;
    struct mr_walk_block *blocks;
    size_t nr_blocks;
    struct mr_walk_page_rec *records;
    size_t nr_records, cap_records;

    bool ram_complete;          /* the END section of 'ram' was read: all
                                 * RAM data (and bitmaps) are final */
    bool eof_seen;
    uint64_t eof_offset;
    bool vmdesc_present;
    uint64_t vmdesc_offset;     /* of the JSON text */
    uint32_t vmdesc_len;
    json_t *vmdesc;             /* parsed JSON (owned), or NULL */
    size_t vmdesc_next_device;  /* next "devices" entry to match */
    uint64_t stream_end;        /* after the last byte read */
    bool have_cksum;            /* mapram's checksum trailer (cksum.h) */
    struct mr_cksum cksum;
    uint64_t cksum_offset;      /* where the trailer starts */
    bool complete;              /* walked all the way to the end */

    char problems[MR_WALK_MAX_PROBLEMS][MR_ERROR_MSG_MAX];
    size_t nr_problems;         /* non-fatal findings */
};

/*
 * Walk the file behind `src`.  explicit_offset < 0 locates the stream
 * (locate.h).  Returns 0 or a negative code with one message in `err`;
 * either way `w` holds what was read and must be released with
 * mr_walk_free().
 */
int mr_walk_file(const struct mr_source *src, int64_t explicit_offset,
                 struct mr_walk *w, struct mr_error *err);

void mr_walk_free(struct mr_walk *w);

/* Index of the block named `idstr`, or -1. */
int mr_walk_find_block(const struct mr_walk *w, const char *idstr);

/* Measure physically allocated bytes of each mapped-ram pages region with
 * SEEK_DATA/SEEK_HOLE (file systems without it leave -1). */
void mr_walk_measure_allocation(struct mr_walk *w, int fd);

#endif
