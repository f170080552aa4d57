/*
 * mapram-vm's command line (see options.h).  Each option is a row in a
 * table; values go through small pure parsers.  Errors carry the option
 * and its value as a prefix, the way QEMU reports a bad location.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

int vm_parse_size(const char *text, uint64_t default_unit, uint64_t *out)
{
    uint64_t value = 0, unit = default_unit;
    const char *p = text;

    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (value > (UINT64_MAX - 9) / 10)
            return -ERANGE;
        value = value * 10 + (uint64_t)(*p - '0');
    }
    switch (*p) {
    case '\0': break;
    case 'b': case 'B': unit = 1; p++; break;
    case 'k': case 'K': unit = 1ull << 10; p++; break;
    case 'm': case 'M': unit = 1ull << 20; p++; break;
    case 'g': case 'G': unit = 1ull << 30; p++; break;
    case 't': case 'T': unit = 1ull << 40; p++; break;
    default: return -EINVAL;
    }
    if (*p != '\0')
        return -EINVAL;
    if (unit && value > UINT64_MAX / unit)
        return -ERANGE;
    *out = value * unit;
    return 0;
}

static int parse_onoff(const char *key, const char *value, bool *out,
                       struct mr_error *err)
{
    if (!strcmp(value, "on") || !strcmp(value, "yes") || !strcmp(value, "true")) {
        *out = true;
        return 0;
    }
    if (!strcmp(value, "off") || !strcmp(value, "no") || !strcmp(value, "false")) {
        *out = false;
        return 0;
    }
    return mr_error_set(err, -EINVAL, "Parameter '%s' expects 'on' or 'off'",
                        key);
}

static const char *const backend_types[] = {
    [VM_BACKEND_RAM] = "memory-backend-ram",
    [VM_BACKEND_MEMFD] = "memory-backend-memfd",
    [VM_BACKEND_FILE] = "memory-backend-file",
};

static int set_object_prop(struct vm_backend_opts *o, const char *key,
                           const char *value, struct mr_error *err)
{
    if (!strcmp(key, "id")) {
        free(o->id);
        o->id = strdup(value);
    } else if (!strcmp(key, "size")) {
        if (vm_parse_size(value, 1, &o->size_bytes) < 0)
            return mr_error_set(err, -EINVAL, "Parameter 'size' expects a "
                                "non-negative number below 2^64");
    } else if (!strcmp(key, "share")) {
        return parse_onoff(key, value, &o->share, err);
    } else if (!strcmp(key, "prealloc")) {
        return parse_onoff(key, value, &o->prealloc, err);
    } else if (!strcmp(key, "hugetlb") && o->kind == VM_BACKEND_MEMFD) {
        return parse_onoff(key, value, &o->hugetlb, err);
    } else if (!strcmp(key, "mem-path") && o->kind == VM_BACKEND_FILE) {
        free(o->mem_path);
        o->mem_path = strdup(value);
    } else {
        return mr_error_set(err, -EINVAL, "Property '%s.%s' not found",
                            backend_types[o->kind], key);
    }
    return 0;
}

static int parse_object_type(const char *type, struct vm_backend_opts *out,
                             struct mr_error *err)
{
    for (size_t i = 0; i < sizeof(backend_types) / sizeof(backend_types[0]); i++) {
        if (!strcmp(type, backend_types[i])) {
            out->kind = (enum vm_backend_kind)i;
            /* QEMU's defaults: memfd is shared, the others private. */
            out->share = out->kind == VM_BACKEND_MEMFD;
            return 0;
        }
    }
    return mr_error_set(err, -EINVAL, "invalid object type: %s", type);
}

int vm_parse_object(const char *text, struct vm_backend_opts *out,
                    struct mr_error *err)
{
    char *copy = strdup(text), *save = NULL, *item;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!copy)
        return mr_error_set(err, -ENOMEM, "out of memory");
    item = strtok_r(copy, ",", &save);
    rc = parse_object_type(item ? item : "", out, err);
    while (rc == 0 && (item = strtok_r(NULL, ",", &save))) {
        char *eq = strchr(item, '=');

        if (!eq) {
            rc = mr_error_set(err, -EINVAL, "Parameter '%s' expects a value "
                              "(key=value)", item);
            break;
        }
        *eq = '\0';
        rc = set_object_prop(out, item, eq + 1, err);
    }
    free(copy);
    if (rc == 0 && !out->id)
        rc = mr_error_set(err, -EINVAL, "Parameter 'id' is missing");
    if (rc == 0 && out->size_bytes == 0)
        rc = mr_error_set(err, -EINVAL, "can't create backend with size 0");
    if (rc == 0 && out->kind == VM_BACKEND_FILE && !out->mem_path)
        rc = mr_error_set(err, -EINVAL, "mem-path property not set");
    if (rc < 0) {
        free(out->id);
        free(out->mem_path);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

/* -m SIZE or -m size=SIZE[,...]: the default unit is MiB, as in QEMU. */
static int opt_m(struct vm_config *cfg, const char *v, struct mr_error *err)
{
    const char *num = !strncmp(v, "size=", 5) ? v + 5 : v;
    char buf[64];
    size_t len = strcspn(num, ",");
    int rc = -EINVAL;

    if (len < sizeof(buf)) {
        memcpy(buf, num, len);
        buf[len] = '\0';
        rc = vm_parse_size(buf, 1ull << 20, &cfg->ram_bytes);
    }
    if (rc < 0)
        return mr_error_set(err, -EINVAL, "Parameter 'size' expects a "
                            "non-negative number below 2^64");
    if (cfg->ram_bytes < VM_RAM_MIN_BYTES || cfg->ram_bytes > VM_RAM_MAX_BYTES)
        return mr_error_set(err, -EINVAL, "RAM size must be between 64M "
                            "and 64G");
    if (cfg->ram_bytes % (2ull << 20))
        return mr_error_set(err, -EINVAL, "RAM size must be a multiple of 2M");
    cfg->ram_set = true;
    return 0;
}

static int opt_object(struct vm_config *cfg, const char *v,
                      struct mr_error *err)
{
    struct vm_backend_opts o;
    int rc;

    if (cfg->nr_backends == VM_MAX_BACKENDS)
        return mr_error_set(err, -E2BIG, "too many objects (at most %d)",
                            VM_MAX_BACKENDS);
    rc = vm_parse_object(v, &o, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < cfg->nr_backends; i++) {
        if (!strcmp(cfg->backends[i].id, o.id)) {
            rc = mr_error_set(err, -EEXIST, "attempt to add duplicate "
                              "property '%s' to object (type 'container')",
                              o.id);
            free(o.id);
            free(o.mem_path);
            return rc;
        }
    }
    cfg->backends[cfg->nr_backends++] = o;
    return 0;
}

static int opt_machine(struct vm_config *cfg, const char *v,
                       struct mr_error *err)
{
    char *copy = strdup(v), *save = NULL, *item;
    int rc = 0;

    if (!copy)
        return mr_error_set(err, -ENOMEM, "out of memory");
    for (item = strtok_r(copy, ",", &save); item && rc == 0;
         item = strtok_r(NULL, ",", &save)) {
        if (!strncmp(item, "memory-backend=", 15)) {
            free(cfg->memory_backend);
            cfg->memory_backend = strdup(item + 15);
        } else if (!strncmp(item, "type=", 5) || !strchr(item, '=')) {
            /* a machine type name: there is only one machine */
        } else {
            rc = mr_error_set(err, -EINVAL, "Property 'mapram-vm-machine.%.*s'"
                              " not found", (int)strcspn(item, "="), item);
        }
    }
    free(copy);
    return rc;
}

static int opt_qmp(struct vm_config *cfg, const char *v, struct mr_error *err)
{
    char *copy, *save = NULL, *item;
    int rc = 0;

    if (strncmp(v, "unix:", 5) || v[5] == '\0' || v[5] == ',')
        return mr_error_set(err, -EINVAL, "only 'unix:PATH[,server=on]"
                            "[,wait=off]' is supported");
    if (cfg->nr_qmp == VM_MAX_QMP)
        return mr_error_set(err, -E2BIG, "too many monitors (at most %d)",
                            VM_MAX_QMP);
    copy = strdup(v + 5);
    if (!copy)
        return mr_error_set(err, -ENOMEM, "out of memory");
    item = strtok_r(copy, ",", &save);
    cfg->qmp_paths[cfg->nr_qmp++] = strdup(item);
    while (rc == 0 && (item = strtok_r(NULL, ",", &save))) {
        if (!strcmp(item, "server") || !strcmp(item, "server=on") ||
            !strcmp(item, "wait=off") || !strcmp(item, "nowait"))
            continue;
        rc = mr_error_set(err, -EINVAL, "'%s' is not supported (the "
                          "monitor is always a listening server that does "
                          "not wait)", item);
    }
    free(copy);
    return rc;
}

static int opt_serial(struct vm_config *cfg, const char *v,
                      struct mr_error *err)
{
    if (!strcmp(v, "none") || !strcmp(v, "null"))
        return 0;
    if (strncmp(v, "file:", 5) || v[5] == '\0')
        return mr_error_set(err, -EINVAL, "only 'file:PATH', 'null' and "
                            "'none' are supported");
    free(cfg->serial_path);
    cfg->serial_path = strdup(v + 5);
    return 0;
}

static int opt_accel(struct vm_config *cfg, const char *v,
                     struct mr_error *err)
{
    size_t len = strcspn(v, ",");
    enum vm_accel accel;

    /* "tcg" is accepted for QEMU command lines: the thread vCPU is this
     * host's software fallback. */
    if (len == 3 && !strncmp(v, "kvm", 3))
        accel = VM_ACCEL_KVM;
    else if ((len == 6 && !strncmp(v, "thread", 6)) ||
             (len == 3 && !strncmp(v, "tcg", 3)))
        accel = VM_ACCEL_THREAD;
    else
        return mr_error_set(err, -EINVAL, "invalid accelerator %.*s",
                            (int)len, v);
    if (cfg->nr_accels == VM_MAX_ACCELS)
        return mr_error_set(err, -E2BIG, "too many accelerators");
    cfg->accels[cfg->nr_accels++] = accel;
    return 0;
}

static int opt_name(struct vm_config *cfg, const char *v,
                    struct mr_error *err)
{
    size_t len = strcspn(v, ",");
    const char *rest = v + len;

    if (*rest && strcmp(rest, ",debug-threads=on") &&
        strcmp(rest, ",debug-threads=off"))
        return mr_error_set(err, -EINVAL, "Invalid parameter '%s'", rest + 1);
    if (!strncmp(v, "guest=", 6)) {
        v += 6;
        len -= 6;
    }
    free(cfg->name);
    cfg->name = strndup(v, len);
    return 0;
}

static int opt_test_range(struct vm_config *cfg, const char *v,
                          struct mr_error *err)
{
    char start[64];
    const char *comma = strchr(v, ',');

    if (!comma || (size_t)(comma - v) >= sizeof(start))
        return mr_error_set(err, -EINVAL, "expected START,END");
    memcpy(start, v, (size_t)(comma - v));
    start[comma - v] = '\0';
    if (vm_parse_size(start, 1, &cfg->test_start) < 0 ||
        vm_parse_size(comma + 1, 1, &cfg->test_end) < 0)
        return mr_error_set(err, -EINVAL, "expected START,END as sizes");
    if (cfg->test_start % 4096 || cfg->test_end % 4096)
        return mr_error_set(err, -EINVAL, "START and END must be multiples "
                            "of 4096");
    if (cfg->test_start < VM_TEST_START_DEFAULT ||
        cfg->test_end <= cfg->test_start)
        return mr_error_set(err, -EINVAL, "expected 1M <= START < END");
    return 0;
}

static int opt_incoming(struct vm_config *cfg, const char *v,
                        struct mr_error *err)
{
    (void)err;
    free(cfg->incoming);
    cfg->incoming = strdup(v);
    return 0;
}

static int opt_pidfile(struct vm_config *cfg, const char *v,
                       struct mr_error *err)
{
    (void)err;
    free(cfg->pidfile);
    cfg->pidfile = strdup(v);
    return 0;
}

static int opt_display(struct vm_config *cfg, const char *v,
                       struct mr_error *err)
{
    (void)cfg;
    if (strcmp(v, "none"))
        return mr_error_set(err, -EINVAL, "only 'none' is supported");
    return 0;
}

struct option_row {
    const char *name;
    int (*with_arg)(struct vm_config *, const char *, struct mr_error *);
    size_t flag_offset; /* for flags without an argument */
};

#define FLAG(field) offsetof(struct vm_config, field)

static const struct option_row option_table[] = {
    { "m", opt_m, 0 },
    { "object", opt_object, 0 },
    { "machine", opt_machine, 0 },
    { "M", opt_machine, 0 },
    { "qmp", opt_qmp, 0 },
    { "serial", opt_serial, 0 },
    { "accel", opt_accel, 0 },
    { "name", opt_name, 0 },
    { "incoming", opt_incoming, 0 },
    { "pidfile", opt_pidfile, 0 },
    { "test-range", opt_test_range, 0 },
    { "display", opt_display, 0 },
    { "S", NULL, FLAG(start_paused) },
    { "daemonize", NULL, FLAG(daemonize) },
    { "nographic", NULL, 0 },
    { "nodefaults", NULL, 0 },
};

static const struct option_row *find_option(const char *arg)
{
    if (arg[0] != '-')
        return NULL;
    arg += arg[1] == '-' ? 2 : 1;
    for (size_t i = 0; i < sizeof(option_table) / sizeof(option_table[0]); i++)
        if (!strcmp(arg, option_table[i].name))
            return &option_table[i];
    return NULL;
}

/* The RAM backend and -m must agree; either alone decides the size. */
static int resolve_ram(struct vm_config *cfg, struct mr_error *err)
{
    if (cfg->memory_backend) {
        for (size_t i = 0; i < cfg->nr_backends; i++)
            if (!strcmp(cfg->backends[i].id, cfg->memory_backend))
                cfg->ram_backend = &cfg->backends[i];
        if (!cfg->ram_backend)
            return mr_error_set(err, -ENOENT, "Memory backend '%s' not found",
                                cfg->memory_backend);
        if (cfg->ram_set && cfg->ram_backend->size_bytes != cfg->ram_bytes)
            return mr_error_set(err, -EINVAL, "Machine memory size does not "
                                "match the size of the memory backend");
        cfg->ram_bytes = cfg->ram_backend->size_bytes;
        if (cfg->ram_bytes < VM_RAM_MIN_BYTES ||
            cfg->ram_bytes > VM_RAM_MAX_BYTES ||
            cfg->ram_bytes % (2ull << 20))
            return mr_error_set(err, -EINVAL, "memory backend '%s': RAM size "
                                "must be a multiple of 2M between 64M and 64G",
                                cfg->memory_backend);
    }
    if (cfg->test_end == 0)
        cfg->test_end = cfg->ram_bytes;
    if (cfg->test_end > cfg->ram_bytes)
        return mr_error_set(err, -EINVAL, "-test-range: END 0x%llx is beyond "
                            "the end of RAM (0x%llx)",
                            (unsigned long long)cfg->test_end,
                            (unsigned long long)cfg->ram_bytes);
    return 0;
}

int vm_options_parse(int argc, char *const *argv, struct vm_config *cfg,
                     struct mr_error *err)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->ram_bytes = VM_RAM_DEFAULT_BYTES;
    cfg->test_start = VM_TEST_START_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const struct option_row *row = find_option(argv[i]);
        int rc;

        if (!row)
            return mr_error_set(err, -EINVAL, "%s: invalid option", argv[i]);
        if (!row->with_arg) {
            if (row->flag_offset)
                *(bool *)((char *)cfg + row->flag_offset) = true;
            continue;
        }
        if (i + 1 >= argc)
            return mr_error_set(err, -EINVAL, "%s: requires an argument",
                                argv[i]);
        rc = row->with_arg(cfg, argv[i + 1], err);
        if (rc < 0)
            return mr_error_prefix(err, "%s %s: ", argv[i], argv[i + 1]);
        i++;
    }
    return resolve_ram(cfg, err);
}

void vm_config_free(struct vm_config *cfg)
{
    for (size_t i = 0; i < cfg->nr_backends; i++) {
        free(cfg->backends[i].id);
        free(cfg->backends[i].mem_path);
    }
    for (size_t i = 0; i < cfg->nr_qmp; i++)
        free(cfg->qmp_paths[i]);
    free(cfg->memory_backend);
    free(cfg->serial_path);
    free(cfg->incoming);
    free(cfg->name);
    free(cfg->pidfile);
    memset(cfg, 0, sizeof(*cfg));
}
