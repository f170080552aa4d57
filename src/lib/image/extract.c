/*
 * Copying a block's pages out of a save file (extract.h).  Reads are
 * bounded by the walk's checks (pages regions lie inside the file) and go
 * through the source, so the same code serves the CLI and the fuzzer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "image/extract.h"
#include "format/mapped_ram.h"

static int copy_range(const struct mr_source *src, uint64_t file_off,
                      uint64_t block_off, uint64_t len, uint8_t *buf,
                      const struct mr_sink *sink, struct mr_error *err)
{
    while (len > 0) {
        uint64_t n = len < MR_EXTRACT_CHUNK_BYTES ? len
                                                  : MR_EXTRACT_CHUNK_BYTES;

        if (mr_source_read(src, buf, n, file_off, err) < 0 ||
            sink->write(sink->opaque, buf, n, block_off, err) < 0)
            return err->code;
        file_off += n;
        block_off += n;
        len -= n;
    }
    return 0;
}

static int extract_mapped_ram(const struct mr_source *src,
                              const struct mr_walk_block *b, uint8_t *buf,
                              const struct mr_sink *sink, struct mr_error *err)
{
    uint8_t *bitmap = malloc(MR_EXTRACT_CHUNK_BYTES);
    uint64_t pages_per_chunk = MR_EXTRACT_CHUNK_BYTES * 8;
    int ret = 0;

    if (!bitmap)
        return mr_error_set(err, -ENOMEM, "out of memory");
    for (uint64_t first = 0; first < b->num_pages && !ret;
         first += pages_per_chunk) {
        uint64_t pages = b->num_pages - first, a, e = 0;

        if (pages > pages_per_chunk)
            pages = pages_per_chunk;
        ret = mr_source_read(src, bitmap, mr_mapped_ram_bitmap_size(pages),
                             b->entry.bitmap_offset + first / 8, err);
        while (!ret && mr_bitmap_le64_next_run(bitmap, pages, e, &a, &e))
            ret = copy_range(src, b->entry.pages_offset +
                             (first + a) * MR_TARGET_PAGE_SIZE,
                             (first + a) * MR_TARGET_PAGE_SIZE,
                             (e - a) * MR_TARGET_PAGE_SIZE, buf, sink, err);
    }
    free(bitmap);
    return ret;
}

/* The second pass over a legacy stream writes the block's PAGE records
 * in stream order, so a later one overwrites an earlier one.  With the
 * walk's final-state map, pages that end as ZERO are skipped (left as
 * holes); without one, ZERO records write zeros. */
struct legacy_pass {
    const struct mr_source *src;
    size_t block;
    const uint8_t *final_map;
    uint8_t *buf;
    const struct mr_sink *sink;
};

static int legacy_page(void *opaque, size_t block, uint64_t page,
                       uint64_t data_offset, struct mr_error *err)
{
    struct legacy_pass *x = opaque;

    if (block != x->block)
        return 0;
    if (x->final_map)
        return data_offset && mr_bitmap_le64_test(x->final_map, page)
               ? copy_range(x->src, data_offset, page * MR_TARGET_PAGE_SIZE,
                            MR_TARGET_PAGE_SIZE, x->buf, x->sink, err)
               : 0;
    if (data_offset)
        return copy_range(x->src, data_offset, page * MR_TARGET_PAGE_SIZE,
                          MR_TARGET_PAGE_SIZE, x->buf, x->sink, err);
    memset(x->buf, 0, MR_TARGET_PAGE_SIZE);
    return x->sink->write(x->sink->opaque, x->buf, MR_TARGET_PAGE_SIZE,
                          page * MR_TARGET_PAGE_SIZE, err);
}

static int extract_legacy(const struct mr_source *src, const struct mr_walk *w,
                          size_t block, uint8_t *buf,
                          const struct mr_sink *sink, struct mr_error *err)
{
    struct legacy_pass x = { src, block, w->blocks[block].final_map, buf,
                             sink };
    struct mr_walk_visitor v = { legacy_page, &x };
    struct mr_walk *again = malloc(sizeof(*again));
    int ret;

    if (!again)
        return mr_error_set(err, -ENOMEM, "out of memory");
    ret = mr_walk_file_visit(src, (int64_t)w->loc.stream_offset, &v, again,
                             err);
    mr_walk_free(again);
    free(again);
    return ret;
}

int mr_extract_block(const struct mr_source *src, const struct mr_walk *w,
                     size_t block, const struct mr_sink *sink,
                     struct mr_error *err)
{
    uint8_t *buf;
    int ret;

    if (block >= w->nr_blocks)
        return mr_error_set(err, -ENOENT, "no RAM block %zu", block);
    buf = malloc(MR_EXTRACT_CHUNK_BYTES);
    if (!buf)
        return mr_error_set(err, -ENOMEM, "out of memory");
    if (w->mapped_ram)
        ret = extract_mapped_ram(src, &w->blocks[block], buf, sink, err);
    else
        ret = extract_legacy(src, w, block, buf, sink, err);
    free(buf);
    return ret;
}

void mr_extract_file_name(const char *idstr, char out[261])
{
    size_t n = 0;

    while (*idstr == '/' || *idstr == '.')
        idstr++;
    for (; *idstr && n < 255; idstr++) {
        char ch = *idstr;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || strchr("._@+-", ch);

        out[n++] = ok ? ch : '_';
    }
    if (n == 0)
        out[n++] = '_';
    memcpy(out + n, ".img", 5);
}
