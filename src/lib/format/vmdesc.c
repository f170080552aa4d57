/*
 * VMDESCRIPTION JSON: finding it, scanning it, parsing one device entry
 * at a time and using its field sizes to walk past device sections
 * (vmdesc.h).  Every number taken from the JSON is checked before use.
 */
#include <ctype.h>
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

/* ---- a JSON syntax scanner: extents and counts, no tree ---- */

#define JSON_MAX_DEPTH 4096     /* deeper than jansson's 2048 */

struct scan {
    const char *t;
    size_t len, pos;
    size_t values;              /* values seen */
    const char *why;            /* the first syntax error */
};

static bool scan_fail(struct scan *s, const char *why)
{
    if (!s->why)
        s->why = why;
    return false;
}

static void scan_ws(struct scan *s)
{
    while (s->pos < s->len && (s->t[s->pos] == ' ' || s->t[s->pos] == '\t' ||
                               s->t[s->pos] == '\n' || s->t[s->pos] == '\r'))
        s->pos++;
}

static bool scan_peek(struct scan *s, char ch)
{
    scan_ws(s);
    return s->pos < s->len && s->t[s->pos] == ch;
}

static bool scan_take(struct scan *s, char ch)
{
    if (!scan_peek(s, ch))
        return false;
    s->pos++;
    return true;
}

static bool scan_digits(struct scan *s)
{
    size_t from = s->pos;

    while (s->pos < s->len && s->t[s->pos] >= '0' && s->t[s->pos] <= '9')
        s->pos++;
    return s->pos > from || scan_fail(s, "invalid number");
}

static bool scan_number(struct scan *s)
{
    if (s->t[s->pos] == '-')
        s->pos++;
    if (s->pos < s->len && s->t[s->pos] == '0')
        s->pos++;
    else if (s->pos >= s->len || s->t[s->pos] < '1' || s->t[s->pos] > '9')
        return scan_fail(s, "invalid token");
    else
        scan_digits(s);
    if (s->pos < s->len && s->t[s->pos] == '.') {
        s->pos++;
        if (!scan_digits(s))
            return false;
    }
    if (s->pos < s->len && (s->t[s->pos] == 'e' || s->t[s->pos] == 'E')) {
        s->pos++;
        if (s->pos < s->len && (s->t[s->pos] == '+' || s->t[s->pos] == '-'))
            s->pos++;
        return scan_digits(s);
    }
    return true;
}

static bool scan_escape(struct scan *s)
{
    char ch;

    if (s->pos >= s->len)
        return scan_fail(s, "unterminated string");
    ch = s->t[s->pos++];
    if (ch != 'u')
        return (ch && strchr("\"\\/bfnrt", ch)) ||
               scan_fail(s, "invalid escape");
    for (int i = 0; i < 4; i++, s->pos++) {
        if (s->pos >= s->len || !isxdigit((unsigned char)s->t[s->pos]))
            return scan_fail(s, "invalid \\u escape");
    }
    return true;
}

static bool scan_string(struct scan *s)
{
    s->pos++;                   /* the opening quote */
    while (s->pos < s->len) {
        unsigned char ch = (unsigned char)s->t[s->pos++];

        if (ch == '"')
            return true;
        if (ch < 0x20)
            return scan_fail(s, "control character in a string");
        if (ch == '\\' && !scan_escape(s))
            return false;
    }
    return scan_fail(s, "unterminated string");
}

static bool scan_literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);

    if (s->len - s->pos < n || memcmp(s->t + s->pos, word, n))
        return scan_fail(s, "invalid token");
    s->pos += n;
    return true;
}

static bool scan_value(struct scan *s, int depth);

/* After '{': "key": value pairs. */
static bool scan_members(struct scan *s, int depth)
{
    if (scan_take(s, '}'))
        return true;
    do {
        if (!scan_peek(s, '"'))
            return scan_fail(s, "string or '}' expected");
        if (!scan_string(s))
            return false;
        if (!scan_take(s, ':'))
            return scan_fail(s, "':' expected");
        if (!scan_value(s, depth))
            return false;
    } while (scan_take(s, ','));
    return scan_take(s, '}') || scan_fail(s, "',' or '}' expected");
}

static bool scan_elements(struct scan *s, int depth)
{
    if (scan_take(s, ']'))
        return true;
    do {
        if (!scan_value(s, depth))
            return false;
    } while (scan_take(s, ','));
    return scan_take(s, ']') || scan_fail(s, "',' or ']' expected");
}

/* One value at the cursor, skipped and counted. */
static bool scan_value(struct scan *s, int depth)
{
    scan_ws(s);
    if (s->pos >= s->len)
        return scan_fail(s, "unexpected end of input");
    if (depth > JSON_MAX_DEPTH)
        return scan_fail(s, "maximum parsing depth reached");
    s->values++;
    switch (s->t[s->pos]) {
    case '{':
        s->pos++;
        return scan_members(s, depth + 1);
    case '[':
        s->pos++;
        return scan_elements(s, depth + 1);
    case '"':
        return scan_string(s);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        return scan_number(s);
    }
}

/* A scanned key (quotes included) is `name`; escapes are decoded. */
static bool key_is(const char *raw, size_t n, const char *name)
{
    json_t *k;
    bool same;

    if (!memchr(raw, '\\', n))
        return n - 2 == strlen(name) && !memcmp(raw + 1, name, n - 2);
    k = json_loadb(raw, n, JSON_DECODE_ANY, NULL);
    same = k && json_string_value(k) && !strcmp(json_string_value(k), name);
    json_decref(k);
    return same;
}

/* The "devices" value: where its entries start, and how many. */
static bool scan_devices(struct scan *s, struct mr_vmdesc *d)
{
    if (!scan_peek(s, '['))
        return scan_value(s, 1);
    s->pos++;
    d->next = s->pos;
    if (scan_take(s, ']'))
        return true;
    do {
        if (!scan_value(s, 2))
            return false;
        d->nr_devices++;
    } while (scan_take(s, ','));
    return scan_take(s, ']') || scan_fail(s, "',' or ']' expected");
}

/* One "key": value member of the top-level object. */
static bool scan_top_member(struct scan *s, struct mr_vmdesc *d,
                            bool *devices)
{
    size_t k, n;

    if (!scan_peek(s, '"'))
        return scan_fail(s, "string or '}' expected");
    k = s->pos;
    if (!scan_string(s))
        return false;
    n = s->pos - k;
    if (!scan_take(s, ':'))
        return scan_fail(s, "':' expected");
    if (!key_is(s->t + k, n, "devices"))
        return scan_value(s, 1);
    if (*devices)
        return scan_fail(s, "duplicate object key");
    *devices = true;
    return scan_devices(s, d);
}

/* The whole text; *object false if it is another (valid) value. */
static bool scan_top(struct scan *s, struct mr_vmdesc *d, bool *object)
{
    bool devices = false;

    *object = scan_peek(s, '{');
    if (!*object && !scan_value(s, 0))
        return false;
    if (*object && (s->pos++, !scan_take(s, '}'))) {
        do {
            if (!scan_top_member(s, d, &devices))
                return false;
        } while (scan_take(s, ','));
        if (!scan_take(s, '}'))
            return scan_fail(s, "',' or '}' expected");
    }
    scan_ws(s);
    return s->pos == s->len || scan_fail(s, "end of file expected");
}

int mr_vmdesc_open(const struct mr_source *src, uint64_t json_offset,
                   uint32_t json_len, struct mr_vmdesc *d,
                   struct mr_error *err)
{
    struct scan s = { 0 };
    bool object;

    memset(d, 0, sizeof(*d));
    /* The length comes from the file: bound it before allocating. */
    if (json_len > MR_VMDESC_TAIL_BYTES)
        return mr_error_set(err, -EFBIG, "VMDESCRIPTION of %u bytes exceeds "
                            "the %llu-byte limit", json_len,
                            (unsigned long long)MR_VMDESC_TAIL_BYTES);
    d->text = malloc(json_len ? json_len : 1);
    if (!d->text)
        return mr_error_set(err, -ENOMEM, "out of memory for %u bytes of "
                            "VMDESCRIPTION", json_len);
    d->len = json_len;
    d->offset = json_offset;
    if (mr_source_read(src, d->text, json_len, json_offset, err) < 0) {
        mr_vmdesc_close(d);
        return err ? err->code : -EIO;
    }
    s.t = d->text;
    s.len = d->len;
    if (!scan_top(&s, d, &object)) {
        mr_vmdesc_close(d);
        return mr_error_set(err, -EINVAL, "expected VMDESCRIPTION JSON at "
                            "offset 0x%" PRIx64 ", found invalid JSON at byte "
                            "%zu: %s", json_offset, s.pos, s.why);
    }
    if (!object) {
        mr_vmdesc_close(d);
        return mr_error_set(err, -EINVAL, "expected a VMDESCRIPTION JSON "
                            "object at offset 0x%" PRIx64 ", found another "
                            "JSON value", json_offset);
    }
    return 0;
}

void mr_vmdesc_close(struct mr_vmdesc *d)
{
    free(d->text);
    memset(d, 0, sizeof(*d));
}

bool mr_vmdesc_has_key(const struct mr_vmdesc *d, const char *key)
{
    struct scan s = { d->text, d->len, 0, 0, NULL };

    if (!d->text || !scan_take(&s, '{') || scan_peek(&s, '}'))
        return false;
    do {
        size_t k = (scan_ws(&s), s.pos), n;

        if (!scan_peek(&s, '"') || !scan_string(&s))
            return false;
        n = s.pos - k;
        if (!scan_take(&s, ':'))
            return false;
        if (key_is(s.t + k, n, key))
            return true;
        if (!scan_value(&s, 1))
            return false;
    } while (scan_take(&s, ','));
    return false;
}

static bool device_matches(json_t *dev, const char *idstr,
                           uint32_t instance_id)
{
    const char *name = json_string_value(json_object_get(dev, "name"));
    json_t *inst = json_object_get(dev, "instance_id");

    return name && !strcmp(name, idstr) && json_is_integer(inst) &&
           json_integer_value(inst) == (json_int_t)instance_id;
}

/* Parse the entry at [from, s->pos) alone, its values counted first. */
static json_t *parse_entry(const struct mr_vmdesc *d, const struct scan *s,
                           size_t from, struct mr_error *err)
{
    json_error_t jerr;
    json_t *dev;

    if (s->values > MR_VMDESC_DEVICE_MAX_VALUES) {
        mr_error_set(err, -E2BIG, "VMDESCRIPTION device entry at offset 0x%"
                     PRIx64 " holds %zu JSON values, more than the %d one "
                     "device may have", d->offset + from, s->values,
                     MR_VMDESC_DEVICE_MAX_VALUES);
        return NULL;
    }
    dev = json_loadb(s->t + from, s->pos - from, JSON_REJECT_DUPLICATES |
                     JSON_DECODE_ANY, &jerr);
    if (!dev)
        mr_error_set(err, -EINVAL, "expected VMDESCRIPTION JSON at offset "
                     "0x%" PRIx64 ", found invalid JSON at byte %zu: %s",
                     d->offset, from + (size_t)jerr.position, jerr.text);
    return dev;
}

json_t *mr_vmdesc_next_device(struct mr_vmdesc *d, const char *idstr,
                              uint32_t instance_id, struct mr_error *err)
{
    struct scan s = { d->text, d->len, d->next, 0, NULL };

    if (!d->text || !d->next)
        return NULL;
    while (!scan_peek(&s, ']') && s.pos < s.len) {
        size_t from = s.pos;
        json_t *dev;

        s.values = 0;
        if (!scan_value(&s, 2))
            return NULL;        /* checked by mr_vmdesc_open */
        dev = parse_entry(d, &s, from, err);
        if (!dev)
            return NULL;
        scan_take(&s, ',');
        if (device_matches(dev, idstr, instance_id)) {
            d->next = s.pos;
            return dev;
        }
        json_decref(dev);
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
