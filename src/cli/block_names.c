/*
 * The injective block-name to file-name mapping of extract --all
 * (block_names.h), on top of the per-name rule in format/extract.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block_names.h"
#include "mapram/image.h"

#define EXT ".img"
#define EXT_LEN 4

/* FNV-1a over the raw block name: the same name, the same suffix. */
static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* stem (without ".img") + "~HASH" [+ "-K"] + ".img", within NAME_MAX. */
static void suffixed(const char *stem, const char *id, unsigned k,
                     char out[NAME_MAX + 1])
{
    char sfx[32];
    size_t room, len = strlen(stem) - EXT_LEN;

    if (k)
        snprintf(sfx, sizeof(sfx), "~%08x-%u", name_hash(id), k);
    else
        snprintf(sfx, sizeof(sfx), "~%08x", name_hash(id));
    room = NAME_MAX - strlen(sfx) - EXT_LEN;
    if (len > room)
        len = room;
    snprintf(out, NAME_MAX + 1, "%.*s%s" EXT, (int)len, stem, sfx);
}

static bool taken(const struct block_file_name *out, const bool *done,
                  size_t n, const char *name)
{
    for (size_t j = 0; j < n; j++)
        if (done[j] && !strcmp(out[j].file, name))
            return true;
    return false;
}

static bool shared_base(char (*base)[261], size_t n, size_t i)
{
    for (size_t j = 0; j < n; j++)
        if (j != i && !strcmp(base[j], base[i]))
            return true;
    return false;
}

static bool is_exact(const char *id, const char *base)
{
    size_t len = strlen(id);

    return strlen(base) == len + EXT_LEN && !strncmp(base, id, len);
}

/* Plain name if it fits and no other block wants it, else a suffix. */
static void assign(const char *id, char (*base)[261], size_t n, size_t i,
                   struct block_file_name *out, bool *done)
{
    bool fits = strlen(base[i]) <= NAME_MAX;
    bool plain = fits && (is_exact(id, base[i]) || !shared_base(base, n, i));

    if (plain && !taken(out, done, n, base[i])) {
        snprintf(out[i].file, sizeof(out[i].file), "%s", base[i]);
        out[i].kind = BLOCK_NAME_PLAIN;
    } else {
        /* at most n names are taken, so one of n + 1 tries is free */
        for (unsigned k = 0; k <= n; k++) {
            suffixed(base[i], id, k, out[i].file);
            if (!taken(out, done, n, out[i].file))
                break;
        }
        out[i].kind = fits ? BLOCK_NAME_SUFFIXED : BLOCK_NAME_SHORTENED;
    }
    done[i] = true;
}

int block_file_names(const char *const *ids, size_t n,
                     struct block_file_name *out, struct mr_error *err)
{
    char (*base)[261] = calloc(n ? n : 1, sizeof(*base));
    bool *done = calloc(n ? n : 1, sizeof(*done));

    if (!base || !done) {
        free(base);
        free(done);
        return mr_error_set(err, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        mr_extract_file_name(ids[i], base[i]);
    /* names that need no change first, so none is taken by a derived one */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if (!done[i] && (pass || (is_exact(ids[i], base[i]) &&
                                      strlen(base[i]) <= NAME_MAX)))
                assign(ids[i], base, n, i, out, done);
    free(base);
    free(done);
    return 0;
}
