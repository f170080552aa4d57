/*
 * The offline image API's entry points (include/mapram/image.h): a save
 * file on a descriptor, read through a bounded source, walked, extracted,
 * verified and sealed by the modules of this room.
 */
#include <assert.h>
#include <string.h>

#include "format/source.h"
#include "format/stream_defs.h"
#include "image/extract.h"
#include "image/seal.h"
#include "image/stream_walk.h"
#include "image/verify.h"

static_assert(MR_WALK_CMD_KINDS == MIG_CMD_MAX,
              "the public command count follows the stream's");
static_assert(MR_WALK_SECTION_TYPES == QEMU_VM_SECTION_FULL + 1,
              "the public section type count follows the stream's");

int mr_image_walk(int fd, int64_t stream_offset, struct mr_walk *w,
                  struct mr_error *err)
{
    struct mr_source src;
    int rc = mr_source_init_fd(&src, fd, err);

    if (rc < 0) {
        memset(w, 0, sizeof(*w));
        return rc;
    }
    return mr_walk_file(&src, stream_offset, w, err);
}

/* The file as it was walked: reads stay within the size the walk saw. */
static int walked_source(int fd, const struct mr_walk *w,
                         struct mr_source *src, struct mr_error *err)
{
    int rc = mr_source_init_fd(src, fd, err);

    if (rc == 0 && src->size > w->file_size)
        src->size = w->file_size;
    return rc;
}

int mr_image_extract(int fd, const struct mr_walk *w, size_t block,
                     const struct mr_sink *sink, struct mr_error *err)
{
    struct mr_source src;
    int rc = walked_source(fd, w, &src, err);

    return rc ? rc : mr_extract_block(&src, w, block, sink, err);
}

int mr_image_verify(int fd, const struct mr_walk *w,
                    struct mr_verify_report *rep, struct mr_error *err)
{
    struct mr_source src;
    int rc = walked_source(fd, w, &src, err);

    return rc ? rc : mr_verify_file(&src, w, rep, err);
}

int mr_image_seal(int fd, const struct mr_walk *w, struct mr_seal_report *rep,
                  struct mr_error *err)
{
    return mr_seal_file(mr_sys_default(), fd, w, rep, err);
}
