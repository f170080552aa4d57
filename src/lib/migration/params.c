/*
 * Capabilities and parameters (docs/qmp.md, "Capabilities", "Parameters" and "HMP"): the names, QEMU
 * 10.0's defaults, the two check functions and the JSON/HMP conversions.
 * A single table describes every parameter once, so the QMP object, the
 * HMP parser and the query output cannot drift apart.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migration/params.h"
#include "migration/uffd.h"

static const char *const cap_names[MR_CAP__MAX] = {
    "xbzrle", "rdma-pin-all", "auto-converge", "zero-blocks", "events",
    "postcopy-ram", "x-colo", "release-ram", "return-path",
    "pause-before-switchover", "multifd", "dirty-bitmaps",
    "postcopy-blocktime", "late-block-activate", "x-ignore-shared",
    "validate-uuid", "background-snapshot", "zero-copy-send",
    "postcopy-preempt", "switchover-ack", "dirty-limit", "mapped-ram",
};

static const char *const comp_names[] = { "none", "zlib", "zstd", NULL };
static const char *const mode_names[] = { "normal", "cpr-reboot",
                                          "cpr-transfer", NULL };
static const char *const zpd_names[] = { "none", "legacy", "multifd", NULL };
static const char *const io_engine_names[] = { "auto", "psync", "io_uring",
                                               NULL };

const char *mr_cap_name(enum mr_mig_cap cap)
{
    return (unsigned)cap < MR_CAP__MAX ? cap_names[cap] : "unknown";
}

int mr_cap_from_name(const char *name)
{
    for (int i = 0; i < MR_CAP__MAX; i++)
        if (strcmp(cap_names[i], name) == 0)
            return i;
    return -1;
}

const char *mr_compression_name(int c)
{
    return c >= 0 && c < MR_COMP__MAX ? comp_names[c] : "unknown";
}

const char *mr_mode_name(int m)
{
    return m >= 0 && m < MR_MODE__MAX ? mode_names[m] : "unknown";
}

const char *mr_zpd_name(int z)
{
    return z >= 0 && z < MR_ZPD__MAX ? zpd_names[z] : "unknown";
}

const char *mr_io_engine_param_name(int e)
{
    return e >= 0 && e < MR_IOENG__MAX ? io_engine_names[e] : "unknown";
}

void mr_params_init(struct mr_params *p)
{
    memset(p, 0, sizeof(*p));
    p->announce_initial = 50;
    p->announce_max = 550;
    p->announce_rounds = 5;
    p->announce_step = 100;
    p->throttle_trigger_threshold = 50;
    p->cpu_throttle_initial = 20;
    p->cpu_throttle_increment = 10;
    p->max_bandwidth = 134217728;
    p->downtime_limit = 300;
    p->x_checkpoint_delay = 20000;
    p->multifd_channels = 2;
    p->xbzrle_cache_size = 67108864;
    p->max_cpu_throttle = 99;
    p->multifd_compression = MR_COMP_NONE;
    p->multifd_zlib_level = 1;
    p->multifd_qatzip_level = 1;
    p->multifd_zstd_level = 1;
    p->x_vcpu_dirty_limit_period = 1000;
    p->vcpu_dirty_limit = 1;
    p->mode = MR_MODE_NORMAL;
    p->zero_page_detection = MR_ZPD_MULTIFD;
    p->x_lazy_granule = MR_LAZY_GRANULE_DEFAULT;
    p->x_lazy_fill_cap = MR_LAZY_FILL_CAP_DEFAULT;
    p->x_lazy_working_set = true;
}

void mr_params_copy(struct mr_params *dst, const struct mr_params *src)
{
    if (dst == src)
        return;
    json_t *old = dst->block_bitmap_mapping;
    *dst = *src;
    json_incref(dst->block_bitmap_mapping);
    json_decref(old);
}

void mr_params_release(struct mr_params *p)
{
    json_decref(p->block_bitmap_mapping);
    p->block_bitmap_mapping = NULL;
}

bool mr_direct_io_effective(const struct mr_caps *caps,
                            const struct mr_params *p)
{
    return p->direct_io && caps->on[MR_CAP_MAPPED_RAM] &&
           caps->on[MR_CAP_MULTIFD];
}

/* ---- capability rules (migrate_caps_check) ---- */

static const enum mr_mig_cap bg_snapshot_conflicts[] = {
    MR_CAP_POSTCOPY_RAM, MR_CAP_DIRTY_BITMAPS, MR_CAP_POSTCOPY_BLOCKTIME,
    MR_CAP_LATE_BLOCK_ACTIVATE, MR_CAP_RETURN_PATH, MR_CAP_MULTIFD,
    MR_CAP_PAUSE_BEFORE_SWITCHOVER, MR_CAP_AUTO_CONVERGE,
    MR_CAP_RELEASE_RAM, MR_CAP_RDMA_PIN_ALL, MR_CAP_XBZRLE, MR_CAP_X_COLO,
    MR_CAP_VALIDATE_UUID, MR_CAP_ZERO_COPY_SEND,
};

static int check_postcopy(const struct mr_caps *old, const bool *n,
                          bool incoming, struct mr_error *err)
{
    /* The host-support probe only runs for a newly enabled cap on a
     * destination: there it means a lazy load (load_lazy.c). */
    if (incoming && !old->on[MR_CAP_POSTCOPY_RAM]) {
        int fd = mr_uffd_open(err);

        if (fd < 0)
            return fd;
        close(fd);
    }
    if (n[MR_CAP_X_IGNORE_SHARED])
        return mr_error_set(err, -EINVAL,
                            "Postcopy is not compatible with ignore-shared");
    if (n[MR_CAP_MULTIFD] && !incoming)
        return mr_error_set(err, -EINVAL,
                            "Postcopy is not yet compatible with multifd");
    return 0;
}

static int check_caps_rest(const bool *n, const struct mr_params *p,
                           bool incoming, struct mr_error *err)
{
    if (n[MR_CAP_ZERO_COPY_SEND] &&
        (!n[MR_CAP_MULTIFD] || n[MR_CAP_XBZRLE] ||
         p->multifd_compression != MR_COMP_NONE || p->tls_creds[0]))
        return mr_error_set(err, -EINVAL, "Zero copy only available for "
                            "non-compressed non-TLS multifd migration");
    if (n[MR_CAP_POSTCOPY_PREEMPT] && !n[MR_CAP_POSTCOPY_RAM])
        return mr_error_set(err, -EINVAL,
                            "Postcopy preempt requires postcopy-ram");
    if (n[MR_CAP_SWITCHOVER_ACK] && !n[MR_CAP_RETURN_PATH])
        return mr_error_set(err, -EINVAL, "Capability 'switchover-ack' "
                            "requires capability 'return-path'");
    if (n[MR_CAP_DIRTY_LIMIT]) {
        if (n[MR_CAP_AUTO_CONVERGE])
            return mr_error_set(err, -EINVAL, "dirty-limit conflicts with "
                                "auto-converge either of then available "
                                "currently");
        return mr_error_set(err, -EINVAL, "dirty-limit requires KVM with "
                            "accelerator property 'dirty-ring-size' set");
    }
    if (n[MR_CAP_MULTIFD] && n[MR_CAP_XBZRLE])
        return mr_error_set(err, -EINVAL,
                            "Multifd is not compatible with xbzrle");
    if (n[MR_CAP_MAPPED_RAM] && n[MR_CAP_XBZRLE])
        return mr_error_set(err, -EINVAL,
                            "Mapped-ram migration is incompatible with xbzrle");
    if (n[MR_CAP_MAPPED_RAM] && n[MR_CAP_POSTCOPY_RAM] && !incoming)
        return mr_error_set(err, -EINVAL, "Mapped-ram migration is "
                            "incompatible with postcopy");
    return 0;
}

int mr_caps_check(const struct mr_caps *old, const struct mr_caps *new_caps,
                  const struct mr_params *params, bool running, bool incoming,
                  struct mr_error *err)
{
    const bool *n = new_caps->on;
    int rc;

    if (running)
        return mr_error_set(err, -EBUSY,
                            "There's a migration process in progress");
    if (n[MR_CAP_ZERO_BLOCKS])
        fprintf(stderr, "warning: zero-blocks capability is deprecated\n");
    if (n[MR_CAP_X_COLO])
        return mr_error_set(err, -EINVAL, "QEMU compiled without replication "
                            "module can't enable COLO");
    if (n[MR_CAP_POSTCOPY_RAM]) {
        rc = check_postcopy(old, n, incoming, err);
        if (rc)
            return rc;
    }
    if (n[MR_CAP_BACKGROUND_SNAPSHOT]) {
        /* mapram has no userfaultfd write protection support. */
        (void)bg_snapshot_conflicts;
        return mr_error_set(err, -EINVAL, "Background-snapshot is not "
                            "supported by host kernel");
    }
    return check_caps_rest(n, params, incoming, err);
}

/* ---- parameter rules (migrate_params_check) ---- */

static int check_ranges(const struct mr_params *p, struct mr_error *err)
{
    if (p->throttle_trigger_threshold < 1 || p->throttle_trigger_threshold > 100)
        return mr_error_set(err, -EINVAL, "Parameter 'throttle_trigger_threshold'"
                            " expects an integer in the range of 1 to 100");
    if (p->cpu_throttle_initial < 1 || p->cpu_throttle_initial > 99)
        return mr_error_set(err, -EINVAL, "Parameter 'cpu_throttle_initial' "
                            "expects an integer in the range of 1 to 99");
    if (p->cpu_throttle_increment < 1 || p->cpu_throttle_increment > 99)
        return mr_error_set(err, -EINVAL, "Parameter 'cpu_throttle_increment' "
                            "expects an integer in the range of 1 to 99");
    if (p->downtime_limit > 2000000)
        return mr_error_set(err, -EINVAL, "Parameter 'downtime_limit' expects "
                            "an integer in the range of 0 to (2000 * 1000) ms");
    if (p->multifd_channels < 1)
        return mr_error_set(err, -EINVAL, "Parameter 'multifd_channels' "
                            "expects a value between 1 and 255");
    if (p->multifd_zlib_level > 9)
        return mr_error_set(err, -EINVAL, "Parameter 'multifd_zlib_level' "
                            "expects a value between 0 and 9");
    if (p->multifd_qatzip_level < 1 || p->multifd_qatzip_level > 9)
        return mr_error_set(err, -EINVAL, "Parameter 'multifd_qatzip_level' "
                            "expects a value between 1 and 9");
    if (p->multifd_zstd_level > 20)
        return mr_error_set(err, -EINVAL, "Parameter 'multifd_zstd_level' "
                            "expects a value between 0 and 20");
    return 0;
}

static bool power_of_two(uint64_t v)
{
    return v && !(v & (v - 1));
}

static int check_sizes(const struct mr_params *p, struct mr_error *err)
{
    if (p->xbzrle_cache_size < 4096 || !power_of_two(p->xbzrle_cache_size))
        return mr_error_set(err, -EINVAL, "Parameter 'xbzrle_cache_size' "
                            "expects a power of two no less than the target "
                            "page size");
    if (p->max_cpu_throttle < p->cpu_throttle_initial ||
        p->max_cpu_throttle > 99)
        return mr_error_set(err, -EINVAL, "Parameter 'max_cpu_throttle' "
                            "expects an integer in the range of "
                            "cpu_throttle_initial to 99");
    if (p->announce_initial > 100000)
        return mr_error_set(err, -EINVAL, "Parameter 'announce_initial' "
                            "expects a value between 0 and 100000");
    if (p->announce_max > 100000)
        return mr_error_set(err, -EINVAL, "Parameter 'announce_max' "
                            "expects a value between 0 and 100000");
    if (p->announce_rounds > 1000)
        return mr_error_set(err, -EINVAL, "Parameter 'announce_rounds' "
                            "expects a value between 0 and 1000");
    if (p->announce_step < 1 || p->announce_step > 10000)
        return mr_error_set(err, -EINVAL, "Parameter 'announce_step' "
                            "expects a value between 0 and 10000");
    if (!power_of_two(p->x_lazy_granule) ||
        p->x_lazy_granule < MR_LAZY_GRANULE_MIN ||
        p->x_lazy_granule > MR_LAZY_GRANULE_MAX)
        return mr_error_set(err, -EINVAL, "Parameter 'x-lazy-granule' "
                            "expects a power of two between 64 KiB and "
                            "2 MiB");
    return 0;
}

/* block-bitmap-mapping: a list of {node-name, alias, bitmaps: [...]}. */
static int check_bbm(json_t *bbm, struct mr_error *err)
{
    size_t i;
    json_t *m;

    if (!bbm)
        return 0;
    json_array_foreach(bbm, i, m) {
        json_t *node = json_object_get(m, "node-name");
        json_t *alias = json_object_get(m, "alias");

        if (!json_is_string(node) || !json_is_string(alias) ||
            !json_is_array(json_object_get(m, "bitmaps")))
            return mr_error_set(err, -EINVAL, "Invalid mapping given for "
                                "block-bitmap-mapping: entry %zu needs "
                                "node-name, alias and bitmaps", i);
    }
    return 0;
}

int mr_params_check(const struct mr_params *old, const struct mr_params *new_p,
                    const struct mr_caps *caps, struct mr_error *err)
{
    int rc = check_ranges(new_p, err);

    if (!rc)
        rc = check_sizes(new_p, err);
    if (!rc)
        rc = check_bbm(new_p->block_bitmap_mapping, err);
    if (rc)
        return rc;
    if (caps->on[MR_CAP_ZERO_COPY_SEND] &&
        (new_p->multifd_compression != MR_COMP_NONE || new_p->tls_creds[0]))
        return mr_error_set(err, -EINVAL, "Zero copy only available for "
                            "non-compressed non-TLS multifd migration");
    if (caps->on[MR_CAP_MAPPED_RAM] &&
        (old->multifd_compression != MR_COMP_NONE || old->tls_creds[0]))
        return mr_error_set(err, -EINVAL, "Mapped-ram only available for "
                            "non-compressed non-TLS multifd migration");
    if (new_p->x_vcpu_dirty_limit_period < 1 ||
        new_p->x_vcpu_dirty_limit_period > 1000)
        return mr_error_set(err, -EINVAL, "Parameter "
                            "'x-vcpu-dirty-limit-period' expects a value "
                            "between 1 and 1000");
    if (new_p->vcpu_dirty_limit < 1)
        return mr_error_set(err, -EINVAL, "Parameter 'vcpu_dirty_limit' must "
                            "be greater than 1 MB/s");
    /* Check 22 (no O_DIRECT at build time) cannot fail on Linux. */
    return 0;
}

/* ---- the parameter table ---- */

enum pkind { K_U8, K_U32, K_U64, K_SIZE_B, K_SIZE_MIB, K_BOOL, K_STR,
             K_COMP, K_MODE, K_ZPD, K_IOENG, K_BBM };

struct pdesc {
    const char *name;
    enum pkind kind;
    size_t off;
};

#define P(n, k, f) { n, k, offsetof(struct mr_params, f) }
/* Schema order (docs/qmp.md, "Parameters"). */
static const struct pdesc ptable[] = {
    P("announce-initial", K_SIZE_B, announce_initial),
    P("announce-max", K_SIZE_B, announce_max),
    P("announce-rounds", K_SIZE_B, announce_rounds),
    P("announce-step", K_SIZE_B, announce_step),
    P("throttle-trigger-threshold", K_U8, throttle_trigger_threshold),
    P("cpu-throttle-initial", K_U8, cpu_throttle_initial),
    P("cpu-throttle-increment", K_U8, cpu_throttle_increment),
    P("cpu-throttle-tailslow", K_BOOL, cpu_throttle_tailslow),
    P("tls-creds", K_STR, tls_creds),
    P("tls-hostname", K_STR, tls_hostname),
    P("tls-authz", K_STR, tls_authz),
    P("max-bandwidth", K_SIZE_MIB, max_bandwidth),
    P("avail-switchover-bandwidth", K_SIZE_MIB, avail_switchover_bandwidth),
    P("downtime-limit", K_SIZE_B, downtime_limit),
    P("x-checkpoint-delay", K_U32, x_checkpoint_delay),
    P("multifd-channels", K_U8, multifd_channels),
    P("xbzrle-cache-size", K_SIZE_B, xbzrle_cache_size),
    P("max-postcopy-bandwidth", K_SIZE_B, max_postcopy_bandwidth),
    P("max-cpu-throttle", K_U8, max_cpu_throttle),
    P("multifd-compression", K_COMP, multifd_compression),
    P("multifd-zlib-level", K_U8, multifd_zlib_level),
    P("multifd-qatzip-level", K_U8, multifd_qatzip_level),
    P("multifd-zstd-level", K_U8, multifd_zstd_level),
    P("block-bitmap-mapping", K_BBM, block_bitmap_mapping),
    P("x-vcpu-dirty-limit-period", K_U64, x_vcpu_dirty_limit_period),
    P("vcpu-dirty-limit", K_SIZE_B, vcpu_dirty_limit),
    P("mode", K_MODE, mode),
    P("zero-page-detection", K_ZPD, zero_page_detection),
    P("direct-io", K_BOOL, direct_io),
    P("x-io-engine", K_IOENG, io_engine),
    P("x-lazy-granule", K_SIZE_B, x_lazy_granule),
    P("x-lazy-fill-cap", K_U64, x_lazy_fill_cap),
    P("x-lazy-working-set", K_BOOL, x_lazy_working_set),
};
#undef P
#define NPARAMS (sizeof(ptable) / sizeof(ptable[0]))

static const struct pdesc *find_param(const char *name)
{
    for (size_t i = 0; i < NPARAMS; i++)
        if (strcmp(ptable[i].name, name) == 0)
            return &ptable[i];
    return NULL;
}

static const char *const *enum_names(enum pkind k)
{
    return k == K_COMP ? comp_names : k == K_MODE ? mode_names
         : k == K_IOENG ? io_engine_names : zpd_names;
}

static int enum_lookup(enum pkind k, const char *v)
{
    const char *const *names = enum_names(k);

    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], v) == 0)
            return i;
    return -1;
}

static int set_member(struct mr_params *p, const struct pdesc *d, json_t *v,
                      struct mr_error *err)
{
    char *base = (char *)p + d->off;
    uint64_t u = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
    int e;

    switch (d->kind) {
    case K_U8: *(uint8_t *)base = (uint8_t)u; break;
    case K_U32: *(uint32_t *)base = (uint32_t)u; break;
    case K_U64: case K_SIZE_B: case K_SIZE_MIB: *(uint64_t *)base = u; break;
    case K_BOOL: *(bool *)base = json_is_true(v); break;
    case K_STR:
        /* tls-* accept null, meaning "". */
        snprintf(base, MR_PARAM_STR_MAX, "%s",
                 json_is_string(v) ? json_string_value(v) : "");
        break;
    case K_COMP: case K_MODE: case K_ZPD: case K_IOENG:
        e = json_is_string(v) ? enum_lookup(d->kind, json_string_value(v)) : -1;
        if (e < 0)
            return mr_error_set(err, -EINVAL, "Parameter '%s' does not accept "
                                "value '%s'", d->name, json_is_string(v) ?
                                json_string_value(v) : "");
        *(int *)base = e;
        break;
    case K_BBM:
        if (!json_is_array(v))
            return mr_error_set(err, -EINVAL, "Invalid parameter type for "
                                "'block-bitmap-mapping', expected: array");
        json_decref(p->block_bitmap_mapping);
        p->block_bitmap_mapping = json_incref(v);
        break;
    }
    return 0;
}

int mr_params_apply_json(struct mr_params *p, json_t *members,
                         struct mr_error *err)
{
    const char *key;
    json_t *v;

    json_object_foreach(members, key, v) {
        const struct pdesc *d = find_param(key);

        if (!d)
            return mr_error_set(err, -EINVAL, "Parameter '%s' is unexpected",
                                key);
        int rc = set_member(p, d, v, err);
        if (rc)
            return rc;
    }
    return 0;
}

static json_t *member_json(const struct mr_params *p, const struct pdesc *d)
{
    const char *base = (const char *)p + d->off;

    switch (d->kind) {
    case K_U8: return json_integer(*(const uint8_t *)base);
    case K_U32: return json_integer(*(const uint32_t *)base);
    case K_U64: case K_SIZE_B: case K_SIZE_MIB:
        return json_integer((json_int_t)*(const uint64_t *)base);
    case K_BOOL: return json_boolean(*(const bool *)base);
    case K_STR: return json_string(base);
    case K_COMP: case K_MODE: case K_ZPD: case K_IOENG:
        return json_string(enum_names(d->kind)[*(const int *)base]);
    case K_BBM:
        return p->block_bitmap_mapping ? json_deep_copy(p->block_bitmap_mapping)
                                       : NULL;
    }
    return NULL;
}

json_t *mr_params_to_json(const struct mr_params *p)
{
    json_t *o = json_object();

    for (size_t i = 0; i < NPARAMS; i++) {
        json_t *v = member_json(p, &ptable[i]);
        if (v)
            json_object_set_new(o, ptable[i].name, v);
    }
    return o;
}

/* ---- size parsing (qemu_strtosz) ---- */

static uint64_t suffix_mul(char c)
{
    switch (c | 0x20) {
    case 'b': return 1;
    case 'k': return 1ULL << 10;
    case 'm': return 1ULL << 20;
    case 'g': return 1ULL << 30;
    case 't': return 1ULL << 40;
    case 'p': return 1ULL << 50;
    case 'e': return 1ULL << 60;
    }
    return 0;
}

static int parse_hex_size(const char *text, uint64_t *out)
{
    char *end;

    errno = 0;
    unsigned long long v = strtoull(text, &end, 16);
    if (errno == ERANGE)
        return -ERANGE;
    if (end == text + 2 || *end != '\0')
        return -EINVAL; /* no digits, a fraction, or a suffix */
    *out = v;
    return 0;
}

int mr_parse_size(const char *text, uint64_t default_unit, uint64_t *out)
{
    const char *p = text;
    uint64_t ival = 0, mul;
    double frac = 0;

    if (!(*p >= '0' && *p <= '9'))
        return -EINVAL; /* no sign, no blanks, no empty string */
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        return parse_hex_size(text, out);
    for (; *p >= '0' && *p <= '9'; p++) {
        if (ival > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -ERANGE;
        ival = ival * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        char *end;
        frac = strtod(p, &end);
        if (end == p + 1 && !(p[1] >= '0' && p[1] <= '9'))
            frac = 0;
        p = end;
    }
    mul = *p ? suffix_mul(*p) : default_unit;
    if (!mul || (*p && p[1] != '\0'))
        return -EINVAL;
    if (frac != 0 && mul == 1)
        return -EINVAL; /* fractional bytes make no sense */
    double fbytes = frac * (double)mul;
    if (ival > UINT64_MAX / mul ||
        (double)(ival * mul) + fbytes >= 18446744073709551616.0)
        return -ERANGE;
    *out = ival * mul + (uint64_t)fbytes;
    return 0;
}

/* ---- HMP ---- */

static bool parse_hmp_bool(const char *v, bool *out)
{
    static const char *const yes[] = { "on", "yes", "true", "y", NULL };
    static const char *const no[] = { "off", "no", "false", "n", NULL };

    for (int i = 0; yes[i]; i++) {
        if (strcmp(v, yes[i]) == 0)
            return (*out = true);
        if (strcmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static json_t *hmp_uint(const struct pdesc *d, const char *value,
                        struct mr_error *err)
{
    char *end;
    uint64_t max = d->kind == K_U8 ? UINT8_MAX :
                   d->kind == K_U32 ? UINT32_MAX : INT64_MAX;

    errno = 0;
    unsigned long long v = strtoull(value, &end, 0);
    if (!*value || *end || errno || value[0] == '-') {
        mr_error_set(err, -EINVAL, "Parameter '%s' expects uint64", d->name);
        return NULL;
    }
    if (v > max) {
        mr_error_set(err, -EINVAL, "Parameter '%s' expects %s", d->name,
                     d->kind == K_U8 ? "uint8_t" : d->kind == K_U32 ?
                     "uint32_t" : "uint64");
        return NULL;
    }
    return json_integer((json_int_t)v);
}

static json_t *hmp_size(const struct pdesc *d, const char *value,
                        struct mr_error *err)
{
    uint64_t v;
    bool mib = d->kind == K_SIZE_MIB;

    if (mr_parse_size(value, mib ? 1ULL << 20 : 1, &v) || v > INT64_MAX) {
        if (mib)
            mr_error_set(err, -EINVAL, "Invalid size %s", value);
        else
            mr_error_set(err, -EINVAL, "Parameter '%s' expects size", d->name);
        return NULL;
    }
    return json_integer((json_int_t)v);
}

json_t *mr_params_hmp_value(const char *name, const char *value,
                            struct mr_error *err)
{
    const struct pdesc *d = find_param(name);
    bool b;

    if (!d) {
        mr_error_set(err, -EINVAL, "invalid parameter value: %s", name);
        return NULL;
    }
    switch (d->kind) {
    case K_U8: case K_U32: case K_U64: return hmp_uint(d, value, err);
    case K_SIZE_B: case K_SIZE_MIB: return hmp_size(d, value, err);
    case K_BOOL:
        if (!parse_hmp_bool(value, &b)) {
            mr_error_set(err, -EINVAL, "Parameter '%s' expects 'on' or 'off'",
                         d->name);
            return NULL;
        }
        return json_boolean(b);
    case K_STR: case K_COMP: case K_MODE: case K_ZPD: case K_IOENG:
        return json_string(value); /* enums are checked when applied */
    case K_BBM:
        mr_error_set(err, -EINVAL, "The block-bitmap-mapping parameter can "
                     "only be set through QMP");
        return NULL;
    }
    return NULL;
}

static void print_bbm(json_t *bbm, FILE *out)
{
    size_t i;
    json_t *m;

    fprintf(out, "block-bitmap-mapping:\n");
    json_array_foreach(bbm, i, m) {
        fprintf(out, "  '%s' -> '%s'\n",
                json_string_value(json_object_get(m, "node-name")),
                json_string_value(json_object_get(m, "alias")));
    }
}

void mr_params_print(const struct mr_params *p, FILE *out)
{
    fprintf(out, "announce-initial: %lu ms\n", (unsigned long)p->announce_initial);
    fprintf(out, "announce-max: %lu ms\n", (unsigned long)p->announce_max);
    fprintf(out, "announce-rounds: %lu\n", (unsigned long)p->announce_rounds);
    fprintf(out, "announce-step: %lu ms\n", (unsigned long)p->announce_step);
    fprintf(out, "throttle-trigger-threshold: %u\n", p->throttle_trigger_threshold);
    fprintf(out, "cpu-throttle-initial: %u\n", p->cpu_throttle_initial);
    fprintf(out, "cpu-throttle-increment: %u\n", p->cpu_throttle_increment);
    fprintf(out, "cpu-throttle-tailslow: %s\n", p->cpu_throttle_tailslow ? "on" : "off");
    fprintf(out, "max-cpu-throttle: %u\n", p->max_cpu_throttle);
    fprintf(out, "tls-creds: '%s'\n", p->tls_creds);
    fprintf(out, "tls-hostname: '%s'\n", p->tls_hostname);
    fprintf(out, "max-bandwidth: %lu bytes/second\n", (unsigned long)p->max_bandwidth);
    fprintf(out, "avail-switchover-bandwidth: %lu bytes/second\n",
            (unsigned long)p->avail_switchover_bandwidth);
    fprintf(out, "downtime-limit: %lu ms\n", (unsigned long)p->downtime_limit);
    fprintf(out, "x-checkpoint-delay: %u ms\n", p->x_checkpoint_delay);
    fprintf(out, "multifd-channels: %u\n", p->multifd_channels);
    fprintf(out, "multifd-compression: %s\n", mr_compression_name(p->multifd_compression));
    fprintf(out, "zero-page-detection: %s\n", mr_zpd_name(p->zero_page_detection));
    fprintf(out, "xbzrle-cache-size: %lu bytes\n", (unsigned long)p->xbzrle_cache_size);
    fprintf(out, "max-postcopy-bandwidth: %lu\n", (unsigned long)p->max_postcopy_bandwidth);
    fprintf(out, "tls-authz: '%s'\n", p->tls_authz);
    if (p->block_bitmap_mapping)
        print_bbm(p->block_bitmap_mapping, out);
    fprintf(out, "x-vcpu-dirty-limit-period: %lu ms\n",
            (unsigned long)p->x_vcpu_dirty_limit_period);
    fprintf(out, "vcpu-dirty-limit: %lu MB/s\n", (unsigned long)p->vcpu_dirty_limit);
    fprintf(out, "mode: %s\n", mr_mode_name(p->mode));
    fprintf(out, "direct-io: %s\n", p->direct_io ? "on" : "off");
    fprintf(out, "x-io-engine: %s\n", mr_io_engine_param_name(p->io_engine));
    fprintf(out, "x-lazy-granule: %lu bytes\n",
            (unsigned long)p->x_lazy_granule);
    fprintf(out, "x-lazy-fill-cap: %lu MB/s\n",
            (unsigned long)p->x_lazy_fill_cap);
    fprintf(out, "x-lazy-working-set: %s\n",
            p->x_lazy_working_set ? "on" : "off");
}
