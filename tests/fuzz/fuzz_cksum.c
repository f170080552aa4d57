/*
 * Fuzz target: mapram's checksum trailer (src/lib/format/cksum.c).  Each
 * input is decoded as it is, and again with its last four bytes replaced
 * by the right CRC32C so the fuzzer gets past the integrity check into
 * the field validation; a decoded trailer then has its spans computed and
 * its stream CRC taken over the input itself, and the input followed by a
 * valid footer goes through mr_cksum_open like a file would; the input
 * is also searched for an unfinished trailer (mr_cksum_find_unfinished).
 */
#include <stdlib.h>
#include <string.h>

#include "format/cksum.h"
#include "fuzz.h"
#include "mapram/crc32c.h"

static void exercise(const uint8_t *buf, size_t len)
{
    struct mr_cksum ck;
    struct mr_source src;
    uint32_t crc;

    if (mr_cksum_decode(buf, len, &ck, NULL))
        return;
    mr_source_init_mem(&src, buf, len);
    mr_cksum_stream_crc(&src, &ck, len, &crc, NULL);
    mr_cksum_free(&ck);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size + MR_CKSUM_FOOTER_BYTES + 1);
    struct mr_cksum ck;
    struct mr_source src;
    bool have;
    uint64_t at;

    if (!buf)
        return 0;
    exercise(data, size);
    mr_source_init_mem(&src, data, size);
    if (mr_cksum_find_unfinished(&src, 0, &at) == 0 && at > size)
        abort();
    memcpy(buf, data, size);
    if (size >= 4) {
        uint32_t crc = mr_crc32c(0, buf, size - 4);

        for (int i = 0; i < 4; i++)
            buf[size - 4 + i] = (uint8_t)(crc >> (8 * i));
        exercise(buf, size);
    }
    mr_cksum_footer_encode(buf + size, 0, size);
    mr_source_init_mem(&src, buf, size + MR_CKSUM_FOOTER_BYTES);
    if (mr_cksum_open(&src, &ck, &have, NULL) == 0)
        mr_cksum_free(&ck);
    free(buf);
    return 0;
}
