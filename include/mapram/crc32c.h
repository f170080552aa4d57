/*
 * CRC32C (Castagnoli), as used by mapram's file header (docs/file-header.md).
 * Chainable: mr_crc32c(mr_crc32c(0, a, n), b, m) == mr_crc32c(0, a||b, n+m),
 * and mr_crc32c(0, "123456789", 9) == 0xe3069283.
 */
#ifndef MAPRAM_CRC32C_H
#define MAPRAM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t mr_crc32c(uint32_t crc, const void *buf, size_t len);

/* mr_crc32c(crc, <len zero bytes>, len) without touching memory:
 * O(log len), for absent pages counted as zeros. */
uint32_t mr_crc32c_zeros(uint32_t crc, uint64_t len);

/* The table-driven version, for tests and machines without SSE4.2. */
uint32_t mr_crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
