/*
 * A whole-file walk through a `struct mr_source`: locate the stream,
 * decode it item by item (stream_parse.h) and model it for `inspect`,
 * `extract`, `verify` and the fuzzer, in memory bounded by constants, not
 * by the stream's length (summaries past a listed head: docs/inspect.md).
 */
#ifndef MAPRAM_FORMAT_STREAM_WALK_H
#define MAPRAM_FORMAT_STREAM_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "format/cksum.h"
#include "format/layout.h"
#include "format/locate.h"
#include "format/stream_parse.h"
#include "format/vmdesc.h"

#define MR_WALK_MAX_BLOCKS      256
#define MR_WALK_MAX_PROBLEMS    16
#define MR_WALK_MAX_LIVE        64      /* START sections (live handlers) */
#define MR_WALK_MAX_SECTIONS    1024    /* listed one by one; then counted */
#define MR_WALK_MAX_COMMANDS    64      /* listed one by one; all counted */
/* Legacy streams: all blocks' final-state maps together (512 GiB of RAM);
 * blocks past it get counts without pages_present. */
#define MR_WALK_LEGACY_MAP_BYTES (16ULL << 20)

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
    uint8_t *final_map;         /* bit set: the page's last record is PAGE;
                                 * NULL: not tracked (past the budget) */
    bool present_known;         /* pages_present/absent are exact (always
                                 * for mapped-ram) */
};

/* Sections past the listed ones: counts per type byte and bytes. */
struct mr_walk_unlisted {
    uint64_t count;
    uint64_t by_type[QEMU_VM_SECTION_FULL + 1];
    uint64_t bytes;
};

/* A second walk can watch every legacy record go by, in stream order:
 * data_offset 0 is a ZERO record.  A non-zero return stops the walk. */
struct mr_walk_visitor {
    int (*page)(void *opaque, size_t block, uint64_t page,
                uint64_t data_offset, struct mr_error *err);
    void *opaque;
};

struct mr_walk {
    struct mr_location loc;
    uint64_t file_size;
    uint32_t stream_version;
    bool have_config;
    struct mr_stream_config config;
    bool mapped_ram;

    struct mr_walk_section *sections;   /* the first MR_WALK_MAX_SECTIONS */
    size_t nr_sections, cap_sections;
    struct mr_walk_unlisted unlisted;   /* the sections after them */
    struct mr_walk_section live[MR_WALK_MAX_LIVE];  /* every START */
    size_t nr_live;
    struct mr_walk_command *commands;   /* the first MR_WALK_MAX_COMMANDS */
    size_t nr_commands, cap_commands;
    uint64_t command_counts[MIG_CMD_MAX];       /* all, per number */
    uint64_t legacy_map_bytes;          /* sum of the final_map sizes */
    const struct mr_walk_visitor *visitor;

    bool have_ram;
    uint32_t ram_section_id;
    uint64_t ram_total_bytes;
    struct mr_walk_block *blocks;
    size_t nr_blocks;
    struct mr_layout layout;    /* mapped-ram: the blocks' layout checked */

    bool ram_complete;          /* the END section of 'ram' was read: all
                                 * RAM data (and bitmaps) are final */
    bool eof_seen;
    uint64_t eof_offset;
    bool vmdesc_present;
    uint64_t vmdesc_offset;     /* of the JSON text */
    uint32_t vmdesc_len;
    struct mr_vmdesc vmdesc;    /* its text, once read (vmdesc.h) */
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
