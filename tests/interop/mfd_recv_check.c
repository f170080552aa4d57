/*
 * Test helper: decode page channels captured from a QEMU 10 multifd socket
 * migration with mapram's codec (format/multifd_wire.h) and store the
 * pages, one image file per RAM block, for the test to compare with the
 * guest's RAM.  usage: mfd_recv_check OUTDIR NAME=LEN... -- CHANNEL...
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/multifd_wire.h"

#define MAX_BLOCKS 32

struct counts {
    unsigned long packets, syncs, normal, zero;
};

static int store(int fd, const struct mr_mfd_packet *p, const uint8_t *data)
{
    for (uint32_t i = 0; i < p->normal_pages; i++)
        if (pwrite(fd, data + (size_t)i * MR_MFD_PAGE_SIZE, MR_MFD_PAGE_SIZE,
                   (off_t)p->offsets[i]) != MR_MFD_PAGE_SIZE)
            return -1;
    return 0;
}

static int channel(const uint8_t *b, size_t n, unsigned nchan,
                   const struct mr_mfd_blocks *blocks, const int *fds,
                   struct counts *c, struct mr_error *err)
{
    static const uint8_t uuid[MR_MFD_UUID_SIZE];
    struct mr_mfd_handshake h;
    struct mr_mfd_packet p;
    size_t pos = MR_MFD_HANDSHAKE_SIZE, idx;

    if (mr_mfd_handshake_decode(b, n, uuid, nchan, &h, err))
        return -1;
    while (pos < n) {
        if (mr_mfd_packet_decode(b + pos, n - pos, blocks, &p, &idx, err))
            return -1;
        pos += MR_MFD_HEADER_SIZE;
        if (n - pos < p.next_packet_size)
            return mr_error_set(err, -1, "packet data cut short");
        if (idx != SIZE_MAX && store(fds[idx], &p, b + pos))
            return mr_error_set(err, -1, "cannot store pages");
        pos += p.next_packet_size;
        c->packets++;
        c->syncs += (p.flags & MR_MFD_FLAG_SYNC) != 0;
        c->normal += p.normal_pages;
        c->zero += p.zero_pages;
    }
    printf("channel %u: packets %lu syncs %lu normal %lu zero %lu\n", h.id,
           c->packets, c->syncs, c->normal, c->zero);
    return 0;
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b;
    long len;

    if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0)
        return NULL;
    rewind(f);
    b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

int main(int argc, char **argv)
{
    struct mr_mfd_block v[MAX_BLOCKS];
    struct mr_mfd_blocks blocks = { v, 0 };
    int fds[MAX_BLOCKS], i = 2;
    char path[4096];

    for (; i < argc && strcmp(argv[i], "--") && blocks.n < MAX_BLOCKS; i++) {
        char *eq = strrchr(argv[i], '=');

        if (!eq)
            return 2;
        *eq = '\0';
        v[blocks.n].name = argv[i];
        v[blocks.n].used_length = strtoull(eq + 1, NULL, 0);
        snprintf(path, sizeof(path), "%s/%zu.img", argv[1], blocks.n);
        fds[blocks.n] = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
        if (fds[blocks.n] < 0 ||
            ftruncate(fds[blocks.n], (off_t)v[blocks.n].used_length))
            return 2;
        blocks.n++;
    }
    if (i >= argc)
        return 2;
    for (int k = i + 1; k < argc; k++) {
        struct mr_error err = MR_ERROR_INIT;
        struct counts c = { 0 };
        size_t n;
        uint8_t *b = slurp(argv[k], &n);

        if (!b || channel(b, n, (unsigned)(argc - i - 1), &blocks, fds, &c,
                          &err)) {
            fprintf(stderr, "%s: %s\n", argv[k], b ? err.msg : "unreadable");
            return 1;
        }
        free(b);
    }
    return 0;
}
