/*
 * The mapped-ram layout rules (layout.h).  Every comparison is on ranges
 * [start, start + len) already bounded by the file's size.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "format/layout.h"
#include "format/mapped_ram.h"

struct range {
    const char *what;
    uint64_t start, len;
};

static bool overlap(const struct range *a, const struct range *b)
{
    return a->len && b->len && a->start < b->start + b->len &&
           b->start < a->start + a->len;
}

static struct range pages_of(const struct mr_ram_block_entry *e)
{
    return (struct range){ "pages", e->pages_offset, e->used_length };
}

static struct range bitmap_of(const struct mr_ram_block_entry *e)
{
    return (struct range){ "bitmap", e->bitmap_offset,
        mr_mapped_ram_bitmap_size(e->used_length / e->page_size) };
}

/* The counted name, length and 28-byte header. */
static struct range header_of(const struct mr_ram_block_entry *e)
{
    return (struct range){ "header", e->offset,
        e->header_offset + MAPPED_RAM_HDR_SIZE - e->offset };
}

static int overlapping(const struct mr_ram_block_entry *b,
                       const struct range *p,
                       const struct mr_ram_block_entry *o,
                       const struct range *r, struct mr_error *err)
{
    return mr_error_set(err, -EINVAL, "expected page regions that do not "
                        "overlap at offset 0x%" PRIx64 ", found pages of '%s' "
                        "[0x%" PRIx64 ", 0x%" PRIx64 ") overlapping the %s of "
                        "'%s' [0x%" PRIx64 ", 0x%" PRIx64 ")",
                        b->header_offset + 20, b->idstr, p->start,
                        p->start + p->len, r->what, o->idstr, r->start,
                        r->start + r->len);
}

/* The pages of b against the header, bitmap and (another's) pages of o. */
static int pages_against(const struct mr_ram_block_entry *b,
                         const struct mr_ram_block_entry *o,
                         struct mr_error *err)
{
    struct range p = pages_of(b);
    struct range r[3] = { pages_of(o), bitmap_of(o), header_of(o) };

    for (int i = b == o ? 1 : 0; i < 3; i++) {
        if (overlap(&p, &r[i]))
            return overlapping(b, &p, o, &r[i], err);
    }
    return 0;
}

static int inside_file(const struct mr_ram_block_entry *e, uint64_t size,
                       struct mr_error *err)
{
    struct range r[2] = { bitmap_of(e), pages_of(e) };

    for (int i = 0; i < 2; i++) {
        if (r[i].start > size || r[i].len > size - r[i].start)
            return mr_error_set(err, -EINVAL, "RAM block %s: %s of 0x%"
                                PRIx64 " bytes at 0x%" PRIx64 " lies beyond "
                                "the end of the file (0x%" PRIx64 ")",
                                e->idstr, r[i].what, r[i].len, r[i].start,
                                size);
    }
    return 0;
}

/* Pages come after the block's own header and bitmap (QEMU's order). */
static int pages_after_own(const struct mr_ram_block_entry *e,
                           struct mr_error *err)
{
    struct range b = bitmap_of(e), h = header_of(e);
    uint64_t end = b.start + b.len > h.start + h.len ? b.start + b.len
                                                     : h.start + h.len;

    if (e->pages_offset >= end)
        return 0;
    return mr_error_set(err, -EINVAL, "expected the pages of '%s' after its "
                        "header and bitmap (at or after 0x%" PRIx64 ") at "
                        "offset 0x%" PRIx64 ", found 0x%" PRIx64, e->idstr,
                        end, e->header_offset + 20, e->pages_offset);
}

static int check(const struct mr_layout *l, const struct mr_ram_block_entry *e,
                 uint64_t file_size, struct mr_error *err)
{
    int rc = inside_file(e, file_size, err);

    for (size_t j = 0; !rc && j < l->nr; j++) {
        rc = pages_against(e, &l->blocks[j], err);
        if (!rc)
            rc = pages_against(&l->blocks[j], e, err);
    }
    if (!rc)
        rc = pages_against(e, e, err);
    return rc ? rc : pages_after_own(e, err);
}

int mr_layout_add(struct mr_layout *l, const struct mr_ram_block_entry *e,
                  uint64_t file_size, struct mr_error *err)
{
    int rc;

    if (e->page_size == 0)
        return mr_error_set(err, -EINVAL, "RAM block %s: page size 0",
                            e->idstr);
    if ((rc = check(l, e, file_size, err)))
        return rc;
    if (l->nr == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 8;
        struct mr_ram_block_entry *n = realloc(l->blocks,
                                               ncap * sizeof(*n));

        if (!n)
            return mr_error_set(err, -ENOMEM, "out of memory");
        l->blocks = n;
        l->cap = ncap;
    }
    l->blocks[l->nr++] = *e;
    return 0;
}

void mr_layout_free(struct mr_layout *l)
{
    free(l->blocks);
    memset(l, 0, sizeof(*l));
}
