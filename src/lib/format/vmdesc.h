/*
 * The VMDESCRIPTION JSON at the end of a stream, and walking past device
 * (FULL) sections with it.  Device state is not self-delimiting; the JSON
 * records, for every field QEMU wrote, its size (per array element) and
 * the subsections that followed, which is enough to find the section
 * footer without knowing any device model (spec §10).
 */
#ifndef MAPRAM_FORMAT_VMDESC_H
#define MAPRAM_FORMAT_VMDESC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "format/source.h"

/* The JSON is looked for in this much of the file's tail (as QEMU's
 * analyze-migration.py does). */
#define MR_VMDESC_TAIL_BYTES (10ULL << 20)

/*
 * Look for `06` + be32 len + "{...}" ending exactly at the end of the file,
 * within the last MR_VMDESC_TAIL_BYTES bytes and not before min_offset.
 * Returns 0 with the JSON's offset and length, or -ENOENT (no error set).
 */
int mr_vmdesc_find(const struct mr_source *src, uint64_t min_offset,
                   uint64_t *json_offset, uint32_t *json_len,
                   struct mr_error *err);

/* Read and parse the JSON; it must be an object. */
int mr_vmdesc_parse(const struct mr_source *src, uint64_t json_offset,
                    uint32_t json_len, json_t **out, struct mr_error *err);

/* The "devices" entry for (idstr, instance), searching from *next on;
 * advances *next past it.  NULL if there is none. */
json_t *mr_vmdesc_device(json_t *vmdesc, size_t *next, const char *idstr,
                         uint32_t instance_id);

/* Skip one device's state (fields, then subsections) at the cursor. */
int mr_vmdesc_skip_state(struct mr_cursor *c, json_t *desc);

#endif
