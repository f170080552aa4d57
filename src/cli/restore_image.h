/*
 * `mapram restore` of a file mapram did not write: a libvirt save image
 * (raw, sparse or compressed) or a bare QEMU `file:` save, loaded into a
 * QEMU waiting with `-incoming defer` (docs/save-restore.md).
 */
#ifndef MAPRAM_CLI_RESTORE_IMAGE_H
#define MAPRAM_CLI_RESTORE_IMAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "mapram/error.h"

struct restore_image_opts {
    const char *socket_path;
    const char *path;
    int64_t offset;             /* --offset; -1 = find the stream */
    bool paused;                /* --paused */
    bool running;               /* --running */
    bool json;
    int timeout_ms;             /* --timeout, for the monitor's greeting */
};

/* Does `path` need this path (not a mapram save file, or --offset)? */
bool restore_image_wanted(const char *path, int64_t offset);

/* Load the file; *running tells whether the guest runs afterwards. */
int restore_image(const struct restore_image_opts *o, bool *running,
                  struct mr_error *err);

#endif
