/*
 * Sealing a save file (`mapram seal`): add mapram's checksum trailer
 * (docs/file-format.md) to a mapped-ram file that has none, computed from
 * the file itself, written so that an interruption leaves the file as it
 * was or sealed (docs/seal.md).
 */
#ifndef MAPRAM_IMAGE_SEAL_H
#define MAPRAM_IMAGE_SEAL_H

#include "image/stream_walk.h"
#include "io/sys.h"

/* mr_image_seal with the OS calls taken from `sys` (tests fail the Nth
 * pwrite or fdatasync through it). */
int mr_seal_file(const struct mr_sys *sys, int fd, const struct mr_walk *w,
                 struct mr_seal_report *rep, struct mr_error *err);

#endif
