/*
 * The I/O engines on temp files: multi-iovec round trips, end of file, and
 * (in fault-injection builds) short, interrupted and failed transfers for
 * each engine, plus the mr_sys table.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/engine.h"
#include "io/fault.h"
#include "io/sys.h"

#define CHUNK 8192
#define NREQ 8

static const char *engines[] = { "psync", "io_uring" };

struct tmp {
    char path[64];
    int fd;
};

static void tmp_open(struct tmp *t)
{
    snprintf(t->path, sizeof(t->path), "/tmp/mr-engine-XXXXXX");
    t->fd = mkostemp(t->path, O_CLOEXEC);
    assert_true(t->fd >= 0);
}

static void tmp_close(struct tmp *t)
{
    close(t->fd);
    unlink(t->path);
}

static struct mr_io_engine *open_or_null(const char *name)
{
    struct mr_error err = MR_ERROR_INIT;

    return mr_io_engine_open(name, 4, &err);
}

/* NREQ requests, each two iovecs of CHUNK/2, at offsets k * CHUNK. */
static int write_pattern(struct mr_io_engine *e, int fd, uint8_t *src,
                         struct mr_io_req *reqs)
{
    static struct iovec iov[NREQ][2];

    for (int k = 0; k < NREQ; k++) {
        iov[k][0] = (struct iovec){ src + k * CHUNK, CHUNK / 2 };
        iov[k][1] = (struct iovec){ src + k * CHUNK + CHUNK / 2, CHUNK / 2 };
        mr_io_req_init(&reqs[k], fd, MR_IO_WRITE, (uint64_t)k * CHUNK, iov[k], 2);
    }
    return mr_io_run(e, reqs, NREQ);
}

static int read_back(struct mr_io_engine *e, int fd, uint8_t *dst)
{
    struct iovec iov = { dst, NREQ * CHUNK };
    struct mr_io_req req;

    mr_io_req_init(&req, fd, MR_IO_READ, 0, &iov, 1);
    return mr_io_run(e, &req, 1);
}

static uint8_t *pattern(void)
{
    uint8_t *p = malloc(NREQ * CHUNK);

    for (size_t i = 0; i < NREQ * CHUNK; i++)
        p[i] = (uint8_t)(i * 7 + i / 4096);
    return p;
}

static void roundtrip_one(const char *name)
{
    struct mr_io_engine *e = open_or_null(name);
    struct mr_io_req reqs[NREQ];
    uint8_t *src = pattern(), *dst = calloc(1, NREQ * CHUNK);
    struct tmp t;

    if (!e)
        return;            /* io_uring unavailable here */
    tmp_open(&t);
    assert_int_equal(write_pattern(e, t.fd, src, reqs), 0);
    for (int k = 0; k < NREQ; k++)
        assert_int_equal(reqs[k].done, CHUNK);
    assert_int_equal(read_back(e, t.fd, dst), 0);
    assert_memory_equal(src, dst, NREQ * CHUNK);
    assert_int_equal(e->ops->sync(e, t.fd), 0);
    mr_io_engine_close(e);
    tmp_close(&t);
    free(src);
    free(dst);
}

static void roundtrip(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2; i++)
        roundtrip_one(engines[i]);
}

static void read_eof(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        struct mr_io_engine *e = open_or_null(engines[i]);
        uint8_t buf[4096];
        struct iovec iov = { buf, sizeof(buf) };
        struct mr_io_req req;
        struct tmp t;

        if (!e)
            continue;
        tmp_open(&t);
        assert_int_equal(pwrite(t.fd, buf, 1000, 0), 1000);
        mr_io_req_init(&req, t.fd, MR_IO_READ, 0, &iov, 1);
        assert_int_equal(mr_io_run(e, &req, 1), -ENODATA);
        assert_int_equal(req.done, 1000);
        /* A bad descriptor is an error, not end of file. */
        mr_io_req_init(&req, -1, MR_IO_READ, 0, &iov, 1);
        assert_int_equal(mr_io_run(e, &req, 1), -EBADF);
        mr_io_engine_close(e);
        tmp_close(&t);
    }
}

static void find_engines(void **state)
{
    (void)state;
    assert_ptr_equal(mr_io_find("psync"), &mr_io_psync_ops);
    assert_ptr_equal(mr_io_find("io_uring"), &mr_io_uring_ops);
    assert_non_null(mr_io_find(NULL));
    assert_null(mr_io_find("libaio"));
}

/* "auto": its pure rule, and what it opens for buffered and O_DIRECT fds. */
static void auto_rule(void **state)
{
    (void)state;
    assert_string_equal(mr_io_auto_pick(-1), "psync");
    assert_string_equal(mr_io_auto_pick(O_RDWR), "psync");
    assert_string_equal(mr_io_auto_pick(O_WRONLY | O_APPEND), "psync");
    assert_string_equal(mr_io_auto_pick(O_RDWR | O_DIRECT), "io_uring");
    assert_ptr_equal(mr_io_find("auto"), &mr_io_psync_ops);
    assert_ptr_equal(mr_io_find(NULL), &mr_io_psync_ops);
}

static const struct mr_io_ops *auto_ops(int fd, unsigned depth)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_io_engine *e = mr_io_engine_open_fd("auto", depth, fd, &err);
    const struct mr_io_ops *ops;

    assert_non_null(e);
    assert_false(mr_error_is_set(&err));
    ops = e->ops;
    mr_io_engine_close(e);
    return ops;
}

static void auto_open(void **state)
{
    struct mr_io_engine *u = open_or_null("io_uring");
    struct mr_error err = MR_ERROR_INIT;
    struct tmp t;

    (void)state;
    tmp_open(&t);
    assert_ptr_equal(auto_ops(t.fd, 4), &mr_io_psync_ops);
    assert_ptr_equal(auto_ops(-1, 4), &mr_io_psync_ops);
    if (fcntl(t.fd, F_SETFL, O_DIRECT) == 0) {
        /* io_uring where the kernel allows a ring, psync where not */
        assert_ptr_equal(auto_ops(t.fd, 4),
                         u ? &mr_io_uring_ops : &mr_io_psync_ops);
        /* a ring this deep is refused (EINVAL): silent fall back */
        assert_null(mr_io_engine_open("io_uring", 1u << 20, &err));
        assert_true(mr_error_is_set(&err));
        assert_ptr_equal(auto_ops(t.fd, 1u << 20), &mr_io_psync_ops);
    }
    mr_io_engine_close(u);
    mr_error_clear(&err);
    assert_null(mr_io_engine_open_fd("aio", 4, t.fd, &err));
    assert_string_equal(err.msg, "Unknown I/O engine 'aio' (expected auto, "
                        "psync or io_uring)");
    tmp_close(&t);
}

#ifdef MR_FAULT_INJECTION
/* Recoverable faults: the data must still arrive whole. */
static void recover_one(const char *name, const char *spec)
{
    struct mr_io_engine *e = open_or_null(name);
    struct mr_io_req reqs[NREQ];
    struct mr_fault_plan plan;
    uint8_t *src = pattern(), *dst = calloc(1, NREQ * CHUNK);
    struct tmp t;

    if (!e)
        return;
    tmp_open(&t);
    assert_int_equal(mr_fault_parse(spec, &plan, NULL), 0);
    mr_fault_set(&plan);
    assert_int_equal(write_pattern(e, t.fd, src, reqs), 0);
    if (plan.op == MR_FAULT_OP_READ)
        assert_int_equal(read_back(e, t.fd, dst), 0);
    assert_int_equal(mr_fault_fired(), 1);
    mr_fault_set(NULL);
    if (plan.op == MR_FAULT_OP_WRITE)
        assert_int_equal(read_back(e, t.fd, dst), 0);
    assert_memory_equal(src, dst, NREQ * CHUNK);
    mr_io_engine_close(e);
    tmp_close(&t);
    free(src);
    free(dst);
}

static void faults_recovered(void **state)
{
    static const char *specs[] = { "write:1:short", "write:5:short",
                                   "write:3:eintr", "write:2:eagain",
                                   "read:1:short", "read:1:eintr" };

    (void)state;
    for (size_t i = 0; i < 2; i++)
        for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++)
            recover_one(engines[i], specs[s]);
}

static void faults_fail(void **state)
{
    static const struct { const char *spec; int code; } cases[] = {
        { "write:4:eio", -EIO }, { "write:1:enospc", -ENOSPC },
    };

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        for (size_t c = 0; c < 2; c++) {
            struct mr_io_engine *e = open_or_null(engines[i]);
            struct mr_io_req reqs[NREQ];
            struct mr_fault_plan plan;
            uint8_t *src = pattern();
            struct tmp t;
            int failed = 0;

            if (!e)
                continue;
            tmp_open(&t);
            mr_fault_parse(cases[c].spec, &plan, NULL);
            mr_fault_set(&plan);
            assert_int_equal(write_pattern(e, t.fd, src, reqs), cases[c].code);
            for (int k = 0; k < NREQ; k++)
                failed += reqs[k].result != 0;
            assert_int_equal(failed, 1);
            mr_fault_set(NULL);
            mr_io_engine_close(e);
            tmp_close(&t);
            free(src);
        }
    }
}

static void sys_table(void **state)
{
    const struct mr_sys *sys = mr_sys_default();
    struct mr_fault_plan plan = { MR_FAULT_OP_FTRUNCATE, 2, MR_FAULT_EIO };
    uint8_t *src = pattern(), *dst = calloc(1, NREQ * CHUNK);
    struct tmp t;

    (void)state;
    tmp_open(&t);
    mr_fault_set(&plan);
    assert_int_equal(sys->ftruncate(t.fd, 100), 0);
    assert_int_equal(sys->ftruncate(t.fd, 100), -1);
    assert_int_equal(errno, EIO);
    plan = (struct mr_fault_plan){ MR_FAULT_OP_PWRITE, 1, MR_FAULT_SHORT };
    mr_fault_set(&plan);
    assert_int_equal(mr_sys_pwrite_all(sys, t.fd, src, NREQ * CHUNK, 0), 0);
    assert_int_equal(mr_fault_fired(), 1);
    plan = (struct mr_fault_plan){ MR_FAULT_OP_PREAD, 1, MR_FAULT_SHORT };
    mr_fault_set(&plan);
    assert_int_equal(mr_sys_pread_all(sys, t.fd, dst, NREQ * CHUNK, 0),
                     NREQ * CHUNK);
    assert_memory_equal(src, dst, NREQ * CHUNK);
    plan = (struct mr_fault_plan){ MR_FAULT_OP_PWRITE, 1, MR_FAULT_ENOSPC };
    mr_fault_set(&plan);
    assert_int_equal(mr_sys_pwrite_all(sys, t.fd, src, 10, 0), -ENOSPC);
    plan = (struct mr_fault_plan){ MR_FAULT_OP_OPEN, 1, MR_FAULT_EIO };
    mr_fault_set(&plan);
    assert_int_equal(sys->open(t.path, O_RDONLY, 0), -1);
    assert_int_equal(errno, EIO);
    mr_fault_set(NULL);
    tmp_close(&t);
    free(src);
    free(dst);
}
#else
static void faults_recovered(void **state)
{
    (void)state;
    skip();
}

static void faults_fail(void **state)
{
    (void)state;
    skip();
}

static void sys_table(void **state)
{
    const struct mr_sys *sys = mr_sys_default();
    struct tmp t;
    int fd, flags;

    (void)state;
    tmp_open(&t);
    assert_int_equal(mr_sys_pwrite_all(sys, t.fd, "abc", 3, 5), 0);
    fd = sys->open(t.path, O_RDONLY, 0);
    assert_true(fd >= 0);
    flags = fcntl(fd, F_GETFD);
    assert_true(flags & FD_CLOEXEC);
    close(fd);
    tmp_close(&t);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(find_engines),
        cmocka_unit_test(auto_rule),
        cmocka_unit_test(auto_open),
        cmocka_unit_test(roundtrip),
        cmocka_unit_test(read_eof),
        cmocka_unit_test(faults_recovered),
        cmocka_unit_test(faults_fail),
        cmocka_unit_test(sys_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
