/*
 * The machine (see machine.h): backend mappings, fixed blocks, the boot
 * image written into pc.ram and the serial file.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/layout.h"
#include "guest_image.h"
#include "machine.h"

/* Open (or create) the file behind memory-backend-file.  A directory
 * means "an unlinked temporary file in it", as QEMU does. */
static int open_mem_path(const char *path, uint64_t size, struct mr_error *err)
{
    struct stat st;
    int fd;

    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fd = open(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    } else {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fd < 0)
        return mr_error_set(err, -errno, "can't open backing store %s for "
                            "guest RAM: %s", path, strerror(errno));
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < size &&
        ftruncate(fd, (off_t)size) < 0) {
        int e = errno;

        close(fd);
        return mr_error_set(err, -e, "can't resize %s to %llu bytes: %s",
                            path, (unsigned long long)size, strerror(e));
    }
    return fd;
}

static int open_memfd(const struct vm_backend_opts *b, uint64_t size,
                      struct mr_error *err)
{
    int fd = memfd_create(b->id, MFD_CLOEXEC | (b->hugetlb ? MFD_HUGETLB : 0));

    if (fd < 0)
        return mr_error_set(err, -errno, "cannot create memfd: %s",
                            strerror(errno));
    if (ftruncate(fd, (off_t)size) < 0) {
        int e = errno;

        close(fd);
        return mr_error_set(err, -e, "cannot resize memfd to %llu bytes: %s",
                            (unsigned long long)size, strerror(e));
    }
    return fd;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct prealloc_part {
    uint8_t *base;
    uint64_t len;
    int err;
};

static void *prealloc_thread(void *arg)
{
    struct prealloc_part *pp = arg;

    pp->err = madvise(pp->base, pp->len, MADV_POPULATE_WRITE) ? errno : 0;
    return NULL;
}

/* prealloc=on: fault every page in now, split over the host's CPUs (first
 * touch is slow on virtualised hosts), like QEMU's prealloc threads.
 * MADV_POPULATE_WRITE keeps the content of a prefilled file. */
static int prealloc_ram(uint8_t *p, uint64_t size, struct mr_error *err)
{
    struct prealloc_part parts[16];
    pthread_t tids[16];
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = ncpu < 1 ? 1 : ncpu > 16 ? 16 : (unsigned)ncpu, started = 0;
    uint64_t chunk = (size / n + (2u << 20) - 1) & ~(uint64_t)((2u << 20) - 1);
    int e = 0;

    for (unsigned i = 0; i < n && (uint64_t)i * chunk < size; i++) {
        uint64_t off = (uint64_t)i * chunk;

        parts[i] = (struct prealloc_part){ p + off, size - off < chunk ?
                                           size - off : chunk, 0 };
        if (pthread_create(&tids[i], NULL, prealloc_thread, &parts[i])) {
            prealloc_thread(&parts[i]);
            e = e ? e : parts[i].err;
            continue;
        }
        started |= 1u << i;
    }
    for (unsigned i = 0; i < n; i++) {
        if (started & (1u << i)) {
            pthread_join(tids[i], NULL);
            e = e ? e : parts[i].err;
        }
    }
    if (e)
        return mr_error_set(err, -e, "preallocating guest memory "
                            "failed: %s", strerror(e));
    return 0;
}

static uint8_t *map_ram(const struct vm_backend_opts *b, uint64_t size,
                        struct mr_error *err)
{
    int flags = MAP_NORESERVE, fd = -1;
    void *p;

    if (b && b->kind != VM_BACKEND_RAM) {
        fd = b->kind == VM_BACKEND_FILE ? open_mem_path(b->mem_path, size, err)
                                        : open_memfd(b, size, err);
        if (fd < 0)
            return NULL;
    }
    flags |= b && b->share ? MAP_SHARED : MAP_PRIVATE;
    if (fd < 0)
        flags |= MAP_ANONYMOUS;
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (fd >= 0)
        close(fd);
    if (p == MAP_FAILED) {
        mr_error_set(err, -errno, "cannot map %llu bytes of guest RAM: %s",
                     (unsigned long long)size, strerror(errno));
        return NULL;
    }
    if (b && b->prealloc && prealloc_ram(p, size, err) < 0) {
        munmap(p, size);
        return NULL;
    }
    return p;
}

uint8_t machine_fixed_pattern(unsigned block, uint64_t offset)
{
    return (uint8_t)(offset * 7 + (offset >> 12) + block * 0x55);
}

static void fill_fixed(struct mr_ram_block *b, unsigned index)
{
    for (uint64_t i = 0; i < b->used_length; i++)
        b->host[i] = machine_fixed_pattern(index, i);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Identity map with 2 MiB pages over all of pc.ram, a flat GDT, and the
 * program.  Below 1 MiB, so the test range never overlaps it. */
static void write_boot_image(struct machine *m)
{
    uint8_t *ram = m->ram;
    uint64_t nr_2m = m->ram_bytes >> 21;
    /* code64: present, DPL 0, exec/read, L=1; data: present, read/write */
    static const uint64_t gdt[3] = { 0, 0x00affb000000ffffull,
                                     0x00cff3000000ffffull };

    /* A file backend may hold anything (an earlier run, a benchmark's
     * fill): the boot area below the test range starts out zero, as on a
     * reset machine, so stale table entries, counter or stop flag cannot
     * leak into the new boot. */
    memset(ram, 0, GUEST_BOOT_AREA_BYTES);
    for (int i = 0; i < 3; i++)
        put_le64(ram + GUEST_GDT_GPA + 8 * i, gdt[i]);
    put_le64(ram + GUEST_PML4_GPA, GUEST_PDPT_GPA | 0x7);
    for (uint64_t i = 0; i < (nr_2m + 511) / 512; i++)
        put_le64(ram + GUEST_PDPT_GPA + 8 * i,
                 (GUEST_PD_GPA + i * GUEST_PAGE_BYTES) | 0x7);
    for (uint64_t i = 0; i < nr_2m; i++)
        put_le64(ram + GUEST_PD_GPA + 8 * i, (i << 21) | 0x87);
    memcpy(ram + GUEST_CODE_GPA, guest_image, guest_image_size);
}

static int open_serial(struct machine *m, const char *path,
                       struct mr_error *err)
{
    m->serial_fd = -1;
    if (!path)
        return 0;
    m->serial_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (m->serial_fd < 0)
        return mr_error_set(err, -errno, "could not open '%s': %s", path,
                            strerror(errno));
    return 0;
}

int machine_init(struct machine *m, const struct vm_config *cfg,
                 struct mr_error *err)
{
    static const char *const names[MACHINE_NR_BLOCKS] = { "pc.ram", "pc.bios",
                                                          "pc.rom" };
    const uint64_t sizes[MACHINE_NR_BLOCKS] = { cfg->ram_bytes,
                                                MACHINE_BIOS_BYTES,
                                                MACHINE_ROM_BYTES };
    int rc;

    memset(m, 0, sizeof(*m));
    m->serial_fd = -1;
    rc = guest_layout_from_image(guest_image, guest_image_size,
                                 GUEST_CODE_GPA, &m->layout, err);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < MACHINE_NR_BLOCKS; i++) {
        struct mr_ram_block *b = &m->blocks[i];

        b->name = names[i];
        b->used_length = sizes[i];
        b->page_size = GUEST_PAGE_BYTES;
        b->host = map_ram(i == 0 ? cfg->ram_backend : NULL, sizes[i], err);
        if (!b->host) {
            machine_destroy(m);
            return err ? err->code : -ENOMEM;
        }
        if (i > 0)
            fill_fixed(b, i);
    }
    m->ram = m->blocks[0].host;
    m->ram_bytes = cfg->ram_bytes;
    write_boot_image(m);
    guest_state_reset(&m->boot_state, cfg->test_start, cfg->test_end);
    rc = open_serial(m, cfg->serial_path, err);
    if (rc < 0)
        machine_destroy(m);
    return rc;
}

void machine_destroy(struct machine *m)
{
    for (unsigned i = 0; i < MACHINE_NR_BLOCKS; i++)
        if (m->blocks[i].host)
            munmap(m->blocks[i].host, m->blocks[i].used_length);
    if (m->serial_fd >= 0)
        close(m->serial_fd);
    memset(m, 0, sizeof(*m));
    m->serial_fd = -1;
}

void machine_serial_out(struct machine *m, uint8_t byte)
{
    ssize_t n;

    if (m->serial_fd < 0)
        return;
    do {
        n = write(m->serial_fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
}
