/* Unit tests: the userfaultfd wrapper's poisoning (a failed lazy load
 * withholds memory with it) and the up-front backend probe.  Skipped
 * where userfaultfd or UFFDIO_POISON is unavailable. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "migration/uffd.h"

#define PAGES 16
#define PS 4096

struct area {
    int fd;
    uint8_t *mem;
};

static int open_area(struct area *a)
{
    struct mr_error err = MR_ERROR_INIT;

    a->fd = mr_uffd_open(&err);
    if (a->fd < 0)
        return -1;
    a->mem = mmap(NULL, PAGES * PS, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(a->mem != MAP_FAILED);
    assert_int_equal(mr_uffd_register(a->fd, a->mem, PAGES * PS, "t", &err),
                     0);
    return 0;
}

static void close_area(struct area *a)
{
    close(a->fd);
    munmap(a->mem, PAGES * PS);
}

/* Can the kernel read the page (as write(2) of it to a pipe does)? */
static int kernel_reads(const uint8_t *p)
{
    int fds[2];
    ssize_t n;
    int e;

    assert_int_equal(pipe(fds), 0);
    n = write(fds[1], p, PS);
    e = errno;
    close(fds[0]);
    close(fds[1]);
    return n == PS ? 0 : -e;
}

/* Pages installed before keep their data; the rest fail every access. */
static void poison_keeps_installed(void **state)
{
    static uint8_t page[PS];
    struct area a;
    int rc;

    (void)state;
    if (open_area(&a))
        skip();
    memset(page, 0xab, sizeof(page));
    assert_int_equal(mr_uffd_copy(a.fd, a.mem + 3 * PS, page, PS, PS), 0);
    rc = mr_uffd_poison(a.fd, a.mem, PAGES * PS);
    if (rc == -ENOTTY || rc == -EINVAL) {
        close_area(&a);
        skip();                 /* before Linux 6.6 */
    }
    assert_int_equal(rc, 0);
    assert_int_equal(a.mem[3 * PS + 100], 0xab);
    assert_int_equal(kernel_reads(a.mem + 3 * PS), 0);
    for (int i = 0; i < PAGES; i++)
        if (i != 3)
            assert_int_equal(kernel_reads(a.mem + i * PS), -EFAULT);
    assert_int_not_equal(madvise(a.mem + 5 * PS, PS, MADV_POPULATE_WRITE), 0);
    close_area(&a);
}

struct sleeper {
    uint8_t *page;
    int rc, err;
};

static void *sleep_on_page(void *arg)
{
    struct sleeper *s = arg;

    s->rc = madvise(s->page, PS, MADV_POPULATE_WRITE);
    s->err = errno;
    return NULL;
}

/* A thread asleep on a missing page that nobody serves wakes when it is
 * poisoned, with an error rather than data. */
static void poison_wakes_sleeper(void **state)
{
    struct sleeper s = { 0 };
    struct area a;
    pthread_t t;
    uint64_t addr = 0;
    struct pollfd p;

    (void)state;
    if (open_area(&a))
        skip();
    s.page = a.mem + 7 * PS;
    assert_int_equal(pthread_create(&t, NULL, sleep_on_page, &s), 0);
    p.fd = a.fd;
    p.events = POLLIN;
    assert_int_equal(poll(&p, 1, -1), 1);
    assert_int_equal(mr_uffd_read_fault(a.fd, &addr), 1);
    assert_true(addr == (uintptr_t)s.page);
    if (mr_uffd_poison(a.fd, a.mem, PAGES * PS)) {
        mr_uffd_zero(a.fd, a.mem, PAGES * PS, PS);   /* release it */
        pthread_join(t, NULL);
        close_area(&a);
        skip();
    }
    pthread_join(t, NULL);
    assert_int_equal(s.rc, -1);
    assert_true(s.err == EHWPOISON || s.err == EFAULT);
    close_area(&a);
}

/* The probe accepts anonymous memory, refuses a regular file's mapping
 * and other page sizes, naming the block. */
static void probe_kinds(void **state)
{
    char path[] = "/tmp/mapram-uffd-XXXXXX";
    struct mr_error err = MR_ERROR_INIT;
    struct mr_ram_block b = { .name = "pc.ram", .used_length = PAGES * PS,
                              .page_size = PS };
    int probe_fd = mr_uffd_open(&err), fd;
    uint8_t *anon;

    (void)state;
    if (probe_fd < 0)
        skip();
    close(probe_fd);
    anon = mmap(NULL, PAGES * PS, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(anon != MAP_FAILED);
    b.host = anon;
    assert_int_equal(mr_uffd_probe(&b, 1, &err), 0);
    /* registration ended: the memory works as before */
    anon[0] = 1;
    b.page_size = 8192;
    assert_int_equal(mr_uffd_probe(&b, 1, &err), -EINVAL);
    assert_string_equal(err.msg, "RAM block pc.ram: lazy load needs 4 KiB "
                        "pages");
    mr_error_clear(&err);
    munmap(anon, PAGES * PS);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(ftruncate(fd, PAGES * PS), 0);
    b.host = mmap(NULL, PAGES * PS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(b.host != MAP_FAILED);
    b.page_size = PS;
    /* /tmp on tmpfs can be registered; on a disk file system it cannot */
    if (mr_uffd_probe(&b, 1, &err))
        assert_non_null(strstr(err.msg, "RAM block pc.ram cannot be loaded "
                               "lazily"));
    munmap(b.host, PAGES * PS);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(poison_keeps_installed),
        cmocka_unit_test(poison_wakes_sleeper),
        cmocka_unit_test(probe_kinds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
