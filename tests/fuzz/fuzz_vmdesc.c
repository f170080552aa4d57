/*
 * Fuzz target: arbitrary bytes as a VMDESCRIPTION through the scanner
 * (vmdesc.h) -- open, key lookups, then every device entry parsed alone
 * and, with a few bytes of "device state", skipped by its field sizes.
 * Checks that the scanner refuses no object jansson accepts.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "format/vmdesc.h"
#include "fuzz.h"

static const uint8_t state[64];

/* The scanner refuses no object jansson accepts, and counts the same
 * devices.  Texts with NUL bytes are left out: JSON has none, and jansson
 * takes some of them for whitespace or an end. */
static void agree_with_jansson(const uint8_t *data, size_t size, bool ok,
                               size_t nr_devices)
{
    json_t *j, *devs;

    if (memchr(data, 0, size))
        return;
    j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    devs = json_object_get(j, "devices");

    if (json_is_object(j) && (!ok || (json_is_array(devs) &&
                                      json_array_size(devs) != nr_devices)))
        abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mr_source src, st;
    struct mr_vmdesc d;
    struct mr_error err = MR_ERROR_INIT;
    json_t *dev;
    bool ok;

    if (size > 1 << 16)
        return 0;
    mr_source_init_mem(&src, data, size);
    ok = mr_vmdesc_open(&src, 0, (uint32_t)size, &d, &err) == 0;
    agree_with_jansson(data, size, ok, d.nr_devices);
    if (!ok)
        return 0;
    (void)mr_vmdesc_has_key(&d, "devices");
    (void)mr_vmdesc_has_key(&d, "page_size");
    mr_source_init_mem(&st, state, sizeof(state));
    for (size_t i = 0; i <= d.nr_devices; i++) {
        struct mr_cursor c;

        dev = mr_vmdesc_next_device(&d, "dev", 0, &err);
        if (!dev)
            break;
        mr_cursor_init(&c, &st, 0);
        (void)mr_vmdesc_skip_state(&c, dev);
        json_decref(dev);
    }
    mr_vmdesc_close(&d);
    return 0;
}
