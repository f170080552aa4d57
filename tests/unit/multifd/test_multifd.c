/*
 * The page-channel pool end to end on temp files: save a fake RAM block
 * with scattered and clustered zero pages through 0, 1, 2 and 4 channels
 * and both engines, check every page at its offset and every bitmap bit,
 * load it back, and check errors, cancel and leaks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "format/cksum.h"
#include "format/stream_defs.h"
#include "io/engine.h"
#include "io/fault.h"
#include "multifd/multifd.h"
#include "multifd/multifd_internal.h"
#include "util/bitmap.h"

#define PS 4096u
#define NPAGES 1000u
#define BATCH_PAGES (MR_MULTIFD_BATCH_BYTES / 4096)
#define PAGES_OFFSET 0x100000u

struct fixture {
    char path[64];
    uint8_t *ram;
    unsigned long *bitmap;
    struct mr_multifd_block block;
    int fds[4];
    unsigned nfds;
};

static bool page_should_be_zero(unsigned i)
{
    return i % 7 == 3 || (i >= 100 && i < 140) || i == NPAGES - 1 ||
           (i >= 500 && i < 502);
}

static void fill_ram(uint8_t *ram)
{
    for (unsigned i = 0; i < NPAGES; i++) {
        uint8_t *p = ram + (size_t)i * PS;

        memset(p, 0, PS);
        if (page_should_be_zero(i))
            continue;
        /* Non-zero somewhere not at the start, for some pages. */
        p[i % 3 ? 0 : PS - 1] = (uint8_t)(i | 1);
        memcpy(p + 64, &i, sizeof(i));
    }
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;

    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void fixture_init(struct fixture *f, unsigned nfds, int open_flags)
{
    int fd;

    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "/tmp/mr-multifd-XXXXXX");
    fd = mkostemp(f->path, O_CLOEXEC);
    assert_true(fd >= 0);
    close(fd);
    f->ram = aligned_alloc(PS, (size_t)NPAGES * PS);
    assert_non_null(f->ram);
    fill_ram(f->ram);
    f->bitmap = mr_bitmap_new(NPAGES);
    assert_non_null(f->bitmap);
    /* Stale bits on zero pages must be cleared by the save. */
    mr_bitmap_set_atomic(f->bitmap, 3);
    mr_bitmap_set_atomic(f->bitmap, 120);
    f->block = (struct mr_multifd_block){ "pc.ram", f->ram, (uint64_t)NPAGES * PS,
                                          PS, PAGES_OFFSET, f->bitmap };
    f->nfds = nfds ? nfds : 1;
    for (unsigned i = 0; i < f->nfds; i++) {
        f->fds[i] = open(f->path, open_flags | O_CLOEXEC);
        assert_true(f->fds[i] >= 0);
    }
}

static void fixture_fini(struct fixture *f)
{
    for (unsigned i = 0; i < f->nfds; i++)
        close(f->fds[i]);
    unlink(f->path);
    free(f->ram);
    free(f->bitmap);
}

static struct mr_multifd *pool_new(struct fixture *f, unsigned nch,
                                   const char *engine, bool save, bool dio)
{
    struct mr_multifd_config cfg = {
        .nchannels = nch, .fds = f->fds, .sync_fd = f->fds[0],
        .direct_io = dio, .zero_detection = MR_ZERO_PAGE_CHANNEL,
        .blocks = save ? &f->block : NULL, .nblocks = save ? 1 : 0,
        .engine = engine,
    };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_multifd *m = mr_multifd_new(&cfg, &err);

    if (!m)
        fail_msg("mr_multifd_new: %s", err.msg);
    return m;
}

static bool uring_available(void)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_io_engine *e = mr_io_engine_open("io_uring", 4, &err);

    mr_io_engine_close(e);
    return e != NULL;
}

static void save_all(struct mr_multifd *m)
{
    struct mr_error err = MR_ERROR_INIT;

    for (unsigned i = 0; i < NPAGES; i++)
        assert_int_equal(mr_multifd_queue_page(m, 0, i, &err), 0);
    assert_int_equal(mr_multifd_sync(m, &err), 0);
}

/* Bit set <=> the file holds the page; every non-zero page is stored. */
static void check_file(struct fixture *f)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    uint8_t *buf = malloc(PS);

    assert_true(fd >= 0);
    for (unsigned i = 0; i < NPAGES; i++) {
        bool set = mr_bitmap_test(f->bitmap, i);

        if (!page_should_be_zero(i))
            assert_true(set);
        if (!set)
            continue;
        assert_int_equal(pread(fd, buf, PS, PAGES_OFFSET + (off_t)i * PS), PS);
        if (memcmp(buf, f->ram + (size_t)i * PS, PS))
            fail_msg("page %u differs in the file", i);
    }
    free(buf);
    close(fd);
}

static void load_and_compare(struct fixture *f, unsigned nch, const char *engine,
                             bool dio)
{
    struct mr_multifd *m = pool_new(f, nch, engine, false, dio);
    struct mr_error err = MR_ERROR_INIT;
    uint8_t *dst = aligned_alloc(PS, (size_t)NPAGES * PS);
    uint64_t first, len;

    memset(dst, 0, (size_t)NPAGES * PS);
    for (uint64_t b = 0; mr_bitmap_next_run(f->bitmap, NPAGES, b, &first, &len);
         b = first + len) {
        /* Pieces of at most 1 MiB, as the loader cuts them. */
        for (uint64_t off = first * PS; off < (first + len) * PS;
             off += MAPPED_RAM_LOAD_BUF_SIZE) {
            uint64_t piece = (first + len) * PS - off;

            if (piece > MAPPED_RAM_LOAD_BUF_SIZE)
                piece = MAPPED_RAM_LOAD_BUF_SIZE;
            assert_int_equal(mr_multifd_queue_read(m, dst + off, piece,
                                                   PAGES_OFFSET + off, &err), 0);
        }
    }
    assert_int_equal(mr_multifd_sync(m, &err), 0);
    assert_memory_equal(dst, f->ram, (size_t)NPAGES * PS);
    mr_multifd_free(m);
    free(dst);
}

static void roundtrip(unsigned nch, const char *engine, unsigned zero_gap)
{
    struct fixture f;
    struct mr_multifd *m;
    struct mr_multifd_stats st;
    unsigned nzero = 0;

    fixture_init(&f, nch, O_RDWR);
    m = pool_new(&f, nch, engine, true, false);
    mr_multifd_set_zero_gap(m, zero_gap);
    save_all(m);
    mr_multifd_get_stats(m, &st);
    for (unsigned i = 0; i < NPAGES; i++)
        nzero += page_should_be_zero(i);
    assert_int_equal(st.normal_pages + st.zero_pages, NPAGES);
    if (zero_gap == 0)
        assert_int_equal(st.zero_pages, nzero);
    assert_int_equal(st.bytes_written, st.normal_pages * PS);
    assert_int_equal(mr_bitmap_count(f.bitmap, NPAGES), st.normal_pages);
    mr_multifd_free(m);
    check_file(&f);
    load_and_compare(&f, nch, engine, false);
    fixture_fini(&f);
}

/* Checksums between rounds of saves: save batches come back to the caller
 * through checksum jobs too (a channel hands its last batch back with
 * whatever job it takes next), and every extent's CRC is the one the
 * memory and bitmap give at that point. */
static void checksums_between_saves_on(unsigned nch)
{
    uint64_t next = mr_cksum_nr_extents((uint64_t)NPAGES * PS, PS);
    uint32_t *crc = calloc(next, sizeof(*crc));
    uint32_t *const crcs[1] = { crc };
    struct mr_error err = MR_ERROR_INIT;
    struct fixture f;
    struct mr_multifd *m;

    assert_non_null(crc);
    fixture_init(&f, nch, O_RDWR);
    m = pool_new(&f, nch, "psync", true, false);
    for (unsigned round = 0; round < 8; round++) {
        for (unsigned i = round * NPAGES / 8; i < (round + 1) * NPAGES / 8; i++)
            assert_int_equal(mr_multifd_queue_page(m, 0, i, &err), 0);
        memset(crc, 0, next * sizeof(*crc));
        assert_int_equal(mr_multifd_checksum(m, crcs, &err), 0);
        for (uint64_t e = 0; e < next; e++)
            assert_int_equal(crc[e], mr_cksum_extent(f.ram, PS, NPAGES, e,
                                                     mr_cksum_present_ulong,
                                                     f.bitmap));
    }
    mr_multifd_free(m);
    check_file(&f);
    fixture_fini(&f);
    free(crc);
}

static void checksums_between_saves(void **state)
{
    (void)state;
    checksums_between_saves_on(0);
    checksums_between_saves_on(1);
    checksums_between_saves_on(2);
}

static void save_load_psync(void **state)
{
    static const unsigned nchs[] = { 0, 1, 2, 4 };

    (void)state;
    for (size_t i = 0; i < 4; i++) {
        roundtrip(nchs[i], "psync", 0);
        roundtrip(nchs[i], "psync", MR_MULTIFD_ZERO_GAP_DEFAULT);
    }
}

static void save_load_uring(void **state)
{
    static const unsigned nchs[] = { 0, 1, 2, 4 };

    (void)state;
    if (!uring_available())
        skip();
    for (size_t i = 0; i < 4; i++) {
        roundtrip(nchs[i], "io_uring", 0);
        roundtrip(nchs[i], "io_uring", 8);
    }
}

static void save_load_default_engine(void **state)
{
    (void)state;
    roundtrip(2, NULL, MR_MULTIFD_ZERO_GAP_DEFAULT);
}

/* Without detection every page is written and every bit set. */
static void no_zero_detection(void **state)
{
    struct fixture f;
    struct mr_multifd_config cfg;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_multifd *m;
    struct mr_multifd_stats st;

    (void)state;
    fixture_init(&f, 2, O_RDWR);
    cfg = (struct mr_multifd_config){ .nchannels = 2, .fds = f.fds,
        .zero_detection = MR_ZERO_PAGE_NONE, .blocks = &f.block, .nblocks = 1 };
    m = mr_multifd_new(&cfg, &err);
    assert_non_null(m);
    save_all(m);
    mr_multifd_get_stats(m, &st);
    assert_int_equal(st.normal_pages, NPAGES);
    assert_int_equal(st.zero_pages, 0);
    assert_int_equal(mr_bitmap_count(f.bitmap, NPAGES), NPAGES);
    /* Few, large requests: one per batch. */
    assert_int_equal(st.requests, (NPAGES + BATCH_PAGES - 1) / BATCH_PAGES);
    mr_multifd_free(m);
    check_file(&f);
    fixture_fini(&f);
}

static void direct_io(void **state)
{
    struct fixture f;
    struct mr_multifd *m;
    int probe;

    (void)state;
    fixture_init(&f, 2, O_RDWR);
    probe = open(f.path, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (probe < 0) {
        fixture_fini(&f);
        skip();
    }
    close(probe);
    for (unsigned i = 0; i < 2; i++) {
        close(f.fds[i]);
        f.fds[i] = open(f.path, O_RDWR | O_DIRECT | O_CLOEXEC);
        assert_true(f.fds[i] >= 0);
    }
    m = pool_new(&f, 2, "psync", true, true);
    save_all(m);
    mr_multifd_free(m);
    check_file(&f);
    load_and_compare(&f, 2, "psync", true);
    if (uring_available()) {
        m = pool_new(&f, 2, "io_uring", true, true);
        save_all(m);
        mr_multifd_free(m);
        check_file(&f);
        load_and_compare(&f, 2, "io_uring", true);
    }
    fixture_fini(&f);
}

/* Pages as big as a batch (2 MiB) go one per batch. */
static void large_pages(void **state)
{
    const uint64_t ps = 2u << 20, n = 4;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_multifd_stats st;
    struct mr_multifd *m;
    struct fixture f;
    uint8_t *big = aligned_alloc(ps, n * ps), *buf = malloc(ps);
    unsigned long *bm = mr_bitmap_new(n);

    (void)state;
    fixture_init(&f, 2, O_RDWR);
    memset(big, 0, n * ps);
    memset(big, 1, ps);
    memset(big + 2 * ps, 2, ps);
    big[4 * ps - 1] = 3;
    f.block = (struct mr_multifd_block){ "big", big, n * ps, ps, ps, bm };
    m = pool_new(&f, 2, "psync", true, false);
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(mr_multifd_queue_page(m, 0, i, &err), 0);
    assert_int_equal(mr_multifd_sync(m, &err), 0);
    mr_multifd_get_stats(m, &st);
    assert_int_equal(st.normal_pages, 3);
    assert_int_equal(st.zero_pages, 1);
    assert_true(mr_bitmap_test(bm, 0));
    assert_false(mr_bitmap_test(bm, 1));
    assert_true(mr_bitmap_test(bm, 3));
    assert_int_equal(pread(f.fds[0], buf, ps, (off_t)(ps + 3 * ps)), (ssize_t)ps);
    assert_memory_equal(buf, big + 3 * ps, ps);
    mr_multifd_free(m);
    fixture_fini(&f);
    free(big);
    free(buf);
    free(bm);
}

static void read_past_eof(void **state)
{
    static const unsigned nchs[] = { 0, 2 };

    (void)state;
    for (size_t k = 0; k < 2; k++) {
        struct fixture f;
        struct mr_error err = MR_ERROR_INIT;
        struct mr_multifd *m;
        uint8_t *dst = aligned_alloc(PS, 2 * PS);

        fixture_init(&f, nchs[k], O_RDWR);
        assert_int_equal(ftruncate(f.fds[0], PAGES_OFFSET + PS / 2), 0);
        m = pool_new(&f, nchs[k], "psync", false, false);
        /* Channel 0 takes the first piece (round-robin from the start). */
        mr_multifd_queue_read(m, dst, 2 * PS, PAGES_OFFSET - PS, &err);
        assert_int_equal(mr_multifd_sync(m, &err), -EIO);
        assert_string_equal(err.msg, nchs[k]
                            ? "multifd recv (0): read 0x1800, expected 0x2000"
                            : "Partial read of size 6144, expected 8192");
        /* Sticky. */
        assert_int_equal(mr_multifd_queue_read(m, dst, PS, 0, NULL), -EIO);
        mr_multifd_free(m);
        free(dst);
        fixture_fini(&f);
    }
}

/* Channel 1's descriptor is read-only: its batch fails, sync reports it. */
static void write_error_on_one_channel(void **state)
{
    struct fixture f;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_multifd *m;
    int r = 0;

    (void)state;
    fixture_init(&f, 2, O_RDWR);
    close(f.fds[1]);
    f.fds[1] = open(f.path, O_RDONLY | O_CLOEXEC);
    m = pool_new(&f, 2, "psync", true, false);
    for (unsigned i = 0; i < NPAGES && r == 0; i++)
        r = mr_multifd_queue_page(m, 0, i, &err);
    r = mr_multifd_sync(m, &err);
    assert_int_equal(r, -EBADF);
    assert_string_equal(err.msg, "Unable to write to file: Bad file descriptor");
    mr_multifd_free(m);
    fixture_fini(&f);
}

static void bad_page_and_block(void **state)
{
    struct fixture f;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_multifd *m;

    (void)state;
    fixture_init(&f, 1, O_RDWR);
    m = pool_new(&f, 1, "psync", true, false);
    assert_int_equal(mr_multifd_queue_page(m, 0, NPAGES, &err), -EINVAL);
    assert_string_equal(err.msg, "offset 3e8000outside of ramblock pc.ram range");
    mr_multifd_free(m);
    m = pool_new(&f, 0, "psync", true, false);
    mr_error_clear(&err);
    assert_int_equal(mr_multifd_queue_page(m, 1, 0, &err), -EINVAL);
    assert_string_equal(err.msg, "multifd: no RAM block 1 (have 1)");
    mr_multifd_free(m);
    fixture_fini(&f);
}

static void bad_config(void **state)
{
    struct fixture f;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_multifd_config cfg;

    (void)state;
    fixture_init(&f, 1, O_RDWR);
    cfg = (struct mr_multifd_config){ .nchannels = 1, .fds = f.fds,
                                      .engine = "aio" };
    assert_null(mr_multifd_new(&cfg, &err));
    assert_int_equal(err.code, -EINVAL);
    assert_string_equal(err.msg,
                        "Unknown I/O engine 'aio' (expected auto, psync or io_uring)");
    mr_error_clear(&err);
    cfg = (struct mr_multifd_config){ .nchannels = 0, .sync_fd = -1 };
    assert_null(mr_multifd_new(&cfg, &err));
    assert_string_equal(err.msg, "multifd: no channels and no descriptor for "
                        "synchronous I/O");
    fixture_fini(&f);
}

static void cancel_stops(void **state)
{
    struct fixture f;
    struct mr_error err = MR_ERROR_INIT;
    struct mr_multifd *m;
    int r = 0;
    unsigned i;

    (void)state;
    fixture_init(&f, 2, O_RDWR);
    m = pool_new(&f, 2, "psync", true, false);
    for (i = 0; i < NPAGES / 2; i++)
        assert_int_equal(mr_multifd_queue_page(m, 0, i, &err), 0);
    mr_multifd_cancel(m);
    for (; i < NPAGES && r == 0; i++)
        r = mr_multifd_queue_page(m, 0, i, &err);
    assert_int_equal(r, -ECANCELED);
    assert_int_equal(mr_multifd_sync(m, NULL), -ECANCELED);
    assert_int_equal(mr_multifd_flush(m, NULL), -ECANCELED);
    assert_string_equal(err.msg, "multifd: cancelled");
    mr_multifd_free(m);
    fixture_fini(&f);
}

#ifdef MR_FAULT_INJECTION
/* Ordinals to try: every one at first, then a sample, so the loop stays
 * short but still runs until the plan no longer fires. */
static uint64_t next_nth(uint64_t n)
{
    return n < 8 ? n + 1 : n + 13;
}

/* Short, interrupted and EAGAIN transfers at the Nth page write or read,
 * N = 1, 2, ... until the fault stops firing: the data arrives whole. */
static void faults_recovered(void **state)
{
    static const enum mr_fault_kind kinds[] = { MR_FAULT_SHORT, MR_FAULT_EINTR,
                                                MR_FAULT_EAGAIN };
    static const enum mr_fault_op ops[] = { MR_FAULT_OP_WRITE, MR_FAULT_OP_READ };
    static const char *engines[] = { "psync", "io_uring" };

    (void)state;
    for (size_t e = 0; e < 2; e++) {
        if (e == 1 && !uring_available())
            break;
        for (size_t o = 0; o < 2; o++) {
            for (size_t k = 0; k < 3; k++) {
                for (uint64_t n = 1;; n = next_nth(n)) {
                    struct mr_fault_plan plan = { ops[o], n, kinds[k] };
                    unsigned fired;

                    mr_fault_set(&plan);
                    roundtrip(2, engines[e], MR_MULTIFD_ZERO_GAP_DEFAULT);
                    fired = mr_fault_fired();
                    mr_fault_set(NULL);
                    if (!fired)
                        break;
                }
            }
        }
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);

    return ls >= lx && !strcmp(s + ls - lx, suffix);
}

/* EIO at the Nth page write: sync reports it, nothing crashes or leaks. */
static void write_eio_loop_on(const char *engine)
{
    int fds = count_dir("/proc/self/fd");

    for (uint64_t n = 1;; n = next_nth(n)) {
        struct mr_fault_plan plan = { MR_FAULT_OP_WRITE, n, MR_FAULT_EIO };
        struct mr_error err = MR_ERROR_INIT;
        struct mr_multifd *m;
        struct fixture f;
        int r = 0;

        fixture_init(&f, 2, O_RDWR);
        m = pool_new(&f, 2, engine, true, false);
        mr_fault_set(&plan);
        for (unsigned i = 0; i < NPAGES && r == 0; i++)
            r = mr_multifd_queue_page(m, 0, i, &err);
        if (r == 0)
            r = mr_multifd_sync(m, &err);
        else
            assert_int_equal(mr_multifd_sync(m, NULL), r);
        mr_multifd_free(m);
        fixture_fini(&f);
        if (!mr_fault_fired()) {
            assert_int_equal(r, 0);
            break;
        }
        mr_fault_set(NULL);
        assert_int_equal(r, -EIO);
        assert_string_equal(err.msg, "Unable to write to file: Input/output error");
    }
    mr_fault_set(NULL);
    assert_int_equal(count_dir("/proc/self/fd"), fds);
}

static void write_eio_loop(void **state)
{
    (void)state;
    write_eio_loop_on("psync");
    if (uring_available())
        write_eio_loop_on("io_uring");
}

/* EIO on a page read names the channel and the sizes. */
static void read_eio(void **state)
{
    struct mr_fault_plan plan = { MR_FAULT_OP_READ, 1, MR_FAULT_EIO };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_multifd *m;
    struct fixture f;
    uint8_t *dst = aligned_alloc(PS, 4 * PS);

    (void)state;
    fixture_init(&f, 2, O_RDWR);
    assert_int_equal(ftruncate(f.fds[0], PAGES_OFFSET + 4 * PS), 0);
    m = pool_new(&f, 2, "psync", false, false);
    mr_fault_set(&plan);
    mr_multifd_queue_read(m, dst, 4 * PS, PAGES_OFFSET, &err);
    assert_int_equal(mr_multifd_sync(m, &err), -EIO);
    assert_int_equal(mr_fault_fired(), 1);
    mr_fault_set(NULL);
    assert_string_equal(err.msg, "multifd recv (0): read 0x0, expected 0x4000: "
                        "Input/output error");
    assert_true(ends_with(err.msg, "Input/output error"));
    mr_multifd_free(m);
    fixture_fini(&f);
    free(dst);
}

/*
 * The page reads a load performs, counted from the bitmap alone: one per
 * run of present pages, cut at each checksum extent's end (verified loads,
 * run_extent) or into 1 MiB pieces (plain loads, as the loader cuts them).
 */
static uint64_t expected_reads(const unsigned long *bitmap, bool verified)
{
    uint64_t per = mr_cksum_extent_pages(PS), n = 0, len = 0;

    for (unsigned i = 0; i <= NPAGES; i++) {
        bool set = i < NPAGES && mr_bitmap_test(bitmap, i);
        bool cut = verified && i % per == 0;

        if (len && (!set || cut)) {
            n += verified ? 1 : (len * PS + MAPPED_RAM_LOAD_BUF_SIZE - 1) /
                                MAPPED_RAM_LOAD_BUF_SIZE;
            len = 0;
        }
        len += set;
    }
    return n;
}

/* Queue every extent (verified) or every <= 1 MiB piece of every run
 * (plain) into `dst` over two channels; the pool's result. */
static int load_all(struct fixture *f, const char *engine, bool verified,
                    const uint8_t *le_bitmap, const uint32_t *crc,
                    uint8_t *dst, struct mr_error *err)
{
    struct mr_multifd *m = pool_new(f, 2, engine, false, false);
    struct mr_multifd_extent x = { "pc.ram", dst, PS, NPAGES, PAGES_OFFSET,
                                   le_bitmap, 0, 0 };
    uint64_t nr_ext = mr_cksum_nr_extents((uint64_t)NPAGES * PS, PS);
    uint64_t first, len;
    int r = 0;

    for (x.extent = 0; verified && !r && x.extent < nr_ext; x.extent++) {
        x.crc = crc[x.extent];
        r = mr_multifd_queue_extent(m, &x, err);
    }
    for (uint64_t b = 0; !verified && !r &&
         mr_bitmap_next_run(f->bitmap, NPAGES, b, &first, &len);
         b = first + len) {
        for (uint64_t off = first * PS; !r && off < (first + len) * PS;
             off += MAPPED_RAM_LOAD_BUF_SIZE) {
            uint64_t piece = (first + len) * PS - off;

            if (piece > MAPPED_RAM_LOAD_BUF_SIZE)
                piece = MAPPED_RAM_LOAD_BUF_SIZE;
            r = mr_multifd_queue_read(m, dst + off, piece, PAGES_OFFSET + off,
                                      err);
        }
    }
    r = r ? mr_multifd_sync(m, NULL) : mr_multifd_sync(m, err);
    mr_multifd_free(m);
    return r;
}

/*
 * EIO at the Nth page read, for every N: the load fails with the channel's
 * message, whichever channel and engine met it.  The plan stops firing
 * exactly one past the last read the bitmap implies, and only then does
 * the load succeed: an EIO is never lost, it can only fall past the end.
 */
static void read_eio_loop_on(const char *engine, bool verified)
{
    uint64_t nr_ext = mr_cksum_nr_extents((uint64_t)NPAGES * PS, PS);
    uint8_t *le = calloc(1, mr_bitmap_disk_bytes(NPAGES));
    uint32_t *crc = calloc(nr_ext, sizeof(*crc));
    uint8_t *dst = aligned_alloc(PS, (size_t)NPAGES * PS);
    struct mr_multifd *m;
    struct fixture f;
    uint64_t nreads, n;

    assert_true(le && crc && dst);
    fixture_init(&f, 2, O_RDWR);
    m = pool_new(&f, 2, "psync", true, false);
    mr_multifd_set_zero_gap(m, 0);      /* many runs, many reads */
    save_all(m);
    mr_multifd_free(m);
    mr_bitmap_to_le64(f.bitmap, NPAGES, le);
    for (uint64_t e = 0; e < nr_ext; e++)
        crc[e] = mr_cksum_extent(f.ram, PS, NPAGES, e, mr_cksum_present_ulong,
                                 f.bitmap);
    nreads = expected_reads(f.bitmap, verified);
    assert_true(nreads > 2 * nr_ext);
    for (n = 1;; n++) {
        struct mr_fault_plan plan = { MR_FAULT_OP_READ, n, MR_FAULT_EIO };
        struct mr_error err = MR_ERROR_INIT;
        unsigned fired;
        int r;

        memset(dst, 0, (size_t)NPAGES * PS);
        mr_fault_set(&plan);
        r = load_all(&f, engine, verified, le, crc, dst, &err);
        fired = mr_fault_fired();
        mr_fault_set(NULL);
        if (!fired) {
            assert_int_equal(r, 0);
            assert_memory_equal(dst, f.ram, (size_t)NPAGES * PS);
            break;
        }
        if (r != -EIO || strncmp(err.msg, "multifd recv (", 14) ||
            !ends_with(err.msg, ": Input/output error"))
            fail_msg("%s %s load, EIO at read %" PRIu64 ": %d %s", engine,
                     verified ? "verified" : "plain", n, r, err.msg);
    }
    assert_int_equal(n, nreads + 1);
    fixture_fini(&f);
    free(dst);
    free(crc);
    free(le);
}

static void read_eio_loop(void **state)
{
    (void)state;
    read_eio_loop_on("psync", true);
    read_eio_loop_on("psync", false);
    if (uring_available()) {
        read_eio_loop_on("io_uring", true);
        read_eio_loop_on("io_uring", false);
    }
}
#else
static void faults_recovered(void **state)
{
    (void)state;
    skip();
}

static void write_eio_loop(void **state)
{
    (void)state;
    skip();
}

static void read_eio(void **state)
{
    (void)state;
    skip();
}

static void read_eio_loop(void **state)
{
    (void)state;
    skip();
}
#endif

/* Runs last-but-one: nothing may be left behind by all of the above. */
static void no_fd_or_thread_leak(void **state)
{
    int fds = count_dir("/proc/self/fd");
    int tasks = count_dir("/proc/self/task");

    roundtrip(4, "psync", 4);
    if (uring_available())
        roundtrip(4, "io_uring", 4);
    assert_int_equal(count_dir("/proc/self/fd"), fds);
    assert_int_equal(count_dir("/proc/self/task"), tasks);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(save_load_psync),
        cmocka_unit_test(save_load_uring),
        cmocka_unit_test(save_load_default_engine),
        cmocka_unit_test(checksums_between_saves),
        cmocka_unit_test(no_zero_detection),
        cmocka_unit_test(direct_io),
        cmocka_unit_test(large_pages),
        cmocka_unit_test(read_past_eof),
        cmocka_unit_test(write_error_on_one_channel),
        cmocka_unit_test(bad_page_and_block),
        cmocka_unit_test(bad_config),
        cmocka_unit_test(cancel_stops),
        cmocka_unit_test(faults_recovered),
        cmocka_unit_test(write_eio_loop),
        cmocka_unit_test(read_eio),
        cmocka_unit_test(read_eio_loop),
        cmocka_unit_test(no_fd_or_thread_leak),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
