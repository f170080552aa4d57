/*
 * Scratch space for the engine test programs: a fresh directory under the
 * current (build) directory, removed at the end, and the O_DIRECT probe of
 * docs/test-guest.md, "O_DIRECT probe" run inside it, so direct-I/O cases can skip where
 * the filesystem refuses O_DIRECT.  No cmocka here: test_fault.c links it
 * without.
 */
#ifndef MAPRAM_TEST_SCRATCH_H
#define MAPRAM_TEST_SCRATCH_H

#include <stdbool.h>
#include <stddef.h>

/* mkdtemp "<cwd>/<prefix>XXXXXX" into dir; 0, or -1 on failure. */
int scratch_dir_make(char *dir, size_t size, const char *prefix);

/* Remove the directory and everything in it; 0, or -1 on failure. */
int scratch_dir_remove(const char *dir);

/* A 1 MiB aligned write at 1 MiB through O_DIRECT works in dir. */
bool scratch_probe_odirect(const char *dir);

#endif
