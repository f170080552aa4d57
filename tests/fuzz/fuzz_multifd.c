/*
 * Fuzz target: arbitrary bytes as one multifd channel of a socket
 * migration (format/multifd_wire.h) -- the 64-byte handshake, then
 * packets and their page data, as the receiver reads them.  Checks that
 * an accepted header re-encodes to one that decodes the same.
 */
#include <stdlib.h>
#include <string.h>

#include "format/multifd_wire.h"
#include "fuzz.h"

static const struct mr_mfd_block block_v[] = {
    { "mem", 0x400000 }, { "pc.bios", 0x40000 }, { "tiny", 100 },
};
static const struct mr_mfd_blocks blocks = { block_v, 3 };
static const uint8_t uuid[MR_MFD_UUID_SIZE];

static void check_round_trip(const struct mr_mfd_packet *p, size_t idx)
{
    static uint8_t b[MR_MFD_HEADER_SIZE];
    struct mr_mfd_packet again;
    struct mr_error err = MR_ERROR_INIT;
    size_t idx2;

    mr_mfd_packet_encode(p, b);
    if (mr_mfd_packet_decode(b, sizeof(b), &blocks, &again, &idx2, &err) ||
        idx2 != idx || again.normal_pages != p->normal_pages ||
        again.zero_pages != p->zero_pages)
        abort();
    for (uint32_t i = 0; i < p->normal_pages + p->zero_pages; i++)
        if (again.offsets[i] != p->offsets[i] ||
            p->offsets[i] + MR_MFD_PAGE_SIZE > block_v[idx].used_length)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mr_mfd_handshake h;
    struct mr_mfd_packet p;
    struct mr_error err = MR_ERROR_INIT;
    size_t pos = MR_MFD_HANDSHAKE_SIZE, idx;

    if (mr_mfd_handshake_decode(data, size, uuid, 4, &h, &err))
        return 0;
    while (pos < size) {
        err = (struct mr_error)MR_ERROR_INIT;
        if (mr_mfd_packet_decode(data + pos, size - pos, &blocks, &p, &idx,
                                 &err))
            return 0;
        if (idx != SIZE_MAX)
            check_round_trip(&p, idx);
        pos += MR_MFD_HEADER_SIZE;
        if (size - pos < p.next_packet_size)
            return 0;
        pos += p.next_packet_size;
    }
    return 0;
}
