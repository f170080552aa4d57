/*
 * Unit tests for the fdset registry (src/lib/fdset/fdset.c, fdset_cmds.c):
 * every rule of docs/fdsets.md, on real descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "mapram/fdset.h"

static char tmp_path[] = "/tmp/mapram-fdset-XXXXXX";

static int setup(void **state)
{
    int fd = mkstemp(tmp_path);

    assert_true(fd >= 0);
    close(fd);
    *state = mr_fdset_registry_new();
    return 0;
}

static int teardown(void **state)
{
    mr_fdset_registry_free(*state);
    unlink(tmp_path);
    strcpy(tmp_path, "/tmp/mapram-fdset-XXXXXX");
    return 0;
}

static int open_tmp(int flags)
{
    int fd = open(tmp_path, flags | O_CLOEXEC);

    assert_true(fd >= 0);
    return fd;
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static int64_t add(struct mr_fdset_registry *reg, int fd, int64_t id)
{
    struct mr_error err = MR_ERROR_INIT;
    int64_t out = -1;

    assert_int_equal(mr_fdset_add_fd(reg, fd, id >= 0, id, NULL, &out, &err),
                     0);
    return out;
}

static char *query_text(struct mr_fdset_registry *reg)
{
    json_t *q = mr_fdset_query(reg);
    char *s = json_dumps(q, JSON_COMPACT);

    json_decref(q);
    return s;
}

static void lowest_free_id(void **state)
{
    struct mr_fdset_registry *reg = *state;
    struct mr_error err = MR_ERROR_INIT;

    assert_int_equal(add(reg, open_tmp(O_RDONLY), -1), 0);
    assert_int_equal(add(reg, open_tmp(O_RDONLY), 1), 1);
    assert_int_equal(add(reg, open_tmp(O_RDONLY), 3), 3);
    assert_int_equal(add(reg, open_tmp(O_RDONLY), -1), 2); /* {0,1,3} */
    assert_int_equal(mr_fdset_remove_fd(reg, 0, false, 0, &err), 0);
    assert_int_equal(add(reg, open_tmp(O_RDONLY), -1), 0); /* {1,2,3} */
    assert_int_equal(add(reg, open_tmp(O_RDONLY), -1), 4);
}

static void negative_id_is_refused(void **state)
{
    struct mr_fdset_registry *reg = *state;
    struct mr_error err = MR_ERROR_INIT;
    int fd = open_tmp(O_RDONLY);

    assert_int_equal(mr_fdset_add_fd(reg, fd, true, -3, NULL, NULL, &err),
                     -EINVAL);
    assert_string_equal(err.msg,
                        "Parameter 'fdset-id' expects a non-negative value");
    assert_false(fd_is_open(fd));
}

static void user_fds_are_capped(void **state)
{
    struct mr_fdset_registry *reg = *state;
    struct mr_error err = MR_ERROR_INIT;
    int i, fd;

    for (i = 0; i < 256; i++)
        add(reg, open_tmp(O_RDONLY), 7);
    fd = open_tmp(O_RDONLY);
    assert_int_equal(mr_fdset_add_fd(reg, fd, true, 7, NULL, NULL, &err),
                     -EMFILE);
    assert_string_equal(err.msg,
                        "Too many file descriptors in fdsets (limit 256)");
    assert_false(fd_is_open(fd));
    /* Removing frees room again. */
    assert_int_equal(mr_fdset_remove_fd(reg, 7, false, 0, NULL), 0);
    add(reg, open_tmp(O_RDONLY), 7);
}

static void query_order_and_opaque(void **state)
{
    struct mr_fdset_registry *reg = *state;
    int a = open_tmp(O_RDONLY), b = open_tmp(O_RDONLY), c = open_tmp(O_RDONLY);
    char expect[256], *got;

    assert_int_equal(mr_fdset_add_fd(reg, a, true, 1, "first", NULL, NULL), 0);
    assert_int_equal(mr_fdset_add_fd(reg, b, true, 1, NULL, NULL, NULL), 0);
    assert_int_equal(add(reg, c, -1), 0);
    /* Sets by descending id, descriptors oldest first. */
    snprintf(expect, sizeof(expect),
             "[{\"fdset-id\":1,\"fds\":[{\"fd\":%d,\"opaque\":\"first\"},"
             "{\"fd\":%d}]},{\"fdset-id\":0,\"fds\":[{\"fd\":%d}]}]", a, b, c);
    got = query_text(reg);
    assert_string_equal(got, expect);
    free(got);
}

static void remove_rules(void **state)
{
    struct mr_fdset_registry *reg = *state;
    struct mr_error err = MR_ERROR_INIT;
    int a = open_tmp(O_RDONLY), b = open_tmp(O_RDONLY);
    char *got;

    add(reg, a, 5);
    add(reg, b, 5);
    assert_int_equal(mr_fdset_remove_fd(reg, 5, true, 999, &err), -ENOENT);
    assert_string_equal(err.msg,
                        "File descriptor named 'fdset-id:5, fd:999' not found");
    mr_error_clear(&err);
    assert_int_equal(mr_fdset_remove_fd(reg, 6, true, a, &err), -ENOENT);
    mr_error_clear(&err);
    assert_int_equal(mr_fdset_remove_fd(reg, 6, false, 0, &err), -ENOENT);
    assert_string_equal(err.msg, "File descriptor named 'fdset-id:6' not found");
    /* Honoured immediately: closed now, the other stays. */
    assert_int_equal(mr_fdset_remove_fd(reg, 5, true, a, NULL), 0);
    assert_false(fd_is_open(a));
    assert_true(fd_is_open(b));
    assert_int_equal(mr_fdset_remove_fd(reg, 5, false, 0, NULL), 0);
    assert_false(fd_is_open(b));
    got = query_text(reg);
    assert_string_equal(got, "[]");
    free(got);
}

static void duplicates_keep_the_set_alive(void **state)
{
    struct mr_fdset_registry *reg = *state;
    struct mr_error err = MR_ERROR_INIT;
    int w = open_tmp(O_WRONLY), dup;
    char *got;

    add(reg, w, 2);
    dup = mr_fdset_open(reg, "/dev/fdset/2", O_WRONLY | O_CREAT, &err);
    assert_true(dup >= 0);
    assert_true(fcntl(dup, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(mr_fdset_remove_fd(reg, 2, false, 0, NULL), 0);
    assert_false(fd_is_open(w));
    assert_true(fd_is_open(dup));
    got = query_text(reg); /* listed with no user fds */
    assert_string_equal(got, "[{\"fdset-id\":2,\"fds\":[]}]");
    free(got);
    /* Removing all from a set with only duplicates: a no-op success. */
    assert_int_equal(mr_fdset_remove_fd(reg, 2, false, 0, &err), 0);
    mr_fdset_reap_empty(reg); /* not empty: it still has the duplicate */
    got = query_text(reg);
    assert_string_equal(got, "[{\"fdset-id\":2,\"fds\":[]}]");
    free(got);
    assert_int_equal(mr_fdset_close(reg, dup), 0);
    assert_false(fd_is_open(dup));
    got = query_text(reg);
    assert_string_equal(got, "[]");
    free(got);
}

static void reap_drops_only_empty_sets(void **state)
{
    struct mr_fdset_registry *reg = *state;
    int w = open_tmp(O_WRONLY), dup;
    char *got, expect[64];

    add(reg, w, 0);
    dup = mr_fdset_open(reg, "/dev/fdset/0", O_WRONLY, NULL);
    assert_true(dup >= 0);
    mr_fdset_reap_empty(reg);
    snprintf(expect, sizeof(expect), "[{\"fdset-id\":0,\"fds\":[{\"fd\":%d}]}]",
             w);
    got = query_text(reg);
    assert_string_equal(got, expect);
    free(got);
    assert_int_equal(mr_fdset_remove_fd(reg, 0, true, w, NULL), 0);
    assert_int_equal(mr_fdset_close(reg, dup), 0);
    got = query_text(reg);
    assert_string_equal(got, "[]");
    free(got);
}

static void open_parse_errors(void **state)
{
    static const char *const bad[] = {
        "/dev/fdset/", "/dev/fdset/abc", "/dev/fdset/1x", "/dev/fdset/-1",
        "/dev/fdset/99999999999", "/dev/fdset/2147483648",
    };
    struct mr_fdset_registry *reg = *state;
    struct mr_error err;
    char expect[128];
    size_t i;

    assert_true(mr_fdset_path_is_fdset("/dev/fdset/1"));
    assert_false(mr_fdset_path_is_fdset("/dev/fdsetx"));
    assert_false(mr_fdset_path_is_fdset("/tmp/file"));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mr_error_clear(&err);
        assert_int_equal(mr_fdset_open(reg, bad[i], O_RDONLY, &err), -EINVAL);
        snprintf(expect, sizeof(expect), "Could not parse fdset %s", bad[i]);
        assert_string_equal(err.msg, expect);
    }
    mr_error_clear(&err);
    assert_int_equal(mr_fdset_open(reg, "/dev/fdset/7", O_RDONLY, &err),
                     -ENOENT);
    assert_string_equal(err.msg, "Failed to find fdset /dev/fdset/7");
}

static void open_matching(void **state)
{
    struct mr_fdset_registry *reg = *state;
    struct mr_error err = MR_ERROR_INIT;
    int r1 = open_tmp(O_RDONLY), rw = open_tmp(O_RDWR), r2 = open_tmp(O_RDONLY);
    int dup;

    add(reg, r1, 1);
    add(reg, rw, 1);
    add(reg, r2, 1);
    assert_int_equal(mr_fdset_open(reg, "/dev/fdset/1", O_WRONLY | O_CREAT,
                                   &err), -EACCES);
    assert_string_equal(err.msg,
                        "Failed to find file descriptor with matching flags=0x41");
    /* Newest matching first: r2 shares its file description with the dup. */
    dup = mr_fdset_open(reg, "/dev/fdset/1", O_RDONLY, NULL);
    assert_true(dup >= 0);
    assert_int_equal(lseek(r2, 7, SEEK_SET), 7);
    assert_int_equal(lseek(dup, 0, SEEK_CUR), 7);
    assert_int_equal(lseek(r1, 0, SEEK_CUR), 0);
    assert_int_equal(mr_fdset_close(reg, dup), 0);
    /* Plain descriptors are just closed. */
    assert_int_equal(mr_fdset_close(reg, open_tmp(O_RDONLY)), 0);
}

static void open_applies_flags_and_truncates(void **state)
{
    struct mr_fdset_registry *reg = *state;
    struct mr_error err = MR_ERROR_INIT;
    int w = open_tmp(O_WRONLY | O_APPEND), dup;
    struct stat st;

    assert_int_equal(write(w, "hello", 5), 5);
    add(reg, w, 1);
    dup = mr_fdset_open(reg, "/dev/fdset/1", O_WRONLY, NULL);
    assert_true(dup >= 0);
    /* F_SETFL acts on the shared description: O_APPEND is gone for both. */
    assert_false(fcntl(w, F_GETFL) & O_APPEND);
    assert_int_equal(fstat(dup, &st), 0);
    assert_int_equal(st.st_size, 5);
    mr_fdset_close(reg, dup);
    dup = mr_fdset_open(reg, "/dev/fdset/1", O_WRONLY | O_TRUNC, NULL);
    assert_true(dup >= 0);
    assert_int_equal(fstat(dup, &st), 0);
    assert_int_equal(st.st_size, 0);
    mr_fdset_close(reg, dup);
    assert_int_equal(mr_fdset_open(reg, "/dev/fdset/1", O_WRONLY | O_SYNC,
                                   &err), -EINVAL);
    {
        char expect[80];

        snprintf(expect, sizeof(expect),
                 "Failed to dup() given file descriptor fd=%d", w);
        assert_string_equal(err.msg, expect);
    }
}

static void open_matches_o_direct(void **state)
{
    struct mr_fdset_registry *reg = *state;
    struct mr_error err = MR_ERROR_INIT;
    int plain, direct, dup;
    char dir_path[] = "mapram-fdset-direct-XXXXXX";
    int tfd = mkstemp(dir_path);

    /* tmpfs may refuse O_DIRECT; the build directory usually does not. */
    assert_true(tfd >= 0);
    close(tfd);
    direct = open(dir_path, O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (direct < 0) {
        unlink(dir_path);
        skip();
    }
    plain = open(dir_path, O_WRONLY | O_CLOEXEC);
    assert_true(plain >= 0);
    add(reg, direct, 1);
    add(reg, plain, 1); /* newest, but without O_DIRECT */
    dup = mr_fdset_open(reg, "/dev/fdset/1", O_WRONLY | O_DIRECT, &err);
    assert_true(dup >= 0);
    assert_true(fcntl(dup, F_GETFL) & O_DIRECT);
    mr_fdset_close(reg, dup);
    dup = mr_fdset_open(reg, "/dev/fdset/1", O_WRONLY | O_CREAT, &err);
    assert_true(dup >= 0);
    assert_false(fcntl(dup, F_GETFL) & O_DIRECT);
    mr_fdset_close(reg, dup);
    assert_int_equal(mr_fdset_open(reg, "/dev/fdset/1", O_RDONLY | O_DIRECT,
                                   &err), -EACCES);
    assert_string_equal(err.msg,
                        "Failed to find file descriptor with matching flags=0x4000");
    unlink(dir_path);
}

static void list_snapshot(void **state)
{
    struct mr_fdset_registry *reg = *state;
    struct mr_error err = MR_ERROR_INIT;
    int r = open_tmp(O_RDONLY), w = open_tmp(O_WRONLY), fds[1], flags[1];

    add(reg, r, 4);
    add(reg, w, 4);
    assert_int_equal(mr_fdset_list(reg, 4, fds, flags, 1, &err), 2);
    assert_int_equal(fds[0], w); /* newest first */
    assert_int_equal(flags[0] & O_ACCMODE, O_WRONLY);
    assert_int_equal(mr_fdset_list(reg, 9, fds, flags, 1, &err), -ENOENT);
    assert_string_equal(err.msg, "Failed to find fdset /dev/fdset/9");
}

static void add_fd_option(void **state)
{
    static const char *const cases[][2] = {
        { "set=1", "fd option is required and must be non-negative" },
        { "fd=-4,set=1", "fd option is required and must be non-negative" },
        { "fd=2,set=1", "fd cannot be a standard I/O stream" },
        { "fd=999,set=1", "fd is not valid or already in use" },
        { "fd=x,set=1", "Parameter 'fd' expects a number" },
        { "fd=5,color=red", "Invalid parameter 'color'" },
    };
    struct mr_fdset_registry *reg = *state;
    struct mr_error err;
    char opt[64], expect[128], *got;
    int inherited, cloexec;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mr_error_clear(&err);
        assert_true(mr_fdset_add_fd_option(reg, cases[i][0], &err) < 0);
        assert_string_equal(err.msg, cases[i][1]);
    }
    cloexec = open_tmp(O_RDONLY);
    snprintf(opt, sizeof(opt), "fd=%d,set=1", cloexec);
    mr_error_clear(&err);
    assert_true(mr_fdset_add_fd_option(reg, opt, &err) < 0);
    assert_string_equal(err.msg, "fd is not valid or already in use");
    close(cloexec);
    inherited = open(tmp_path, O_RDONLY); /* as if inherited: no CLOEXEC */
    assert_true(inherited >= 0);
    snprintf(opt, sizeof(opt), "fd=%d", inherited);
    mr_error_clear(&err);
    assert_true(mr_fdset_add_fd_option(reg, opt, &err) < 0);
    assert_string_equal(err.msg,
                        "set option is required and must be non-negative");
    snprintf(opt, sizeof(opt), "fd=%d,set=3,opaque=rw", inherited);
    assert_int_equal(mr_fdset_add_fd_option(reg, opt, NULL), 0);
    got = query_text(reg);
    assert_memory_equal(got, "[{\"fdset-id\":3,\"fds\":[{\"fd\":", 26);
    assert_non_null(strstr(got, "\"opaque\":\"rw\""));
    assert_null(strstr(got, opt + 3)); /* a duplicate, not the original */
    free(got);
    assert_true(fd_is_open(inherited));
    close(inherited);
    (void)expect;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(lowest_free_id),
        T(negative_id_is_refused),
        T(user_fds_are_capped),
        T(query_order_and_opaque),
        T(remove_rules),
        T(duplicates_keep_the_set_alive),
        T(reap_drops_only_empty_sets),
        T(open_parse_errors),
        T(open_matching),
        T(open_applies_flags_and_truncates),
        T(open_matches_o_direct),
        T(list_snapshot),
        T(add_fd_option),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
