/*
 * `mapram seal` (seal.h): refuse what cannot be sealed, compute every
 * extent's CRC32C and the stream CRC from the file, then make the trailer
 * visible with one small write after it is durable (docs/seal.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "format/cksum.h"
#include "format/mapped_ram.h"
#include "image/seal.h"
#include "image/verify.h"

#define ULL(x) ((unsigned long long)(x))

/* What cannot be sealed, each refused with its own code. */
static int check_sealable(const struct mr_source *src, const struct mr_walk *w,
                          struct mr_error *err)
{
    if (w->have_cksum)
        return mr_error_set(err, -EALREADY, "already sealed: the file has a "
                            "checksum trailer at 0x%llx", ULL(w->cksum_offset));
    if (w->loc.incomplete)
        return mr_error_set(err, -EINVAL, "incomplete image: the save never "
                            "finished (libvirt Part or mapram PART header); "
                            "not sealing it");
    if (!w->complete || w->nr_problems)
        return mr_error_set(err, -EINVAL, "not sealing a file whose walk "
                            "did not end cleanly: %s", w->nr_problems ?
                            w->problems[0] : "the stream was not read to "
                            "its end");
    if (!w->mapped_ram)
        return mr_error_set(err, -ENOTSUP, "a legacy stream carries its pages "
                            "inline: seal needs a mapped-ram file");
    if (w->nr_blocks > MR_CKSUM_MAX_BLOCKS)
        return mr_error_set(err, -ENOTSUP, "%zu RAM blocks, a trailer holds at "
                            "most %d", w->nr_blocks, MR_CKSUM_MAX_BLOCKS);
    return mr_verify_layout(src, w, err);
}

/* The extents of one block, read as a loader reads them. */
static int seal_block(const struct mr_source *src, const struct mr_walk_block *b,
                      struct mr_cksum *ck, struct mr_seal_report *rep,
                      struct mr_error *err)
{
    uint64_t ps = b->entry.page_size;
    struct mr_cksum_block *cb;
    uint8_t *bm, *buf;
    int rc = mr_cksum_add_block(ck, b->entry.idstr, ps, b->entry.used_length,
                                b->entry.pages_offset, err);

    if (rc)
        return rc;
    cb = &ck->blocks[ck->nblocks - 1];
    bm = mr_verify_read_bitmap(src, b, err);
    if (!bm)
        return err ? err->code : -EIO;
    buf = malloc((size_t)(mr_cksum_extent_pages(ps) * ps));
    if (!buf)
        rc = mr_error_set(err, -ENOMEM, "out of memory for an extent");
    for (uint64_t e = 0; !rc && e < cb->nr_extents; e++) {
        rc = mr_verify_extent_crc(src, b, bm, e, buf, &cb->crc[e],
                                  &rep->data_bytes, err);
        rep->extents += !rc;
    }
    free(buf);
    free(bm);
    return rc;
}

static int compute(const struct mr_source *src, const struct mr_walk *w,
                   struct mr_cksum *ck, struct mr_seal_report *rep,
                   struct mr_error *err)
{
    int rc = 0;

    memset(ck, 0, sizeof(*ck));
    ck->flags = MR_CKSUM_F_STREAM_CRC;
    ck->stream_offset = w->loc.stream_offset;
    for (size_t i = 0; !rc && i < w->nr_blocks; i++, rep->blocks++)
        rc = seal_block(src, &w->blocks[i], ck, rep, err);
    if (!rc)
        rc = mr_cksum_stream_crc(src, ck, w->stream_end, &ck->stream_crc, err);
    return rc;
}

/* e: a positive errno (0 counts as EIO). */
static int sys_fail(struct mr_error *err, int e, const char *what,
                    uint64_t off)
{
    e = e ? e : EIO;
    return mr_error_set(err, -e, "seal: %s at 0x%llx failed: %s", what,
                        ULL(off), strerror(e));
}

/* Trailer, sync, footer, sync: the footer is the one write that makes
 * the trailer count, and it is written only once the trailer is durable. */
static int write_trailer(const struct mr_sys *sys, int fd,
                         const struct mr_cksum *ck, uint64_t at,
                         struct mr_seal_report *rep, struct mr_error *err)
{
    uint8_t footer[MR_CKSUM_FOOTER_BYTES];
    size_t len = 0;
    uint8_t *t = mr_cksum_encode(ck, &len);
    int rc;

    if (!t)
        return mr_error_set(err, -ENOMEM, "out of memory for the trailer");
    rc = mr_sys_pwrite_all(sys, fd, t, len, (off_t)at);
    free(t);
    if (rc)
        return sys_fail(err, -rc, "writing the trailer", at);
    if (sys->fdatasync(fd))
        return sys_fail(err, errno, "fdatasync after the trailer", at);
    mr_cksum_footer_encode(footer, at, len);
    rc = mr_sys_pwrite_all(sys, fd, footer, sizeof(footer), (off_t)(at + len));
    if (rc)
        return sys_fail(err, -rc, "writing the footer", at + len);
    if (sys->fdatasync(fd))
        return sys_fail(err, errno, "fdatasync after the footer", at + len);
    rep->trailer_offset = at;
    rep->trailer_len = len;
    return 0;
}

int mr_seal_file(const struct mr_sys *sys, int fd, const struct mr_walk *w,
                 struct mr_seal_report *rep, struct mr_error *err)
{
    struct mr_source src;
    struct mr_cksum ck = { 0 };
    int rc = mr_source_init_fd(&src, fd, err);

    memset(rep, 0, sizeof(*rep));
    if (rc)
        return rc;
    if (src.size != w->file_size)
        return mr_error_set(err, -EINVAL, "the file changed size since it "
                            "was read (0x%llx, now 0x%llx)",
                            ULL(w->file_size), ULL(src.size));
    src.size = w->stream_end;
    rc = check_sealable(&src, w, err);
    if (!rc)
        rc = compute(&src, w, &ck, rep, err);
    /* An interrupted seal left trailer bytes with no footer: they never
     * counted, so cutting them changes nothing a reader sees. */
    if (!rc && w->unfinished_trailer) {
        if (sys->ftruncate(fd, (off_t)w->stream_end))
            rc = sys_fail(err, errno, "cutting an unfinished trailer",
                          w->stream_end);
        rep->replaced_unfinished = !rc;
    }
    /* A failed write or sync that the process survives: take back what
     * got written, so the file is as it was.  Best effort: what stays
     * reads as unfinished, as after a crash. */
    if (!rc && (rc = write_trailer(sys, fd, &ck, w->stream_end, rep, err)))
        (void)sys->ftruncate(fd, (off_t)w->stream_end);
    mr_cksum_free(&ck);
    return rc;
}
