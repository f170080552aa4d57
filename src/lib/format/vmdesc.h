/*
 * The VMDESCRIPTION JSON at the end of a stream, and walking past device
 * (FULL) sections with it.  Device state is not self-delimiting; the JSON
 * records, for every field QEMU wrote, its size (per array element) and
 * the subsections that followed, which is enough to find the section
 * footer without knowing any device model (docs/stream-format.md, "Reading a file offline").
 */
#ifndef MAPRAM_FORMAT_VMDESC_H
#define MAPRAM_FORMAT_VMDESC_H

#include <stdbool.h>
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

/* A device description parsed alone may hold this many JSON values;
 * the text as a whole is only scanned, never built into a tree. */
#define MR_VMDESC_DEVICE_MAX_VALUES 65536

/* The JSON text (at most MR_VMDESC_TAIL_BYTES), checked for syntax once. */
struct mr_vmdesc {
    char *text;                 /* owned; NULL when not open */
    size_t len;
    uint64_t offset;            /* of the text in the file */
    size_t nr_devices;          /* entries of the top-level "devices" */
    size_t next;                /* text index of the next entry to try */
};

/* Read the JSON and check its syntax without building it; it must be an
 * object.  Memory: the text, nothing per value. */
int mr_vmdesc_open(const struct mr_source *src, uint64_t json_offset,
                   uint32_t json_len, struct mr_vmdesc *d,
                   struct mr_error *err);
void mr_vmdesc_close(struct mr_vmdesc *d);

/* The top-level object has this key. */
bool mr_vmdesc_has_key(const struct mr_vmdesc *d, const char *key);

/* The next "devices" entry for (idstr, instance), parsed on its own (at
 * most MR_VMDESC_DEVICE_MAX_VALUES values), searching on from the last
 * one found; entries passed over are not tried again.  The caller frees
 * it with json_decref.  NULL with `err` unset: there is none. */
json_t *mr_vmdesc_next_device(struct mr_vmdesc *d, const char *idstr,
                              uint32_t instance_id, struct mr_error *err);

/* Skip one device's state (fields, then subsections) at the cursor. */
int mr_vmdesc_skip_state(struct mr_cursor *c, json_t *desc);

#endif
