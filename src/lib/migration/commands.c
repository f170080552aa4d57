/*
 * The commands layer over the facade: the QMP migration commands of
 * docs/qmp.md (its commands and its "HMP" forms).  Handlers only check
 * arguments and call migration.c; the work runs on the save and load
 * threads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mapram/qmp.h"
#include "migration/facade.h"
#include "migration/lazy.h"
#include "migration/object.h"
#include "migration/publish.h"

/* Merge all requested states, check once, apply all or nothing (docs/qmp.md, "Capabilities"). */
static int set_caps_json(struct mr_migration *mig, json_t *list,
                         struct mr_error *err)
{
    struct mr_caps n;
    size_t i;
    json_t *e;

    pthread_mutex_lock(&mig->lock);
    n = mig->caps;
    pthread_mutex_unlock(&mig->lock);
    json_array_foreach(list, i, e) {
        json_t *c = json_object_get(e, "capability");
        json_t *s = json_object_get(e, "state");
        int cap;

        if (!json_is_object(e))
            return mr_error_set(err, -EINVAL, "Invalid parameter type for "
                                "'capabilities[%zu]', expected: object", i);
        if (!c)
            return mr_error_set(err, -EINVAL, "Parameter 'capabilities[%zu]."
                                "capability' is missing", i);
        if (!s)
            return mr_error_set(err, -EINVAL, "Parameter 'capabilities[%zu]."
                                "state' is missing", i);
        if (!json_is_string(c))
            return mr_error_set(err, -EINVAL, "Invalid parameter type for "
                                "'capabilities[%zu].capability', expected: "
                                "string", i);
        if (!json_is_boolean(s))
            return mr_error_set(err, -EINVAL, "Invalid parameter type for "
                                "'capabilities[%zu].state', expected: "
                                "boolean", i);
        cap = mr_cap_from_name(json_string_value(c));
        if (cap < 0)
            return mr_error_set(err, -EINVAL, "Parameter 'capabilities[%zu]."
                                "capability' does not accept value '%s'", i,
                                json_string_value(c));
        n.on[cap] = json_is_true(s);
    }
    return mig_apply_caps(mig, &n, err);
}

static json_t *cmd_set_caps(struct mr_qmp_call *call, json_t *args,
                            struct mr_error *err)
{
    set_caps_json(mr_qmp_call_opaque(call),
                  json_object_get(args, "capabilities"), err);
    return NULL;
}

static json_t *cmd_query_caps(struct mr_qmp_call *call, json_t *args,
                              struct mr_error *err)
{
    struct mr_migration *mig = mr_qmp_call_opaque(call);
    json_t *a = json_array();

    (void)args, (void)err;
    pthread_mutex_lock(&mig->lock);
    for (int i = 0; i < MR_CAP__MAX; i++)
        json_array_append_new(a, json_pack("{s:s,s:b}", "capability",
                                           mr_cap_name((enum mr_mig_cap)i),
                                           "state", mig->caps.on[i]));
    pthread_mutex_unlock(&mig->lock);
    return a;
}

static json_t *cmd_set_params(struct mr_qmp_call *call, json_t *args,
                              struct mr_error *err)
{
    mr_migration_set_parameters(mr_qmp_call_opaque(call), args, err);
    return NULL;
}

static json_t *cmd_query_params(struct mr_qmp_call *call, json_t *args,
                                struct mr_error *err)
{
    struct mr_migration *mig = mr_qmp_call_opaque(call);
    json_t *o;

    (void)args, (void)err;
    pthread_mutex_lock(&mig->lock);
    o = mr_params_to_json(&mig->params);
    pthread_mutex_unlock(&mig->lock);
    return o;
}

static json_t *cmd_migrate(struct mr_qmp_call *call, json_t *args,
                           struct mr_error *err)
{
    struct mr_migration *mig = mr_qmp_call_opaque(call);
    struct mr_mig_addr a;

    if (json_is_true(json_object_get(args, "resume"))) {
        mr_error_set(err, -EINVAL, "Cannot resume if there is no paused "
                     "migration");
        return NULL;
    }
    if (mr_addr_from_args(json_object_get(args, "uri"),
                          json_object_get(args, "channels"), false, &a, err))
        return NULL;
    mig_migrate_addr(mig, &a, err);
    return NULL;
}

static json_t *cmd_migrate_incoming(struct mr_qmp_call *call, json_t *args,
                                    struct mr_error *err)
{
    json_t *eoe = json_object_get(args, "exit-on-error");

    mig_incoming_args(mr_qmp_call_opaque(call), json_object_get(args, "uri"),
                      json_object_get(args, "channels"),
                      eoe ? json_is_true(eoe) : true, err);
    return NULL;
}

static json_t *cmd_cancel(struct mr_qmp_call *call, json_t *args,
                          struct mr_error *err)
{
    (void)args;
    if (!mig_lazy_cancel_check(mr_qmp_call_opaque(call), err))
        mr_migration_cancel(mr_qmp_call_opaque(call));
    return NULL;
}

static json_t *cmd_continue(struct mr_qmp_call *call, json_t *args,
                            struct mr_error *err)
{
    struct mr_migration *mig = mr_qmp_call_opaque(call);
    const char *want = json_string_value(json_object_get(args, "state"));
    enum mr_mig_status st = mr_migration_state(mig);

    if (strcmp(want, mr_mig_status_name(st)) != 0) {
        mr_error_set(err, -EINVAL, "Migration not in expected state: %s",
                     mr_mig_status_name(st));
        return NULL;
    }
    mr_migration_continue(mig, err);
    return NULL;
}

static json_t *cmd_query_migrate(struct mr_qmp_call *call, json_t *args,
                                 struct mr_error *err)
{
    (void)args, (void)err;
    return mr_migration_query(mr_qmp_call_opaque(call));
}

static const struct mr_qmp_arg set_caps_args[] = {
    { "capabilities", MR_QMP_T_ARRAY, false },
    { NULL },
};

#define U64(n) { n, MR_QMP_T_UINT64, true }
#define U8(n) { n, MR_QMP_T_UINT8, true }
static const struct mr_qmp_arg set_params_args[] = {
    U64("announce-initial"), U64("announce-max"), U64("announce-rounds"),
    U64("announce-step"), U8("throttle-trigger-threshold"),
    U8("cpu-throttle-initial"), U8("cpu-throttle-increment"),
    { "cpu-throttle-tailslow", MR_QMP_T_BOOL, true },
    { "tls-creds", MR_QMP_T_STR_OR_NULL, true },
    { "tls-hostname", MR_QMP_T_STR_OR_NULL, true },
    { "tls-authz", MR_QMP_T_STR_OR_NULL, true },
    U64("max-bandwidth"), U64("avail-switchover-bandwidth"),
    U64("downtime-limit"), { "x-checkpoint-delay", MR_QMP_T_UINT32, true },
    U8("multifd-channels"), U64("xbzrle-cache-size"),
    U64("max-postcopy-bandwidth"), U8("max-cpu-throttle"),
    { "multifd-compression", MR_QMP_T_STR, true },
    U8("multifd-zlib-level"), U8("multifd-qatzip-level"),
    U8("multifd-zstd-level"),
    { "block-bitmap-mapping", MR_QMP_T_ARRAY, true },
    U64("x-vcpu-dirty-limit-period"), U64("vcpu-dirty-limit"),
    { "mode", MR_QMP_T_STR, true },
    { "zero-page-detection", MR_QMP_T_STR, true },
    { "direct-io", MR_QMP_T_BOOL, true },
    { "x-io-engine", MR_QMP_T_STR, true },
    U64("x-lazy-granule"), U64("x-lazy-fill-cap"),
    { "x-lazy-working-set", MR_QMP_T_BOOL, true },
    { NULL },
};
#undef U64
#undef U8

static const struct mr_qmp_arg migrate_args[] = {
    { "uri", MR_QMP_T_STR, true },
    { "channels", MR_QMP_T_ARRAY, true },
    { "detach", MR_QMP_T_BOOL, true },
    { "resume", MR_QMP_T_BOOL, true },
    { NULL },
};

static const struct mr_qmp_arg incoming_args[] = {
    { "uri", MR_QMP_T_STR, true },
    { "channels", MR_QMP_T_ARRAY, true },
    { "exit-on-error", MR_QMP_T_BOOL, true },
    { NULL },
};

static const struct mr_qmp_arg continue_args[] = {
    { "state", MR_QMP_T_STR, false },
    { NULL },
};

static const struct mr_qmp_command mig_commands[] = {
    { "migrate-set-capabilities", cmd_set_caps, set_caps_args },
    { "query-migrate-capabilities", cmd_query_caps, NULL },
    { "migrate-set-parameters", cmd_set_params, set_params_args },
    { "query-migrate-parameters", cmd_query_params, NULL },
    { "migrate", cmd_migrate, migrate_args },
    { "migrate-incoming", cmd_migrate_incoming, incoming_args },
    { "migrate_cancel", cmd_cancel, NULL },
    { "migrate-continue", cmd_continue, continue_args },
    { "query-migrate", cmd_query_migrate, NULL },
    { NULL },
};

/* ---- HMP (docs/qmp.md, "HMP") ---- */

/* Split "WORD REST": the first blank-separated word into `word`. */
static const char *first_word(const char *s, char *word, size_t n)
{
    size_t len = strcspn(s, " \t");

    snprintf(word, n, "%.*s", (int)(len < n ? len : n - 1), s);
    s += len;
    return s + strspn(s, " \t");
}

static void hmp_set_capability(struct mr_qmp_call *call, const char *args,
                               FILE *out)
{
    struct mr_migration *mig = mr_qmp_call_opaque(call);
    struct mr_error err = MR_ERROR_INIT;
    char name[64], state[16];
    const char *rest = first_word(args, name, sizeof(name));

    first_word(rest, state, sizeof(state));
    if (strcmp(state, "on") && strcmp(state, "off")) {
        fprintf(out, "Expected 'on' or 'off'\n");
        return;
    }
    if (mr_cap_from_name(name) < 0) {
        fprintf(out, "Error: invalid parameter value: %s\n", name);
        return;
    }
    if (mr_migration_set_capability(mig, name, strcmp(state, "on") == 0, &err))
        fprintf(out, "Error: %s\n", err.msg);
}

static void hmp_set_parameter(struct mr_qmp_call *call, const char *args,
                              FILE *out)
{
    struct mr_migration *mig = mr_qmp_call_opaque(call);
    struct mr_error err = MR_ERROR_INIT;
    char name[64];
    const char *value = first_word(args, name, sizeof(name));
    json_t *v = mr_params_hmp_value(name, value, &err);

    if (v) {
        json_t *o = json_object();
        json_object_set_new(o, name, v);
        mr_migration_set_parameters(mig, o, &err);
        json_decref(o);
    }
    if (err.code)
        fprintf(out, "Error: %s\n", err.msg);
}

static void hmp_info_params(struct mr_qmp_call *call, const char *args,
                            FILE *out)
{
    struct mr_migration *mig = mr_qmp_call_opaque(call);
    struct mr_params p = { 0 };
    struct mr_caps c;

    (void)args;
    mig_snapshot(mig, &c, &p);
    mr_params_print(&p, out);
    mr_params_release(&p);
}

static void hmp_info_caps(struct mr_qmp_call *call, const char *args,
                          FILE *out)
{
    struct mr_migration *mig = mr_qmp_call_opaque(call);
    struct mr_params p = { 0 };
    struct mr_caps c;

    (void)args;
    mig_snapshot(mig, &c, &p);
    mr_params_release(&p);
    for (int i = 0; i < MR_CAP__MAX; i++)
        fprintf(out, "%s: %s\n", mr_cap_name((enum mr_mig_cap)i),
                c.on[i] ? "on" : "off");
}

static long long jint(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void hmp_info_migrate(struct mr_qmp_call *call, const char *args,
                             FILE *out)
{
    json_t *q = mr_migration_query(mr_qmp_call_opaque(call));
    json_t *ram = json_object_get(q, "ram");
    json_t *st = json_object_get(q, "status");

    (void)args;
    if (st)
        fprintf(out, "Status: \t\t%s\n", json_string_value(st));
    if (json_object_get(q, "total-time"))
        fprintf(out, "Time (ms): \t\ttotal=%lld, setup=%lld, down=%lld\n",
                jint(q, "total-time"), jint(q, "setup-time"),
                json_object_get(q, "downtime") ? jint(q, "downtime") :
                jint(q, "expected-downtime"));
    if (ram) {
        fprintf(out, "RAM info:\n");
        fprintf(out, "  Throughput (Mbps): \t%0.2f\n",
                json_real_value(json_object_get(ram, "mbps")));
        fprintf(out, "  Sizes: \t\tpagesize=%lld, total=%lld\n",
                jint(ram, "page-size"), jint(ram, "total"));
        fprintf(out, "  Transfers: \t\ttransferred=%lld, remain=%lld\n",
                jint(ram, "transferred"), jint(ram, "remaining"));
        fprintf(out, "    Channels: \t\tprecopy=%lld, multifd=%lld\n",
                jint(ram, "precopy-bytes"), jint(ram, "multifd-bytes"));
        fprintf(out, "    Page Types: \tnormal=%lld, zero=%lld\n",
                jint(ram, "normal"), jint(ram, "duplicate"));
        fprintf(out, "    Page Rates (pps): \ttransfer=%lld\n",
                jint(ram, "pages-per-second"));
        fprintf(out, "    Others: \t\tdirty_syncs=%lld\n",
                jint(ram, "dirty-sync-count"));
    }
    if (json_object_get(q, "error-desc"))
        fprintf(out, "Error: %s\n",
                json_string_value(json_object_get(q, "error-desc")));
    json_decref(q);
}

/* Without -d QEMU suspends an interactive monitor until the end; a
 * monitor reached through human-monitor-command cannot be suspended, so
 * it says so and the migration goes on detached.  Ours never waits: the
 * monitor thread keeps serving every client (query, cancel, quit). */
static void hmp_migrate(struct mr_qmp_call *call, const char *args, FILE *out)
{
    struct mr_migration *mig = mr_qmp_call_opaque(call);
    struct mr_error err = MR_ERROR_INIT;
    bool detach = false;
    char word[16];

    while (args[0] == '-') {
        const char *rest = first_word(args, word, sizeof(word));
        if (strcmp(word, "-d") == 0)
            detach = true;
        else if (strcmp(word, "-r") == 0) {
            fprintf(out, "Error: Cannot resume if there is no paused "
                    "migration\n");
            return;
        }
        args = rest;
    }
    if (mr_migration_start(mig, args, &err)) {
        fprintf(out, "Error: %s\n", err.msg);
        return;
    }
    if (!detach)
        fprintf(out, "terminal does not allow synchronous migration, "
                "continuing detached\n");
}

static void hmp_migrate_incoming(struct mr_qmp_call *call, const char *args,
                                 FILE *out)
{
    struct mr_error err = MR_ERROR_INIT;

    if (mr_migration_start_incoming(mr_qmp_call_opaque(call), args, false,
                                    &err))
        fprintf(out, "Error: %s\n", err.msg);
}

static void hmp_cancel(struct mr_qmp_call *call, const char *args, FILE *out)
{
    struct mr_error err = MR_ERROR_INIT;

    (void)args;
    if (mig_lazy_cancel_check(mr_qmp_call_opaque(call), &err))
        fprintf(out, "Error: %s\n", err.msg);
    else
        mr_migration_cancel(mr_qmp_call_opaque(call));
}

static void hmp_continue(struct mr_qmp_call *call, const char *args, FILE *out)
{
    struct mr_error err = MR_ERROR_INIT;

    (void)args;
    if (mr_migration_continue(mr_qmp_call_opaque(call), &err))
        fprintf(out, "Error: %s\n", err.msg);
}

static const struct mr_hmp_command mig_hmp_commands[] = {
    { "migrate_set_capability", hmp_set_capability },
    { "migrate_set_parameter", hmp_set_parameter },
    { "info migrate_parameters", hmp_info_params },
    { "info migrate_capabilities", hmp_info_caps },
    { "info migrate", hmp_info_migrate },
    { "migrate", hmp_migrate },
    { "migrate_incoming", hmp_migrate_incoming },
    { "migrate_cancel", hmp_cancel },
    { "migrate_continue", hmp_continue },
    { NULL },
};

int mr_migration_register_commands(struct mr_migration *mig,
                                   struct mr_qmp_server *srv,
                                   struct mr_error *err)
{
    int rc = mr_qmp_server_register(srv, mig_commands, mig, err);

    if (!rc)
        rc = mr_qmp_server_register_hmp(srv, mig_hmp_commands, mig, err);
    return rc;
}
