/*
 * Decoding QEMU's migration stream one item at a time
 * (docs/stream-format.md).  Each function reads one item at the cursor,
 * validates it with QEMU's own messages where QEMU has one, and leaves the
 * cursor just after it.  Errors go into the cursor's sticky error; every
 * function also returns 0 or the negative error code.  Nothing here
 * allocates: lengths read from the file are bounded first, and names are
 * copied into fixed 256-byte fields (counted strings are at most 255).
 *
 * Used by the offline walker (`inspect`, `extract`) and by the loader.
 */
#ifndef MAPRAM_FORMAT_STREAM_PARSE_H
#define MAPRAM_FORMAT_STREAM_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "format/source.h"
#include "format/stream_defs.h"
#include "mapram/format.h"

#define MR_STREAM_MACHINE_MAX   255     /* longest machine type accepted */
/* Largest RAM block a stream may describe (64 TiB): anything larger is a
 * corrupt length, refused before it reaches any arithmetic or allocation. */
#define MR_RAM_BLOCK_MAX_BYTES  (1ULL << 46)

/* docs/stream-format.md, "Header": magic and version.  Messages: "Not a migration stream", "SaveVM v2
 * format is obsolete and don't work anymore", "Unsupported migration
 * stream version" (each followed by the offset and what was found). */
int mr_stream_read_header(struct mr_cursor *c, uint32_t *version);


/* docs/stream-format.md, "Configuration section": the configuration section (0x07 included) and its subsections.  A
 * following subsection not named "configuration..." is left in place. */
int mr_stream_read_config(struct mr_cursor *c, struct mr_stream_config *cfg);

struct mr_section_header {
    uint64_t offset;            /* absolute offset of the type byte */
    uint8_t type;               /* QEMU_VM_SECTION_{START,PART,END,FULL} */
    uint32_t section_id;
    /* START and FULL only: */
    char idstr[MR_STREAM_NAME_MAX];
    uint32_t instance_id;
    uint32_t version_id;
};

/* Read the type byte of the next item (any of docs/stream-format.md, "Type bytes"). */
int mr_stream_read_type(struct mr_cursor *c, uint8_t *type);

/* The rest of a section header whose type byte was just read at
 * type_offset. */
int mr_stream_read_section_header(struct mr_cursor *c, uint8_t type,
                                  uint64_t type_offset,
                                  struct mr_section_header *hdr);

/* docs/stream-format.md, "Section footer": 0x7e + be32 id.  QEMU's messages "Missing section footer for
 * <idstr>" and "Mismatched section id in footer for <idstr> - read 0x<x>
 * expected 0x<y>". */
int mr_stream_read_footer(struct mr_cursor *c, uint32_t section_id,
                          const char *idstr);

struct mr_stream_command {
    uint64_t offset;            /* of the 0x08 byte */
    uint16_t cmd;
    uint16_t len;
};

/* docs/stream-format.md, "Command records": the rest of a COMMAND record (0x08 already read); its data is
 * skipped.  Unknown command numbers are an error. */
int mr_stream_read_command(struct mr_cursor *c, uint64_t type_offset,
                           struct mr_stream_command *cmd);


/* docs/stream-format.md, "End of stream and VMDESCRIPTION": after the EOF byte, the VMDESCRIPTION record.  `*present` is false
 * if the file ends right after EOF; the JSON is bounded by the file and
 * skipped (its offset and length are returned for the caller to parse). */
int mr_stream_read_vmdesc(struct mr_cursor *c, bool *present,
                          uint64_t *json_offset, uint32_t *json_len);

/* ---- RAM section payload (docs/stream-format.md, "RAM section") ---- */


/*
 * The first record of the START payload: be64 total | MEM_SIZE.  Other
 * flags here are refused (with the mapped-ram "Unexpected RAM flags"
 * message when mapped_ram is on).
 */
int mr_ram_read_mem_size(struct mr_cursor *c, bool mapped_ram,
                         uint64_t *total_bytes);

/*
 * One block entry of the MEM_SIZE list.  With mapped_ram the 28-byte
 * header is read and checked (QEMU's messages for version and alignment),
 * and the cursor is left at pages_offset + used_length, where the next
 * entry starts.  The pages region must lie inside the file.
 */
int mr_ram_read_block_entry(struct mr_cursor *c, bool mapped_ram,
                            bool x_ignore_shared,
                            struct mr_ram_block_entry *blk);

/* One record of a legacy RAM payload (docs/stream-format.md, "Legacy page records"), data skipped. */
struct mr_ram_page_record {
    uint64_t offset;            /* of the be64 */
    uint32_t flags;
    uint64_t addr;              /* block-relative byte offset */
    char idstr[MR_STREAM_NAME_MAX]; /* resolved block (from CONTINUE too) */
    uint64_t data_offset;       /* PAGE: absolute offset of the page bytes */
    uint8_t fill;               /* ZERO: the fill byte */
};

/* Remembers the last named block for CONTINUE records.  Keep one per
 * stream, not per section: QEMU's loader keeps the last block per channel
 * for the whole migration, so a section may begin with a CONTINUE. */
struct mr_ram_page_ctx {
    bool have_block;
    char idstr[MR_STREAM_NAME_MAX];
};

/*
 * Read one legacy RAM record.  Returns 0 with rec->flags holding what was
 * found: EOS ends the payload, MULTIFD_FLUSH is bare, PAGE/ZERO/XBZRLE
 * name a page.  In mapped_ram mode only EOS is allowed ("Unexpected RAM
 * flags: <n>").
 */
int mr_ram_read_page_record(struct mr_cursor *c, bool mapped_ram,
                            uint64_t page_size, struct mr_ram_page_ctx *ctx,
                            struct mr_ram_page_record *rec);

/* Read the 8-byte EOS that ends a RAM payload (PART/END in mapped-ram). */
int mr_ram_read_eos(struct mr_cursor *c);

#endif
