/*
 * Fuzz target: the launch metadata parser (src/lib/format/launch_meta.c).
 * Whatever parses must encode back to exactly the input bytes: the format
 * has one spelling for each list of entries.
 */
#include <stdlib.h>
#include <string.h>

#include "format/mapram_header.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mr_launch_meta m;
    uint8_t *again;

    if (size > MR_LAUNCH_BYTES_MAX)
        return 0;
    if (mr_launch_meta_parse(data, size, &m, NULL) < 0) {
        if (m.count)
            abort();
        return 0;
    }
    (void)mr_launch_meta_get(&m, "argv");
    again = malloc(size);
    if (again && (mr_launch_meta_encode(&m, again, size, NULL) != (int)size ||
                  memcmp(again, data, size)))
        abort();
    free(again);
    mr_launch_meta_free(&m);
    return 0;
}
