/*
 * Launch metadata codec (include/mapram/format.h, docs/file-header.md,
 * "Launch metadata"): an ordered list of text key/value pairs that says
 * how the saved VM was started.  Plain data, no I/O; the parser trusts
 * no length it reads.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/mapram_header.h"
#include "mapram/crc32c.h"

#define LAUNCH_FIXED    16      /* magic, version, count */
#define ENTRY_FIXED     6       /* u16 key length, u32 value length */

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

void mr_launch_meta_init(struct mr_launch_meta *m)
{
    memset(m, 0, sizeof(*m));
}

void mr_launch_meta_free(struct mr_launch_meta *m)
{
    for (size_t i = 0; i < m->count; i++) {
        free(m->entries[i].key);
        free(m->entries[i].value);
    }
    free(m->entries);
    mr_launch_meta_init(m);
}

static bool key_ok(const char *k, size_t len)
{
    if (len == 0 || len > MR_LAUNCH_KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = k[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static int add_n(struct mr_launch_meta *m, const char *key, size_t klen,
                 const char *value, size_t vlen, struct mr_error *err)
{
    struct mr_launch_entry *grown;
    char *k, *v;

    if (m->count >= MR_LAUNCH_ENTRIES_MAX)
        return mr_error_set(err, -E2BIG, "launch metadata: more than %u "
                            "entries", MR_LAUNCH_ENTRIES_MAX);
    if (m->count == m->capacity) {
        size_t cap = m->capacity ? m->capacity * 2 : 16;

        grown = realloc(m->entries, cap * sizeof(*grown));
        if (!grown)
            return mr_error_set(err, -ENOMEM, "out of memory");
        m->entries = grown;
        m->capacity = cap;
    }
    k = strndup(key, klen);
    v = strndup(value, vlen);
    if (!k || !v) {
        free(k);
        free(v);
        return mr_error_set(err, -ENOMEM, "out of memory");
    }
    m->entries[m->count].key = k;
    m->entries[m->count].value = v;
    m->count++;
    return 0;
}

int mr_launch_meta_add(struct mr_launch_meta *m, const char *key,
                       const char *value, struct mr_error *err)
{
    if (!key_ok(key, strlen(key)))
        return mr_error_set(err, -EINVAL, "launch metadata: bad key '%s'",
                            key);
    if (strlen(value) > MR_LAUNCH_BYTES_MAX)
        return mr_error_set(err, -E2BIG, "launch metadata: value of '%s' "
                            "too long", key);
    return add_n(m, key, strlen(key), value, strlen(value), err);
}

const char *mr_launch_meta_get(const struct mr_launch_meta *m,
                               const char *key)
{
    for (size_t i = 0; i < m->count; i++)
        if (!strcmp(m->entries[i].key, key))
            return m->entries[i].value;
    return NULL;
}

size_t mr_launch_meta_encoded_size(const struct mr_launch_meta *m)
{
    size_t n = LAUNCH_FIXED;

    for (size_t i = 0; i < m->count; i++)
        n += ENTRY_FIXED + strlen(m->entries[i].key) +
             strlen(m->entries[i].value);
    return n;
}

int mr_launch_meta_encode(const struct mr_launch_meta *m, uint8_t *out,
                          size_t out_bytes, struct mr_error *err)
{
    size_t need = mr_launch_meta_encoded_size(m), pos = LAUNCH_FIXED;

    if (need > MR_LAUNCH_BYTES_MAX || need > out_bytes)
        return mr_error_set(err, -E2BIG, "launch metadata: %zu bytes do not "
                            "fit in %zu", need, out_bytes);
    memcpy(out, MR_LAUNCH_MAGIC, 8);
    put_le32(out + 8, MR_LAUNCH_VERSION);
    put_le32(out + 12, (uint32_t)m->count);
    for (size_t i = 0; i < m->count; i++) {
        size_t kl = strlen(m->entries[i].key);
        size_t vl = strlen(m->entries[i].value);

        put_le16(out + pos, (uint16_t)kl);
        put_le32(out + pos + 2, (uint32_t)vl);
        memcpy(out + pos + ENTRY_FIXED, m->entries[i].key, kl);
        memcpy(out + pos + ENTRY_FIXED + kl, m->entries[i].value, vl);
        pos += ENTRY_FIXED + kl + vl;
    }
    return (int)need;
}

/* One entry at `*pos`; advances it. */
static int parse_entry(const uint8_t *buf, size_t len, size_t *pos,
                       struct mr_launch_meta *m, struct mr_error *err)
{
    size_t at = *pos, kl, vl;

    if (len - at < ENTRY_FIXED)
        return mr_error_set(err, -EINVAL, "launch metadata: entry at 0x%zx "
                            "cut short", at);
    kl = (size_t)buf[at] | (size_t)buf[at + 1] << 8;
    vl = get_le32(buf + at + 2);
    at += ENTRY_FIXED;
    if (kl > len - at || vl > len - at - kl)
        return mr_error_set(err, -EINVAL, "launch metadata: entry at 0x%zx "
                            "runs past the end", *pos);
    if (!key_ok((const char *)buf + at, kl))
        return mr_error_set(err, -EINVAL, "launch metadata: bad key at "
                            "0x%zx", at);
    if (memchr(buf + at + kl, 0, vl))
        return mr_error_set(err, -EINVAL, "launch metadata: NUL in the "
                            "value at 0x%zx", at + kl);
    *pos = at + kl + vl;
    return add_n(m, (const char *)buf + at, kl, (const char *)buf + at + kl,
                 vl, err);
}

int mr_launch_meta_parse(const uint8_t *buf, size_t len,
                         struct mr_launch_meta *m, struct mr_error *err)
{
    size_t pos = LAUNCH_FIXED;
    uint32_t version, count;

    mr_launch_meta_init(m);
    if (len < LAUNCH_FIXED || memcmp(buf, MR_LAUNCH_MAGIC, 8))
        return mr_error_set(err, -EINVAL, "expected launch metadata magic "
                            "\"%s\", found something else", MR_LAUNCH_MAGIC);
    if (len > MR_LAUNCH_BYTES_MAX)
        return mr_error_set(err, -E2BIG, "launch metadata of %zu bytes, "
                            "at most %u", len, MR_LAUNCH_BYTES_MAX);
    version = get_le32(buf + 8);
    count = get_le32(buf + 12);
    if (version == 0 || version > MR_LAUNCH_VERSION)
        return mr_error_set(err, -ENOTSUP, "expected launch metadata version "
                            "%u, found %u", MR_LAUNCH_VERSION, version);
    if (count > MR_LAUNCH_ENTRIES_MAX)
        return mr_error_set(err, -EINVAL, "launch metadata: %u entries, at "
                            "most %u", count, MR_LAUNCH_ENTRIES_MAX);
    for (uint32_t i = 0; i < count; i++) {
        if (parse_entry(buf, len, &pos, m, err) < 0) {
            mr_launch_meta_free(m);
            return err ? err->code : -EINVAL;
        }
    }
    if (pos != len) {
        mr_launch_meta_free(m);
        return mr_error_set(err, -EINVAL, "launch metadata: %zu bytes after "
                            "the last entry", len - pos);
    }
    return 0;
}

int mr_file_header_check_launch(const struct mr_file_header *h,
                                const uint8_t *buf, size_t len,
                                struct mr_error *err)
{
    uint32_t crc;

    if (len != h->launch_len)
        return mr_error_set(err, -EIO, "launch metadata: read %zu bytes, the "
                            "header says %u", len, h->launch_len);
    crc = mr_crc32c(0, buf, len);
    if (crc != h->launch_crc)
        return mr_error_set(err, -EIO, "expected launch metadata CRC32C "
                            "0x%08x (header offset 0xc8), found 0x%08x", crc,
                            h->launch_crc);
    return 0;
}
