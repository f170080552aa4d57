/*
 * Test helper: re-packetize page channels captured from a QEMU 10 multifd
 * sender with mapram's encoder (format/multifd_wire.h) -- small packets of
 * normal and zero pages, SYNCs where the capture had them -- so that the
 * test can feed them to a QEMU 10 destination.
 * usage: mfd_resend OUTDIR NAME=LEN... -- CHANNEL...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/multifd_wire.h"

#define MAX_BLOCKS 32
#define SMALL 32  /* pages per re-encoded packet */

static int emit(FILE *out, const struct mr_mfd_packet *p, const uint8_t *data)
{
    uint8_t hdr[MR_MFD_HEADER_SIZE];

    mr_mfd_packet_encode(p, hdr);
    if (fwrite(hdr, 1, sizeof(hdr), out) != sizeof(hdr))
        return -1;
    if (p->normal_pages &&
        fwrite(data, MR_MFD_PAGE_SIZE, p->normal_pages, out) != p->normal_pages)
        return -1;
    return 0;
}

/* One captured data packet as packets of at most SMALL pages. */
static int split(FILE *out, const struct mr_mfd_packet *in, const uint8_t *data,
                 uint64_t *packet_num)
{
    uint32_t nn = 0, nz = 0;

    while (nn < in->normal_pages || nz < in->zero_pages) {
        struct mr_mfd_packet p = { .pages_alloc = MR_MFD_PACKET_PAGES,
                                   .packet_num = (*packet_num)++ };
        const uint8_t *d = data + (size_t)nn * MR_MFD_PAGE_SIZE;

        memcpy(p.block, in->block, sizeof(p.block));
        while (nn < in->normal_pages && p.normal_pages < SMALL)
            p.offsets[p.normal_pages++] = in->offsets[nn++];
        while (nz < in->zero_pages && p.normal_pages + p.zero_pages < SMALL)
            p.offsets[p.normal_pages + p.zero_pages++] =
                in->offsets[in->normal_pages + nz++];
        p.next_packet_size = p.normal_pages * MR_MFD_PAGE_SIZE;
        if (emit(out, &p, d))
            return -1;
    }
    return 0;
}

/* packet_num: mapram's own numbering, one sequence over all channels */
static int resend(const uint8_t *b, size_t n, FILE *out,
                  const struct mr_mfd_blocks *blocks, uint64_t *packet_num,
                  struct mr_error *err)
{
    struct mr_mfd_packet p, sync;
    size_t pos = MR_MFD_HANDSHAKE_SIZE, idx;

    if (fwrite(b, 1, MR_MFD_HANDSHAKE_SIZE, out) != MR_MFD_HANDSHAKE_SIZE)
        return mr_error_set(err, -1, "write failed");
    while (pos < n) {
        if (mr_mfd_packet_decode(b + pos, n - pos, blocks, &p, &idx, err))
            return -1;
        pos += MR_MFD_HEADER_SIZE;
        if (n - pos < p.next_packet_size)
            return mr_error_set(err, -1, "packet data cut short");
        if (idx != SIZE_MAX && split(out, &p, b + pos, packet_num))
            return mr_error_set(err, -1, "write failed");
        pos += p.next_packet_size;
        mr_mfd_packet_sync(&sync, (*packet_num)++);
        if ((p.flags & MR_MFD_FLAG_SYNC) && emit(out, &sync, NULL))
            return mr_error_set(err, -1, "write failed");
    }
    return 0;
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b = NULL;
    long len;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0) {
        rewind(f);
        b = malloc((size_t)len + 1);
        if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
            free(b);
            b = NULL;
        }
        *n = (size_t)len;
    }
    fclose(f);
    return b;
}

int main(int argc, char **argv)
{
    struct mr_mfd_block v[MAX_BLOCKS];
    struct mr_mfd_blocks blocks = { v, 0 };
    char path[4096];
    uint64_t packet_num = 0;
    int i = 2;

    for (; i < argc && strcmp(argv[i], "--") && blocks.n < MAX_BLOCKS; i++) {
        char *eq = strrchr(argv[i], '=');

        if (!eq)
            return 2;
        *eq = '\0';
        v[blocks.n].name = argv[i];
        v[blocks.n++].used_length = strtoull(eq + 1, NULL, 0);
    }
    for (int k = i + 1; k < argc; k++) {
        struct mr_error err = MR_ERROR_INIT;
        size_t n = 0;
        uint8_t *b = slurp(argv[k], &n);
        FILE *out;

        snprintf(path, sizeof(path), "%s/resent%d", argv[1], k - i - 1);
        out = fopen(path, "wb");
        if (!b || !out || resend(b, n, out, &blocks, &packet_num, &err) ||
            fclose(out)) {
            fprintf(stderr, "%s: %s\n", argv[k], b ? err.msg : "unreadable");
            return 1;
        }
        free(b);
    }
    return 0;
}
