/*
 * Launch configuration: collect, store, show, check, replay (see
 * launch_config.h).  The facts it relies on are in docs/file-header.md,
 * "Launch metadata".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "launch_config.h"
#include "save_common.h"

#define DIFF_TEXT_MAX 1024

/* ---- collecting ---- */

static json_t *query(struct mr_qmp_client *c, const char *cmd, json_t *args)
{
    struct mr_error ignore = MR_ERROR_INIT;

    return mr_qmp_client_execute(c, cmd, args, NULL, 0, MGMT_QMP_TIMEOUT_MS,
                                 &ignore);
}

static int add_cmdline(struct mr_launch_meta *m, int pid, struct mr_error *err)
{
    char path[64], exe[PATH_MAX], buf[65536];
    ssize_t n, len = 0;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/exe", pid);
    n = readlink(path, exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        if (mr_launch_meta_add(m, "exe", exe, err) < 0)
            return err->code;
    }
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    while (len < (ssize_t)sizeof(buf) - 1 &&
           (n = read(fd, buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
        len += n;
    close(fd);
    buf[len] = '\0';
    for (ssize_t at = 0; at < len; at += (ssize_t)strlen(buf + at) + 1)
        if (mr_launch_meta_add(m, "argv", buf + at, err) < 0)
            return err->code;
    return 0;
}

static int add_machine(struct mr_qmp_client *c, struct mr_launch_meta *m,
                       struct mr_error *err)
{
    json_t *t = query(c, "qom-get", json_pack("{s:s,s:s}", "path", "/machine",
                                              "property", "type"));
    const char *type = json_string_value(t);
    char name[128];
    size_t n;
    int rc = 0;

    if (type) {
        snprintf(name, sizeof(name), "%s", type);
        n = strlen(name);
        if (n > 8 && !strcmp(name + n - 8, "-machine"))
            name[n - 8] = '\0';
        rc = mr_launch_meta_add(m, "machine", name, err);
    }
    json_decref(t);
    return rc;
}

/* /machine/peripheral: "ID=TYPE"; /machine/peripheral-anon: "TYPE". */
static int add_devices(struct mr_qmp_client *c, const char *container,
                       bool named, struct mr_launch_meta *m,
                       struct mr_error *err)
{
    json_t *list = query(c, "qom-list", json_pack("{s:s}", "path", container));
    json_t *e;
    size_t i;
    int rc = 0;

    json_array_foreach(list, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *type = json_string_value(json_object_get(e, "type"));
        char v[256];
        size_t tl;

        if (!name || !type || strncmp(type, "child<", 6) ||
            (tl = strlen(type)) < 8)
            continue;
        if (named)
            snprintf(v, sizeof(v), "%s=%.*s", name, (int)(tl - 7), type + 6);
        else
            snprintf(v, sizeof(v), "%.*s", (int)(tl - 7), type + 6);
        if ((rc = mr_launch_meta_add(m, named ? "device" : "device-anon", v,
                                     err)) < 0)
            break;
    }
    json_decref(list);
    return rc;
}

static int add_target(struct mr_qmp_client *c, struct mr_launch_meta *m,
                      struct mr_error *err)
{
    json_t *t = query(c, "query-target", NULL);
    const char *arch = json_string_value(json_object_get(t, "arch"));
    int rc = arch ? mr_launch_meta_add(m, "arch", arch, err) : 0;

    json_decref(t);
    return rc;
}

int launch_config_collect(struct mr_qmp_client *c, const char *vm_version,
                          uint64_t ram_bytes, bool with_argv,
                          struct mr_launch_meta *m, struct mr_error *err)
{
    bool is_vm = !strncmp(vm_version, "mapram-vm", 9);
    char ram[32];
    int pid = mr_qmp_client_peer_pid(c);

    snprintf(ram, sizeof(ram), "%" PRIu64, ram_bytes);
    if (mr_launch_meta_add(m, "kind", is_vm ? "mapram-vm" : "qemu", err) < 0 ||
        (vm_version[0] && mr_launch_meta_add(m, "version", vm_version, err) < 0) ||
        mr_launch_meta_add(m, "ram", ram, err) < 0 ||
        add_target(c, m, err) < 0 || add_machine(c, m, err) < 0 ||
        add_devices(c, "/machine/peripheral", true, m, err) < 0 ||
        add_devices(c, "/machine/peripheral-anon", false, m, err) < 0)
        return err->code;
    if (with_argv && pid > 0)
        return add_cmdline(m, pid, err);
    return 0;
}

int launch_config_encode(const struct mr_launch_meta *m, uint8_t **out,
                         size_t *len, struct mr_error *err)
{
    int n;

    *len = mr_launch_meta_encoded_size(m);
    *out = malloc(*len);
    if (!*out)
        return mr_error_set(err, -ENOMEM, "out of memory");
    n = mr_launch_meta_encode(m, *out, *len, err);
    if (n < 0) {
        free(*out);
        *out = NULL;
        return n;
    }
    return 0;
}

/* ---- reading ---- */

int launch_config_read(int fd, const struct mr_file_header *h,
                       struct mr_launch_meta *m, struct mr_error *err)
{
    uint8_t *buf;
    ssize_t n;
    int rc;

    mr_launch_meta_init(m);
    if (h->launch_len == 0)
        return 0;
    buf = malloc(h->launch_len);
    if (!buf)
        return mr_error_set(err, -ENOMEM, "out of memory");
    n = pread(fd, buf, h->launch_len, (off_t)mr_file_header_launch_offset(h));
    if (n < 0)
        rc = mr_error_set(err, -errno, "cannot read the launch metadata: %s",
                          strerror(errno));
    else if (mr_file_header_check_launch(h, buf, (size_t)n, err) == 0)
        rc = mr_launch_meta_parse(buf, (size_t)n, m, err);
    else
        rc = err->code;
    free(buf);
    return rc;
}

/* ---- checking ---- */

struct diff {
    char text[DIFF_TEXT_MAX];
    size_t len;
    unsigned count;
};

static void diff_add(struct diff *d, const char *fmt, const char *a,
                     const char *b)
{
    int n;

    if (d->len >= sizeof(d->text) - 1)
        return;
    n = snprintf(d->text + d->len, sizeof(d->text) - d->len, "%s",
                 d->count ? "; " : "");
    d->len += (size_t)n;
    n = snprintf(d->text + d->len, sizeof(d->text) - d->len, fmt, a, b);
    d->len += n > 0 ? (size_t)n : 0;
    if (d->len > sizeof(d->text) - 1)
        d->len = sizeof(d->text) - 1;
    d->count++;
}

static void compare_one(struct diff *d, const struct mr_launch_meta *saved,
                        const struct mr_launch_meta *here, const char *key,
                        const char *what)
{
    const char *a = mr_launch_meta_get(saved, key);
    const char *b = mr_launch_meta_get(here, key);
    char fmt[96];

    if (!a || (b && !strcmp(a, b)))
        return;
    snprintf(fmt, sizeof(fmt), "%s: saved %%s, this VM %%s", what);
    diff_add(d, fmt, a, b ? b : "none reported");
}

static unsigned count_value(const struct mr_launch_meta *m, const char *key,
                            const char *value)
{
    unsigned n = 0;

    for (size_t i = 0; i < m->count; i++)
        n += !strcmp(m->entries[i].key, key) &&
             !strcmp(m->entries[i].value, value);
    return n;
}

/* Devices in `a` that `b` lacks (as a multiset). */
static void compare_devices(struct diff *d, const struct mr_launch_meta *a,
                            const struct mr_launch_meta *b, const char *key,
                            const char *fmt)
{
    for (size_t i = 0; i < a->count; i++) {
        const struct mr_launch_entry *e = &a->entries[i];
        bool first = true;

        if (strcmp(e->key, key))
            continue;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(a->entries[j].key, key) &&
                !strcmp(a->entries[j].value, e->value))
                first = false;
        if (first && count_value(a, key, e->value) > count_value(b, key, e->value))
            diff_add(d, fmt, e->value, "");
    }
}

int launch_config_check(struct mr_qmp_client *c,
                        const struct mr_launch_meta *saved,
                        struct mr_error *err)
{
    struct mr_launch_meta here;
    struct diff d = { .len = 0 };
    char version[64] = "";
    uint64_t ram = 0;

    if (saved->count == 0)
        return 0;
    mr_launch_meta_init(&here);
    mgmt_query_version(c, version, sizeof(version));
    if (mgmt_query_ram_size(c, &ram, err) < 0 ||
        launch_config_collect(c, version, ram, false, &here, err) < 0) {
        mr_launch_meta_free(&here);
        return err->code;
    }
    compare_one(&d, saved, &here, "kind", "VM");
    compare_one(&d, saved, &here, "arch", "target");
    compare_one(&d, saved, &here, "machine", "machine type");
    compare_devices(&d, saved, &here, "device", "device %s%s missing here");
    compare_devices(&d, &here, saved, "device", "device %s%s not in the save");
    compare_devices(&d, saved, &here, "device-anon",
                    "unnamed device %s%s missing here");
    compare_devices(&d, &here, saved, "device-anon",
                    "unnamed device %s%s not in the save");
    mr_launch_meta_free(&here);
    if (!d.count)
        return 0;
    return mr_error_set(err, -EINVAL, "the VM differs from the saved launch "
                        "configuration (--force-config loads anyway): %s",
                        d.text);
}

/* ---- showing ---- */

void launch_config_print(int fd, const struct mr_file_header *h)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_launch_meta m;
    char line[MR_ERROR_MSG_MAX];
    const char *last = "";

    if (h->launch_len == 0)
        return;
    if (launch_config_read(fd, h, &m, &err) < 0) {
        printf("  launch        unreadable: %s\n",
               cli_printable(err.msg, line, sizeof(line)));
        return;
    }
    for (size_t i = 0; i < m.count; i++) {
        const struct mr_launch_entry *e = &m.entries[i];

        if (!strcmp(e->key, "argv") && !strcmp(last, "argv")) {
            printf(" %s", cli_printable(e->value, line, sizeof(line)));
            continue;
        }
        if (!strcmp(last, "argv"))
            printf("\n");
        printf("  launch.%-8s %s", e->key,
               cli_printable(e->value, line, sizeof(line)));
        if (strcmp(e->key, "argv"))
            printf("\n");
        last = e->key;
    }
    if (!strcmp(last, "argv"))
        printf("\n");
    mr_launch_meta_free(&m);
}

/* Repeated keys become arrays, "ram" a number. */
static void json_put(json_t *o, const struct mr_launch_entry *e)
{
    static const char *const lists[] = { "argv", "device", "device-anon" };

    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if (strcmp(e->key, lists[i]))
            continue;
        if (!json_object_get(o, e->key))
            json_object_set_new(o, e->key, json_array());
        json_array_append_new(json_object_get(o, e->key),
                              json_string(e->value));
        return;
    }
    if (!strcmp(e->key, "ram"))
        json_object_set_new(o, e->key,
                            json_integer((json_int_t)strtoull(e->value, NULL, 10)));
    else if (!json_object_get(o, e->key))
        json_object_set_new(o, e->key, json_string(e->value));
}

json_t *launch_config_json(int fd, const struct mr_file_header *h)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_launch_meta m;
    json_t *o;

    if (h->launch_len == 0)
        return json_null();
    if (launch_config_read(fd, h, &m, &err) < 0)
        return json_pack("{s:s}", "error", err.msg);
    o = json_object();
    for (size_t i = 0; i < m.count; i++)
        json_put(o, &m.entries[i]);
    mr_launch_meta_free(&m);
    return o;
}

/* ---- replaying (restore --spawn) ---- */

bool launch_config_can_spawn(const struct mr_launch_meta *m)
{
    const char *kind = mr_launch_meta_get(m, "kind");

    return kind && !strcmp(kind, "qemu") && mr_launch_meta_get(m, "argv");
}

/* Options dropped from the recorded command line, and whether each takes
 * an argument: the new VM gets its own monitor and waits for the load,
 * and stays our child. */
static int dropped(const char *arg)
{
    static const struct { const char *name; int has_arg; } opts[] = {
        { "incoming", 1 }, { "qmp", 1 }, { "qmp-pretty", 1 }, { "mon", 1 },
        { "monitor", 1 }, { "pidfile", 1 }, { "daemonize", 0 }, { "S", 0 },
    };

    if (arg[0] != '-')
        return -1;
    arg += arg[1] == '-' ? 2 : 1;
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (!strcmp(arg, opts[i].name))
            return opts[i].has_arg;
    return -1;
}

int launch_config_spawn(struct spawned_vm *vm, const struct mr_launch_meta *m,
                        struct mr_error *err)
{
    const char *exe = mr_launch_meta_get(m, "exe");
    char qmp[160], **argv = calloc(m->count + 6, sizeof(*argv));
    size_t n = 0;
    bool first = true;
    int skip = 0, rc;

    if (!argv)
        return mr_error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < m->count; i++) {
        char *a = m->entries[i].value;

        if (strcmp(m->entries[i].key, "argv"))
            continue;
        if (first) {
            if (!exe || access(exe, X_OK) < 0)
                exe = a;
            argv[n++] = a;
            first = false;
        } else if (skip) {
            skip = 0;
        } else if ((skip = dropped(a)) < 0) {
            skip = 0;
            argv[n++] = a;
        }
    }
    if (spawn_vm_prepare(vm, "QEMU", err) < 0) {
        free(argv);
        return err->code;
    }
    snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", vm->socket_path);
    argv[n++] = "-incoming";
    argv[n++] = "defer";
    argv[n++] = "-qmp";
    argv[n++] = qmp;
    rc = spawn_vm_run(vm, exe, argv, err);
    free(argv);
    return rc;
}
