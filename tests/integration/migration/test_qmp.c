/*
 * The migration commands over a real QMP socket: an in-process monitor
 * with the fdset and migration commands in front of a fake VM, driven by
 * the QMP client like a management layer would (docs/qmp.md, the seed
 * fdset scenarios of docs/test-guest.md, "The four seed scenarios" without a VM host).
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
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_vm.h"
#include "scratch.h"
#include "mapram/fdset.h"
#include "mapram/migration.h"
#include "mapram/qmp.h"
#include "mapram/qmp_client.h"

#define PAGES0 1024
#define PAGES1 64

static char tmpdir[256];
static bool have_odirect;

struct side {
    struct fake_vm vm;
    struct mr_fdset_registry *reg;
    struct mr_qmp_server *srv;
    struct mr_migration *mig;
    struct mr_qmp_client *c;
    char sock[300];
};

/* The engine's events to the test monitor's clients (as mapram-vm). */
static void forward_event(void *opaque, const char *name, json_t *data)
{
    mr_qmp_server_emit_event(opaque, name, json_incref(data));
}

static void side_up(struct side *s, const char *name, bool fill,
                    enum mr_runstate run)
{
    struct mr_qmp_server_config cfg = { 10, 0, 0, "" };
    struct mr_error err = MR_ERROR_INIT;

    fake_vm_init(&s->vm, PAGES0, PAGES1, fill, run);
    s->reg = mr_fdset_registry_new();
    s->srv = mr_qmp_server_new(&cfg, &err);
    assert_non_null(s->srv);
    s->mig = mr_migration_new(&fake_vm_ops, &s->vm, s->vm.blocks, FAKE_NBLOCKS,
                              s->reg, &err);
    assert_non_null(s->mig);
    mr_migration_on_event(s->mig, forward_event, s->srv);
    snprintf(s->sock, sizeof(s->sock), "%s/%s.sock", tmpdir, name);
    assert_int_equal(mr_fdset_register_commands(s->reg, s->srv, &err), 0);
    assert_int_equal(mr_migration_register_commands(s->mig, s->srv, &err), 0);
    assert_int_equal(mr_qmp_server_listen_unix(s->srv, s->sock, &err), 0);
    assert_int_equal(mr_qmp_server_start(s->srv, &err), 0);
    s->c = mr_qmp_client_connect(s->sock, 5000, &err);
    if (!s->c)
        fail_msg("connect: %s", err.msg);
}

static void side_down(struct side *s)
{
    mr_qmp_client_close(s->c);
    /* A job's thread may still be emitting its last event through the
     * server after query-migrate showed the state: join it first. */
    mr_migration_join(s->mig, true);
    mr_migration_join(s->mig, false);
    mr_qmp_server_free(s->srv);
    mr_migration_free(s->mig);
    mr_fdset_registry_free(s->reg);
    fake_vm_destroy(&s->vm);
}

/* Run a command that must succeed. */
static json_t *ok(struct side *s, const char *cmd, const char *args_json)
{
    struct mr_error err = MR_ERROR_INIT;
    json_t *args = args_json ? json_loads(args_json, 0, NULL) : NULL;
    json_t *r = mr_qmp_client_execute(s->c, cmd, args, NULL, 0, 10000, &err);

    if (!r)
        fail_msg("%s %s: %s", cmd, args_json ? args_json : "", err.msg);
    return r;
}

/* Run a command that must fail; returns its desc. */
static const char *bad(struct side *s, const char *cmd, const char *args_json)
{
    static struct mr_error err;
    json_t *args = args_json ? json_loads(args_json, 0, NULL) : NULL;
    json_t *r;

    mr_error_clear(&err);
    r = mr_qmp_client_execute(s->c, cmd, args, NULL, 0, 10000, &err);
    if (r)
        fail_msg("%s %s unexpectedly succeeded", cmd, args_json);
    return err.msg;
}

static char *hmp(struct side *s, const char *line)
{
    json_t *o = json_pack("{s:s}", "command-line", line);
    char *args = json_dumps(o, 0);
    json_t *r = ok(s, "human-monitor-command", args);
    char *text = strdup(json_string_value(r));

    json_decref(r);
    json_decref(o);
    free(args);
    return text;
}

static void test_caps_and_params(void **state)
{
    struct side s;
    json_t *r;
    char *text;

    (void)state;
    side_up(&s, "params", false, MR_RUN_RUNNING);
    r = ok(&s, "query-migrate-capabilities", NULL);
    assert_int_equal(json_array_size(r), 22);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r, 21),
                        "capability")), "mapped-ram");
    assert_true(json_is_false(json_object_get(json_array_get(r, 0), "state")));
    json_decref(r);
    assert_string_equal(bad(&s, "migrate-set-capabilities",
        "{\"capabilities\": [{\"capability\": \"mapped-ram\", \"state\": true},"
        " {\"capability\": \"xbzrle\", \"state\": true}]}"),
        "Mapped-ram migration is incompatible with xbzrle");
    r = ok(&s, "query-migrate-capabilities", NULL);
    assert_true(json_is_false(json_object_get(json_array_get(r, 21), "state")));
    json_decref(r);
    assert_string_equal(bad(&s, "migrate-set-parameters",
                            "{\"multifd-channels\": 0}"),
                        "Parameter 'multifd_channels' expects a value between "
                        "1 and 255");
    assert_string_equal(bad(&s, "migrate-set-parameters",
                            "{\"multifd-channels\": 256}"),
                        "Parameter 'multifd-channels' expects uint8_t");
    json_decref(ok(&s, "migrate-set-parameters",
                   "{\"multifd-channels\": 4, \"direct-io\": true}"));
    r = ok(&s, "query-migrate-parameters", NULL);
    assert_int_equal(json_integer_value(json_object_get(r, "multifd-channels")),
                     4);
    assert_true(json_is_true(json_object_get(r, "direct-io")));
    json_decref(r);
    text = hmp(&s, "info migrate_parameters");
    assert_non_null(strstr(text, "multifd-channels: 4\r\n"));
    assert_non_null(strstr(text, "\r\ndirect-io: on\r\n"));
    assert_non_null(strstr(text, "announce-initial: 50 ms\r\nannounce-max"));
    free(text);
    text = hmp(&s, "migrate_set_parameter max-bandwidth 1G");
    assert_string_equal(text, "");
    free(text);
    text = hmp(&s, "migrate_set_parameter multifd-channels 0");
    assert_string_equal(text, "Error: Parameter 'multifd_channels' expects a "
                        "value between 1 and 255\r\n");
    free(text);
    text = hmp(&s, "migrate_set_capability bogus on");
    assert_string_equal(text, "Error: invalid parameter value: bogus\r\n");
    free(text);
    text = hmp(&s, "migrate_set_capability mapped-ram maybe");
    assert_string_equal(text, "Expected 'on' or 'off'\r\n");
    free(text);
    text = hmp(&s, "migrate_set_capability mapped-ram on");
    assert_string_equal(text, "");
    free(text);
    text = hmp(&s, "info migrate_capabilities");
    assert_non_null(strstr(text, "xbzrle: off\r\n"));
    assert_non_null(strstr(text, "mapped-ram: on\r\n"));
    free(text);
    r = ok(&s, "query-migrate-parameters", NULL);
    assert_int_equal(json_integer_value(json_object_get(r, "max-bandwidth")),
                     1 << 30);
    json_decref(r);
    assert_string_equal(bad(&s, "migrate", "{}"),
                        "need either 'uri' or 'channels' argument");
    assert_string_equal(bad(&s, "migrate", "{\"uri\": \"tcp:h:1\"}"),
                        "Migration requires seekable transport (e.g. file)");
    assert_string_equal(bad(&s, "migrate-incoming", "{\"uri\": \"file:/x\"}"),
                        "'-incoming' was not specified on the command line");
    r = ok(&s, "query-migrate", NULL);
    assert_int_equal(json_object_size(r), 0);
    json_decref(r);
    side_down(&s);
}

static void add_fd(struct side *s, const char *path, int flags)
{
    struct mr_error err = MR_ERROR_INIT;
    int fd = open(path, flags | O_CLOEXEC);
    json_t *r;

    assert_true(fd >= 0);
    r = mr_qmp_client_execute(s->c, "add-fd", json_pack("{s:i}", "fdset-id", 1),
                              &fd, 1, 10000, &err);
    if (!r)
        fail_msg("add-fd: %s", err.msg);
    json_decref(r);
    close(fd);
}

static void wait_status(struct side *s, const char *want)
{
    for (int i = 0; i < 20000; i++) {
        json_t *r = ok(s, "query-migrate", NULL);
        const char *st = json_string_value(json_object_get(r, "status"));

        if (st && strcmp(st, want) == 0) {
            json_decref(r);
            return;
        }
        if (st && strcmp(st, "failed") == 0)
            fail_msg("migration failed: %s", json_string_value(
                     json_object_get(r, "error-desc")));
        json_decref(r);
        usleep(1000);
    }
    fail_msg("timeout waiting for %s", want);
}

static void common_hook(struct side *s)
{
    json_decref(ok(s, "migrate-set-capabilities", "{\"capabilities\": "
                   "[{\"capability\": \"events\", \"state\": true}]}"));
    json_decref(ok(s, "migrate-set-capabilities", "{\"capabilities\": "
                   "[{\"capability\": \"mapped-ram\", \"state\": true}]}"));
    json_decref(ok(s, "migrate-set-parameters", "{\"multifd-channels\": 4}"));
    json_decref(ok(s, "migrate-set-capabilities", "{\"capabilities\": "
                   "[{\"capability\": \"multifd\", \"state\": true}]}"));
}

static void run_fdset(bool dio)
{
    struct side src, dst;
    char path[400];
    char hdr[4096];
    uint8_t check[4104];
    struct mr_error err = MR_ERROR_INIT;
    json_t *r;
    int fd;

    snprintf(path, sizeof(path), "%s/migfile-fdset%s", tmpdir, dio ? "-dio" : "");
    fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    memset(hdr, 'X', sizeof(hdr));
    assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
    close(fd);

    side_up(&src, dio ? "src-dio" : "src", true, MR_RUN_PAUSED);
    add_fd(&src, path, O_WRONLY);
    add_fd(&src, path, O_WRONLY | (dio ? O_DIRECT : 0));
    common_hook(&src);
    if (dio)
        json_decref(ok(&src, "migrate-set-parameters", "{\"direct-io\": true}"));
    json_decref(ok(&src, "migrate",
                   "{\"uri\": \"file:/dev/fdset/1,offset=4096\"}"));
    wait_status(&src, "completed");
    json_decref(ok(&src, "remove-fd", "{\"fdset-id\": 1}"));
    r = ok(&src, "query-fdsets", NULL);
    assert_int_equal(json_array_size(r), 0);
    json_decref(r);

    side_up(&dst, dio ? "dst-dio" : "dst", false, MR_RUN_INMIGRATE);
    add_fd(&dst, path, O_RDONLY);
    add_fd(&dst, path, O_RDONLY | (dio ? O_DIRECT : 0));
    common_hook(&dst);
    if (dio)
        json_decref(ok(&dst, "migrate-set-parameters", "{\"direct-io\": true}"));
    json_decref(ok(&dst, "migrate-incoming",
                   "{\"uri\": \"file:/dev/fdset/1,offset=4096\"}"));
    r = mr_qmp_client_wait_event(dst.c, "MIGRATION", 10000, &err);
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r,
                        "data"), "status")), "setup");
    json_decref(r);
    wait_status(&dst, "completed");
    for (int b = 0; b < FAKE_NBLOCKS; b++)
        assert_memory_equal(src.vm.snapshot[b], dst.vm.blocks[b].host,
                            dst.vm.blocks[b].used_length);
    assert_int_equal(dst.vm.run, MR_RUN_PAUSED);

    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_int_equal(pread(fd, check, sizeof(check), 0), (ssize_t)sizeof(check));
    close(fd);
    assert_memory_equal(check, hdr, sizeof(hdr));
    assert_memory_equal(check + 4096, "QEVM", 4);
    json_decref(ok(&dst, "remove-fd", "{\"fdset-id\": 1}"));
    r = ok(&dst, "query-fdsets", NULL);
    assert_int_equal(json_array_size(r), 0);
    json_decref(r);
    side_down(&dst);
    side_down(&src);
}

static void mapped_ram_fdset(void **state)
{
    (void)state;
    run_fdset(false);
}

static void mapped_ram_fdset_dio(void **state)
{
    (void)state;
    if (!have_odirect)
        skip();
    run_fdset(true);
}

static void fdset_rules(void **state)
{
    struct side s;
    char path[400];

    (void)state;
    snprintf(path, sizeof(path), "%s/migfile-rules", tmpdir);
    close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    side_up(&s, "rules", true, MR_RUN_PAUSED);
    add_fd(&s, path, O_WRONLY);
    json_decref(ok(&s, "migrate-set-capabilities", "{\"capabilities\": "
                   "[{\"capability\": \"mapped-ram\", \"state\": true}]}"));
    assert_string_equal(bad(&s, "migrate",
                            "{\"uri\": \"file:/dev/fdset/1,offset=4096\"}"),
                        "fdset is only supported with multifd");
    json_decref(ok(&s, "migrate-set-capabilities", "{\"capabilities\": "
                   "[{\"capability\": \"multifd\", \"state\": true}]}"));
    assert_string_equal(bad(&s, "migrate",
                            "{\"uri\": \"file:/dev/fdset/1,offset=4096\"}"),
                        "Outgoing migration needs two fds in the fdset, got 1");
    assert_string_equal(bad(&s, "migrate", "{\"uri\": \"file:/dev/fdset/7\"}"),
                        "Failed to find fdset /dev/fdset/7");
    add_fd(&s, path, O_RDONLY);
    assert_string_equal(bad(&s, "migrate", "{\"uri\": \"file:/dev/fdset/1\"}"),
                        "Fdset is missing a file descriptor with flags: 0x41");
    /* two descriptors of one open file description (dup): refused when
     * the kernel lets us compare them */
    json_decref(ok(&s, "remove-fd", "{\"fdset-id\": 1}"));
    int fd = open(path, O_WRONLY | O_CLOEXEC), fd2 = dup(fd);
    struct mr_error err = MR_ERROR_INIT;
    pid_t me = getpid();
    bool kcmp_ok = syscall(SYS_kcmp, me, me, 0, fd, fd2) == 0;
    int both[2] = { fd, fd2 };
    for (int i = 0; i < 2; i++)
        json_decref(mr_qmp_client_execute(s.c, "add-fd",
                    json_pack("{s:i}", "fdset-id", 2), &both[i], 1, 10000,
                    &err));
    close(fd);
    close(fd2);
    if (kcmp_ok)
        assert_string_equal(bad(&s, "migrate", "{\"uri\": "
                                "\"file:/dev/fdset/2\"}"),
                            "Outgoing migration needs two fds in the fdset "
                            "that are not duplicates of each other");
    side_down(&s);
}

/* The channels form, HMP info migrate, and migrate in the wrong states. */
static void channels_and_info(void **state)
{
    struct side s;
    char args[600], *text;
    json_t *r;

    (void)state;
    side_up(&s, "chan", true, MR_RUN_PAUSED);
    common_hook(&s);
    snprintf(args, sizeof(args), "{\"channels\": [{\"channel-type\": \"main\","
             " \"addr\": {\"transport\": \"file\", \"filename\": "
             "\"%s/chan\", \"offset\": 8192}}]}", tmpdir);
    json_decref(ok(&s, "migrate", args));
    wait_status(&s, "completed");
    r = ok(&s, "query-migrate", NULL);
    assert_non_null(json_object_get(r, "downtime"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r,
                     "ram"), "remaining")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r,
                     "ram"), "page-size")), 4096);
    json_decref(r);
    text = hmp(&s, "info migrate");
    assert_non_null(strstr(text, "Status: \t\tcompleted\r\n"));
    assert_non_null(strstr(text, "RAM info:\r\n"));
    free(text);
    assert_string_equal(bad(&s, "migrate", args),
                        "Can't migrate the vm that was paused due to previous "
                        "migration");
    assert_string_equal(bad(&s, "migrate-continue",
                            "{\"state\": \"pre-switchover\"}"),
                        "Migration not in expected state: completed");
    assert_string_equal(bad(&s, "migrate", "{\"uri\": \"file:/x\", "
                            "\"resume\": true}"),
                        "Cannot resume if there is no paused migration");
    json_decref(ok(&s, "migrate_cancel", NULL));
    side_down(&s);
}

static int cleanup(void **state)
{
    (void)state;
    return scratch_dir_remove(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps_and_params),
        cmocka_unit_test(mapped_ram_fdset),
        cmocka_unit_test(mapped_ram_fdset_dio),
        cmocka_unit_test(fdset_rules),
        cmocka_unit_test(channels_and_info),
    };

    /* UNIX socket paths are short: keep the directory name small. */
    if (scratch_dir_make(tmpdir, sizeof(tmpdir), "mq-"))
        return 1;
    have_odirect = scratch_probe_odirect(tmpdir);
    return cmocka_run_group_tests(tests, NULL, cleanup);
}
