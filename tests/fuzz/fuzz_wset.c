/*
 * Fuzz target: the working-set sidecar codec (src/lib/format/wset.c).
 * Each input is decoded as it is, and again with its last four bytes
 * replaced by the right CRC32C so the fuzzer reaches the field checks; a
 * decoded set is encoded again and must decode to the same entries.
 */
#include <stdlib.h>
#include <string.h>

#include "format/wset.h"
#include "fuzz.h"
#include "mapram/crc32c.h"

static void exercise(const uint8_t *buf, size_t len)
{
    struct mr_wset w, again;
    uint8_t *out;
    size_t n;

    if (mr_wset_decode(buf, len, &w, NULL))
        return;
    if (!mr_wset_encode(&w, &out, &n)) {
        if (mr_wset_decode(out, n, &again, NULL) || again.n != w.n ||
            memcmp(again.e, w.e, w.n * sizeof(*w.e)))
            abort();
        mr_wset_free(&again);
        free(out);
    }
    mr_wset_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf;
    uint32_t crc;

    exercise(data, size);
    if (size < 4 || !(buf = malloc(size)))
        return 0;
    memcpy(buf, data, size);
    crc = mr_crc32c(0, buf, size - 4);
    for (int i = 0; i < 4; i++)
        buf[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    exercise(buf, size);
    free(buf);
    return 0;
}
