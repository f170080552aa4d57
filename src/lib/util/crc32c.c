/*
 * CRC32C, table-driven (one byte per step).  The only user today is the
 * 512-byte file header, so a portable table beats CPU-specific paths; the
 * table is built once, thread-safely.
 */
#include <pthread.h>

#include "mapram/crc32c.h"

#define CRC32C_POLY_REFLECTED 0x82f63b78U

static uint32_t crc32c_table[256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_build_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t crc = i;

        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (crc & 1 ? CRC32C_POLY_REFLECTED : 0);
        crc32c_table[i] = crc;
    }
}

uint32_t mr_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    pthread_once(&crc32c_once, crc32c_build_table);
    crc = ~crc;
    while (len--)
        crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}
