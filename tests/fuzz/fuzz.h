/* The libFuzzer entry point every fuzz target defines; replay.c calls it
 * over a corpus in ordinary builds. */
#ifndef MAPRAM_TEST_FUZZ_H
#define MAPRAM_TEST_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
