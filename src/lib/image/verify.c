/*
 * `mapram verify` (verify.h): structure first (what every mapped-ram file
 * can be checked for), then data against the checksum trailer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "format/cksum.h"
#include "format/layout.h"
#include "format/mapped_ram.h"
#include "image/verify.h"
#include "mapram/crc32c.h"

#define ULL(x) ((unsigned long long)(x))

/* The layout rules (layout.h) over every block, then no bits set past a
 * block's pages. */
int mr_verify_layout(const struct mr_source *src, const struct mr_walk *w,
                     struct mr_error *err)
{
    struct mr_layout l = { 0 };
    int rc = 0;

    for (size_t i = 0; !rc && i < w->nr_blocks; i++)
        rc = mr_layout_add(&l, &w->blocks[i].entry, src->size, err);
    mr_layout_free(&l);
    for (size_t i = 0; !rc && i < w->nr_blocks; i++) {
        const struct mr_walk_block *b = &w->blocks[i];

        if (b->bits_beyond)
            rc = mr_error_set(err, -EINVAL, "RAM block %s: bitmap has %llu "
                              "bits set beyond its %llu pages", b->entry.idstr,
                              ULL(b->bits_beyond), ULL(b->num_pages));
    }
    return rc;
}

uint8_t *mr_verify_read_bitmap(const struct mr_source *src,
                               const struct mr_walk_block *b,
                               struct mr_error *err)
{
    uint64_t bytes = mr_mapped_ram_bitmap_size(b->num_pages);
    uint8_t *bm = malloc(bytes ? (size_t)bytes : 1);

    if (!bm) {
        mr_error_set(err, -ENOMEM, "out of memory for a bitmap");
        return NULL;
    }
    if (mr_source_read(src, bm, (size_t)bytes, b->entry.bitmap_offset, err)) {
        free(bm);
        return NULL;
    }
    return bm;
}

int mr_verify_extent_crc(const struct mr_source *src,
                         const struct mr_walk_block *b, const uint8_t *bm,
                         uint64_t ext, uint8_t *buf, uint32_t *crc,
                         uint64_t *data_bytes, struct mr_error *err)
{
    uint64_t ps = b->entry.page_size, per = mr_cksum_extent_pages(ps);
    uint64_t first = ext * per, end = first + per, a, z;

    if (end > b->num_pages)
        end = b->num_pages;
    memset(buf, 0, (size_t)((end - first) * ps));
    for (uint64_t from = first; mr_bitmap_le64_next_run(bm, end, from, &a, &z);
         from = z) {
        if (mr_source_read(src, buf + (a - first) * ps, (size_t)((z - a) * ps),
                           b->entry.pages_offset + a * ps, err))
            return err ? err->code : -EIO;
        *data_bytes += (z - a) * ps;
    }
    *crc = mr_crc32c(0, buf, (size_t)((end - first) * ps));
    return 0;
}

static int verify_block(const struct mr_source *src,
                        const struct mr_walk_block *b,
                        const struct mr_cksum_block *cb,
                        struct mr_verify_report *rep, struct mr_error *err)
{
    uint64_t ps = b->entry.page_size;
    uint8_t *bm, *buf;
    int rc = 0;

    if (cb->page_size != ps || cb->pages_offset != b->entry.pages_offset ||
        cb->used_length != b->entry.used_length)
        return mr_error_set(err, -EINVAL, "checksum trailer: RAM block %s "
                            "layout differs from the stream's", cb->name);
    bm = mr_verify_read_bitmap(src, b, err);
    buf = bm ? malloc((size_t)(mr_cksum_extent_pages(ps) * ps)) : NULL;
    if (bm && !buf)
        rc = mr_error_set(err, -ENOMEM, "out of memory for an extent");
    for (uint64_t e = 0; buf && !rc && e < cb->nr_extents; e++) {
        uint32_t got = 0;

        rc = mr_verify_extent_crc(src, b, bm, e, buf, &got, &rep->data_bytes,
                                  err);
        if (!rc && got != cb->crc[e])
            rc = mr_error_set(err, -EBADMSG, "checksum mismatch in RAM block "
                              "%s extent %llu (file offset 0x%llx): expected "
                              "0x%08x, computed 0x%08x", cb->name, ULL(e),
                              ULL(cb->pages_offset +
                                  e * mr_cksum_extent_pages(ps) * ps),
                              cb->crc[e], got);
        rep->extents += !rc;
    }
    free(buf);
    free(bm);
    return bm ? rc : (err ? err->code : -EIO);
}

static int check_stream(const struct mr_source *src, const struct mr_walk *w,
                        struct mr_error *err)
{
    return mr_cksum_check_stream(src, &w->cksum, w->loc.stream_offset,
                                 w->cksum_offset, err);
}

int mr_verify_file(const struct mr_source *src, const struct mr_walk *w,
                   struct mr_verify_report *rep, struct mr_error *err)
{
    int rc = 0;

    memset(rep, 0, sizeof(*rep));
    rep->checksums = w->have_cksum;
    rep->trailer_announced = w->in && mr_vmdesc_has_key(&w->in->vmdesc,
                                               MR_CKSUM_VMDESC_KEY);
    if (rep->trailer_announced && !w->have_cksum)
        return mr_error_set(err, -EINVAL, "incomplete file: its "
                            "VMDESCRIPTION announces a checksum trailer, but "
                            "the file ends without one (the save did not "
                            "finish)");
    if (w->have_cksum && (rc = check_stream(src, w, err)))
        return rc;
    if (w->mapped_ram && (rc = mr_verify_layout(src, w, err)))
        return rc;
    for (size_t i = 0; w->mapped_ram && !rc && i < w->nr_blocks; i++) {
        const struct mr_walk_block *b = &w->blocks[i];
        const struct mr_cksum_block *cb;

        rep->blocks++;
        if (!w->have_cksum)
            continue;
        cb = mr_cksum_find(&w->cksum, b->entry.idstr);
        if (!cb)
            return mr_error_set(err, -EINVAL, "checksum trailer has no entry "
                                "for RAM block %s", b->entry.idstr);
        rc = verify_block(src, b, cb, rep, err);
    }
    return rc;
}
