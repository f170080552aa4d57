/*
 * VMDESCRIPTION JSON: finding it, parsing it, and using its field sizes to
 * walk past device sections (vmdesc.h).  Every number taken from the JSON
 * is checked before use: it is as untrusted as the rest of the file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "format/stream_defs.h"
#include "format/stream_parse.h"
#include "format/vmdesc.h"

#define VMDESC_MAX_DEPTH 16

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

int mr_vmdesc_find(const struct mr_source *src, uint64_t min_offset,
                   uint64_t *json_offset, uint32_t *json_len,
                   struct mr_error *err)
{
    uint64_t start, tail_len;
    uint8_t *tail;
    int ret = -ENOENT;

    if (min_offset >= src->size)
        return -ENOENT;
    tail_len = src->size - min_offset;
    if (tail_len > MR_VMDESC_TAIL_BYTES)
        tail_len = MR_VMDESC_TAIL_BYTES;
    start = src->size - tail_len;
    tail = malloc(tail_len ? tail_len : 1);
    if (!tail)
        return mr_error_set(err, -ENOMEM, "out of memory reading the tail");
    if (mr_source_read(src, tail, tail_len, start, err) < 0) {
        free(tail);
        return err->code;
    }
    /* The record is the last one in the file: scan backwards for the
     * first position where type, length and '{' agree with the end. */
    for (uint64_t p = tail_len >= 6 ? tail_len - 6 : 0; tail_len >= 6; p--) {
        if (tail[p] == QEMU_VM_VMDESCRIPTION && tail[p + 5] == '{' &&
            be32_at(tail + p + 1) == tail_len - p - 5) {
            *json_offset = start + p + 5;
            *json_len = (uint32_t)(tail_len - p - 5);
            ret = 0;
            break;
        }
        if (p == 0)
            break;
    }
    free(tail);
    return ret;
}

int mr_vmdesc_parse(const struct mr_source *src, uint64_t json_offset,
                    uint32_t json_len, json_t **out, struct mr_error *err)
{
    json_error_t jerr;
    char *text;
    json_t *root;

    *out = NULL;
    /* The length comes from the file: bound it before allocating. */
    if (json_len > MR_VMDESC_TAIL_BYTES)
        return mr_error_set(err, -EFBIG, "VMDESCRIPTION of %u bytes exceeds "
                            "the %llu-byte limit", json_len,
                            (unsigned long long)MR_VMDESC_TAIL_BYTES);
    text = malloc(json_len ? json_len : 1);
    if (!text)
        return mr_error_set(err, -ENOMEM, "out of memory for %u bytes of "
                            "VMDESCRIPTION", json_len);
    if (mr_source_read(src, text, json_len, json_offset, err) < 0) {
        free(text);
        return err->code;
    }
    root = json_loadb(text, json_len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root)
        return mr_error_set(err, -EINVAL, "expected VMDESCRIPTION JSON at "
                            "offset 0x%" PRIx64 ", found invalid JSON at byte "
                            "%d: %s", json_offset, jerr.position, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return mr_error_set(err, -EINVAL, "expected a VMDESCRIPTION JSON "
                            "object at offset 0x%" PRIx64 ", found another "
                            "JSON value", json_offset);
    }
    *out = root;
    return 0;
}

json_t *mr_vmdesc_device(json_t *vmdesc, size_t *next, const char *idstr,
                         uint32_t instance_id)
{
    json_t *devices = json_object_get(vmdesc, "devices");

    if (!json_is_array(devices))
        return NULL;
    for (size_t i = *next; i < json_array_size(devices); i++) {
        json_t *dev = json_array_get(devices, i);
        const char *name = json_string_value(json_object_get(dev, "name"));
        json_t *inst = json_object_get(dev, "instance_id");

        if (name && !strcmp(name, idstr) && json_is_integer(inst) &&
            json_integer_value(inst) == (json_int_t)instance_id) {
            *next = i + 1;
            return dev;
        }
    }
    return NULL;
}

/* Bytes of one field: size per element times array_len. */
static int field_bytes(struct mr_cursor *c, json_t *field, uint64_t *bytes)
{
    const char *name = json_string_value(json_object_get(field, "name"));
    json_t *size = json_object_get(field, "size");
    json_t *alen = json_object_get(field, "array_len");
    json_int_t n = 1;

    if (!name)
        name = "?";
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return mr_cursor_fail(c, -EINVAL, "VMDESCRIPTION field '%s' has no "
                              "usable size", name);
    if (alen) {
        if (!json_is_integer(alen) || json_integer_value(alen) < 0)
            return mr_cursor_fail(c, -EINVAL, "VMDESCRIPTION field '%s' has "
                                  "a bad array_len", name);
        n = json_integer_value(alen);
    }
    if (__builtin_mul_overflow((uint64_t)json_integer_value(size),
                               (uint64_t)n, bytes))
        return mr_cursor_fail(c, -EINVAL, "VMDESCRIPTION field '%s' is too "
                              "large", name);
    return 0;
}

static int skip_state(struct mr_cursor *c, json_t *desc, int depth);

static int skip_subsection(struct mr_cursor *c, json_t *sub, int depth)
{
    const char *want = json_string_value(json_object_get(sub, "vmsd_name"));
    char name[MR_STREAM_NAME_MAX];
    uint64_t off = c->pos;
    uint8_t type;

    if (!want)
        return mr_cursor_fail(c, -EINVAL, "VMDESCRIPTION subsection without "
                              "a vmsd_name");
    type = mr_cursor_u8(c, "subsection");
    if (mr_cursor_ok(c) && type != QEMU_VM_SUBSECTION)
        return mr_cursor_expected(c, off, "subsection 0x05", "0x%02x for "
                                  "'%s'", type, want);
    if (!mr_cursor_string(c, name, "subsection name"))
        return c->err.code;
    if (strcmp(name, want))
        return mr_cursor_expected(c, off + 1, "the subsection named in the "
                                  "VMDESCRIPTION", "'%s' instead of '%s'",
                                  name, want);
    mr_cursor_be32(c, "subsection version");
    return skip_state(c, sub, depth + 1);
}

static int skip_state(struct mr_cursor *c, json_t *desc, int depth)
{
    json_t *fields = json_object_get(desc, "fields");
    json_t *subs = json_object_get(desc, "subsections");
    size_t i;
    json_t *v;

    if (depth > VMDESC_MAX_DEPTH)
        return mr_cursor_fail(c, -EINVAL, "VMDESCRIPTION nested too deeply");
    if ((fields && !json_is_array(fields)) || (subs && !json_is_array(subs)))
        return mr_cursor_fail(c, -EINVAL, "VMDESCRIPTION fields or "
                              "subsections are not lists");
    json_array_foreach(fields, i, v) {
        uint64_t bytes = 0;

        if (field_bytes(c, v, &bytes) < 0 ||
            !mr_cursor_skip(c, bytes, "device field"))
            return c->err.code;
    }
    json_array_foreach(subs, i, v) {
        if (skip_subsection(c, v, depth) < 0)
            return c->err.code;
    }
    return mr_cursor_ok(c) ? 0 : c->err.code;
}

int mr_vmdesc_skip_state(struct mr_cursor *c, json_t *desc)
{
    return skip_state(c, desc, 0);
}
