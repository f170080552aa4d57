/*
 * Reading any save file with libmapram's offline image API: mapram's own,
 * a bare QEMU `file:` save or a libvirt image.  Opens it, walks it, prints
 * what it holds and verifies it (every extent when the file is sealed).
 * Usage: read_image FILE   (exit 0 sound, 1 not)
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include <mapram/image.h>

static void print_container(const struct mr_walk *w)
{
    const struct mr_location *l = &w->loc;

    printf("container   %s, stream at 0x%" PRIx64 "%s\n",
           mr_container_name(l->kind), l->stream_offset,
           l->incomplete ? " (incomplete: the save never finished)" : "");
    if (l->kind == MR_CONTAINER_LIBVIRT)
        printf("libvirt     version %u, format %u, was_running %u\n",
               l->libvirt.version, l->libvirt.format, l->libvirt.was_running);
    if (l->kind == MR_CONTAINER_MAPRAM)
        printf("mapram      vm '%s', %s\n", l->mapram.vm_name,
               l->mapram.vm_version);
}

static void print_stream(const struct mr_walk *w)
{
    if (!w->have_config)
        return;
    printf("stream      version %u, machine %s, %s\n", w->stream_version,
           w->config.machine, w->mapped_ram ? "mapped-ram" : "legacy");
    for (size_t i = 0; i < w->nr_blocks; i++) {
        const struct mr_walk_block *b = &w->blocks[i];

        printf("  block %-24s %10" PRIu64 " KiB", b->entry.idstr,
               b->entry.used_length >> 10);
        if (b->present_known)
            printf(", %" PRIu64 " of %" PRIu64 " pages present",
                   b->pages_present, b->num_pages);
        printf("\n");
    }
    printf("checksums   %s\n", w->have_cksum ? "mapram trailer (CRC32C per "
           "1 MiB extent)" : "none");
    for (size_t i = 0; i < w->nr_problems; i++)
        printf("problem     %s\n", w->problems[i]);
}

static int check(int fd, const struct mr_walk *w)
{
    struct mr_verify_report rep;
    struct mr_error err = MR_ERROR_INIT;

    if (mr_image_verify(fd, w, &rep, &err)) {
        printf("verify      FAILED: %s\n", err.msg);
        return 1;
    }
    if (rep.checksums)
        printf("verify      OK: %" PRIu64 " extents match (%" PRIu64
               " bytes of page data)\n", rep.extents, rep.data_bytes);
    else
        printf("verify      layout OK; no checksums, page data not "
               "checked\n");
    return 0;
}

int main(int argc, char **argv)
{
    struct mr_walk w;
    struct mr_error err = MR_ERROR_INIT;
    int fd, status;

    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    /* The walk fills w even when it fails: a broken file still shows. */
    status = mr_image_walk(fd, -1, &w, &err) ? 1 : 0;
    print_container(&w);
    print_stream(&w);
    if (status)
        printf("read        FAILED: %s\n", err.msg);
    else if (w.loc.incomplete)
        status = 1;
    else
        status = check(fd, &w);
    mr_walk_free(&w);
    close(fd);
    return status;
}
