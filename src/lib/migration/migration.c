/*
 * The facade (include/mapram/migration.h): the per-VM object, its settings
 * with their checks, the argument checks of `migrate` / `migrate-incoming`
 * in QEMU's order, job start and control, query-migrate.  The jobs run on
 * the save and load threads (save.c, load.c), below this file.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "migration/events.h"
#include "migration/facade.h"
#include "migration/lazy.h"
#include "migration/load.h"
#include "migration/object.h"
#include "migration/publish.h"
#include "migration/save.h"
#include "migration/transport.h"
#include "migration/uffd.h"

struct mr_migration *mr_migration_new(const struct mr_vm_ops *ops, void *vm,
                                      const struct mr_ram_block *blocks,
                                      size_t nblocks,
                                      struct mr_fdset_registry *fdsets,
                                      struct mr_error *err)
{
    struct mr_migration *mig = calloc(1, sizeof(*mig));

    if (!mig || (nblocks && !(mig->blocks = calloc(nblocks, sizeof(*blocks))))) {
        free(mig);
        mr_error_set(err, -ENOMEM, "out of memory for the migration object");
        return NULL;
    }
    for (size_t i = 0; i < nblocks; i++) {
        if (!blocks[i].page_size || blocks[i].used_length % blocks[i].page_size ||
            strlen(blocks[i].name) > 255) {
            mr_error_set(err, -EINVAL, "RAM block '%s' has a bad name, size "
                         "or page size", blocks[i].name);
            free(mig->blocks);
            free(mig);
            return NULL;
        }
        mig->blocks[i] = blocks[i];
    }
    mig->ops = ops;
    mig->vm = vm;
    mig->nblocks = nblocks;
    mig->fdsets = fdsets;
    pthread_mutex_init(&mig->lock, NULL);
    pthread_cond_init(&mig->cond, NULL);
    mr_params_init(&mig->params);
    atomic_init(&mig->autostart, true);
    atomic_init(&mig->cancel_req, false);
    atomic_init(&mig->load_cancel, false);
    mr_mig_state_init(&mig->out, false, mig_state_changed, mig);
    mr_mig_state_init(&mig->in, true, mig_state_changed, mig);
    return mig;
}

void mr_migration_join(struct mr_migration *mig, bool outgoing)
{
    pthread_t t;
    bool live;

    pthread_mutex_lock(&mig->lock);
    live = outgoing ? mig->save_thread_live : mig->load_thread_live;
    t = outgoing ? mig->save_thread : mig->load_thread;
    if (outgoing)
        mig->save_thread_live = false;
    else
        mig->load_thread_live = false;
    pthread_mutex_unlock(&mig->lock);
    if (live)
        pthread_join(t, NULL);
}

void mr_migration_free(struct mr_migration *mig)
{
    if (!mig)
        return;
    mr_migration_cancel(mig);
    atomic_store(&mig->load_cancel, true);
    pthread_mutex_lock(&mig->lock);
    if (mig->in_abort_fn)
        mig->in_abort_fn(mig->in_abort_opaque);
    pthread_mutex_unlock(&mig->lock);
    mr_migration_join(mig, true);
    mr_migration_join(mig, false);
    mig_lazy_free(mig->lazy);
    mr_params_release(&mig->params);
    pthread_cond_destroy(&mig->cond);
    pthread_mutex_destroy(&mig->lock);
    free(mig->blocks);
    free(mig);
}

void mr_migration_on_load_failed(struct mr_migration *mig,
                                 mr_migration_load_failed_fn fn, void *opaque)
{
    mig->load_failed_fn = fn;
    mig->load_failed_opaque = opaque;
}

void mr_migration_set_autostart(struct mr_migration *mig, bool autostart)
{
    atomic_store(&mig->autostart, autostart);
}

void mr_migration_autostart_from(struct mr_migration *mig,
                                 bool (*fn)(void *opaque), void *opaque)
{
    mig->autostart_fn = fn;
    mig->autostart_opaque = opaque;
}

void mr_migration_on_event(struct mr_migration *mig, mr_migration_event_fn fn,
                           void *opaque)
{
    mig->event_fn = fn;
    mig->event_opaque = opaque;
}

int mr_migration_set_capability(struct mr_migration *mig, const char *name,
                                bool on, struct mr_error *err)
{
    int cap = mr_cap_from_name(name);
    struct mr_caps n;

    if (cap < 0)
        return mr_error_set(err, -EINVAL, "Parameter 'capability' does not "
                            "accept value '%s'", name);
    pthread_mutex_lock(&mig->lock);
    n = mig->caps;
    pthread_mutex_unlock(&mig->lock);
    n.on[cap] = on;
    return mig_apply_caps(mig, &n, err);
}

int mig_apply_caps(struct mr_migration *mig, const struct mr_caps *n,
                   struct mr_error *err)
{
    int rc;
    bool incoming = mig->ops->runstate(mig->vm) == MR_RUN_INMIGRATE;

    pthread_mutex_lock(&mig->lock);
    rc = mr_caps_check(&mig->caps, n, &mig->params,
                       mr_mig_status_is_running(mr_mig_state_get(&mig->out)),
                       incoming, err);
    /* A lazy load is refused here, before any load, where a block cannot
     * be registered (hugetlb, a regular file): docs/lazy-load.md. */
    if (!rc && incoming && n->on[MR_CAP_POSTCOPY_RAM] &&
        !mig->caps.on[MR_CAP_POSTCOPY_RAM])
        rc = mr_uffd_probe(mig->blocks, mig->nblocks, err);
    if (!rc)
        mig->caps = *n;
    pthread_mutex_unlock(&mig->lock);
    return rc;
}

int mr_migration_set_parameters(struct mr_migration *mig, json_t *members,
                                struct mr_error *err)
{
    struct mr_params merged = { 0 };
    int rc;

    pthread_mutex_lock(&mig->lock);
    mr_params_copy(&merged, &mig->params);
    rc = mr_params_apply_json(&merged, members, err);
    if (!rc)
        rc = mr_params_check(&mig->params, &merged, &mig->caps, err);
    if (!rc)
        mr_params_copy(&mig->params, &merged);
    pthread_mutex_unlock(&mig->lock);
    mr_params_release(&merged);
    return rc;
}

/* The transport of an address that passed mr_transport_check. */
static const struct mig_transport_ops *transport(const struct mr_mig_addr *a)
{
    const struct mig_transport_ops *t = mig_transport_for(a);

    assert(t);
    return t;
}

/* migrate checks 4-6 (docs/qmp.md, "migrate") plus the transport's own. */
static int check_migrate(struct mr_migration *mig, const struct mr_mig_addr *a,
                         struct mr_error *err)
{
    struct mr_caps c;
    struct mr_params p = { 0 };
    enum mr_runstate rs = mig->ops->runstate(mig->vm);
    int rc;

    mig_snapshot(mig, &c, &p);
    rc = mr_transport_check(&c, &p, a, err);
    if (!rc && mr_mig_status_is_running(mr_mig_state_get(&mig->out)))
        rc = mr_error_set(err, -EBUSY, "There's a migration process in "
                          "progress");
    if (!rc && rs == MR_RUN_INMIGRATE)
        rc = mr_error_set(err, -EINVAL, "Guest is waiting for an incoming "
                          "migration");
    if (!rc && rs == MR_RUN_POSTMIGRATE)
        rc = mr_error_set(err, -EINVAL, "Can't migrate the vm that was paused "
                          "due to previous migration");
    if (!rc && c.on[MR_CAP_MAPPED_RAM] && p.tls_creds[0])
        rc = mr_error_set(err, -EINVAL, "Cannot use TLS with mapped-ram");
    if (!rc && c.on[MR_CAP_MAPPED_RAM] && p.multifd_compression != MR_COMP_NONE)
        rc = mr_error_set(err, -EINVAL, "Cannot use compression with "
                          "mapped-ram");
    if (!rc && p.mode == MR_MODE_CPR_REBOOT && c.on[MR_CAP_POSTCOPY_RAM])
        rc = mr_error_set(err, -EINVAL, "Cannot use postcopy with CPR");
    if (!rc)
        rc = transport(a)->check(mig->fdsets, a, true, c.on[MR_CAP_MULTIFD],
                                 mr_direct_io_effective(&c, &p), err);
    mr_params_release(&p);
    return rc;
}

int mig_migrate_addr(struct mr_migration *mig, const struct mr_mig_addr *a,
                     struct mr_error *err)
{
    int rc = check_migrate(mig, a, err);

    if (rc)
        return rc;
    /* The previous thread (if any) has finished: its state is terminal. */
    mr_migration_join(mig, true);
    mr_mig_state_reset(&mig->out);
    pthread_mutex_lock(&mig->lock);
    memset(&mig->out_stats, 0, sizeof(mig->out_stats));
    mr_error_clear(&mig->out_err);
    mig->continue_req = false;
    mig->out_start_ms = mig_now_ms();
    pthread_mutex_unlock(&mig->lock);
    atomic_store(&mig->cancel_req, false);
    mr_mig_state_cas(&mig->out, MR_MIG_NONE, MR_MIG_SETUP);
    return mig_save_start(mig, a, transport(a), err);
}

int mr_migration_start(struct mr_migration *mig, const char *uri,
                       struct mr_error *err)
{
    struct mr_mig_addr a;
    int rc = mr_uri_parse(uri, &a, err);

    return rc ? rc : mig_migrate_addr(mig, &a, err);
}

int mig_incoming_args(struct mr_migration *mig, json_t *uri, json_t *channels,
                      bool exit_on_error, struct mr_error *err)
{
    struct mr_mig_addr a;
    struct mr_caps c;
    struct mr_params p = { 0 };
    enum mr_mig_status st;
    int rc;

    if (mig->incoming_started)
        return mr_error_set(err, -EINVAL, "The incoming migration has already "
                            "been started");
    if (mig->ops->runstate(mig->vm) != MR_RUN_INMIGRATE)
        return mr_error_set(err, -EINVAL, "'-incoming' was not specified on "
                            "the command line");
    rc = mr_addr_from_args(uri, channels, true, &a, err);
    if (rc)
        return rc;
    mig_snapshot(mig, &c, &p);
    rc = mr_transport_check(&c, &p, &a, err);
    mr_params_release(&p);
    if (rc)
        return rc;
    st = mr_mig_state_get(&mig->in);
    if (st != MR_MIG_NONE)
        return mr_error_set(err, -EINVAL, "Illegal migration incoming state: "
                            "%s", mr_mig_status_name(st));
    pthread_mutex_lock(&mig->lock);
    memset(&mig->in_stats, 0, sizeof(mig->in_stats));
    mr_error_clear(&mig->in_err);
    pthread_mutex_unlock(&mig->lock);
    mr_mig_state_cas(&mig->in, MR_MIG_NONE, MR_MIG_SETUP);
    rc = mig_load_start(mig, &a, transport(&a), exit_on_error, err);
    if (!rc)
        mig->incoming_started = true;
    return rc;
}

int mr_migration_start_incoming(struct mr_migration *mig, const char *uri,
                                bool exit_on_error, struct mr_error *err)
{
    json_t *u = json_string(uri);
    int rc = mig_incoming_args(mig, u, NULL, exit_on_error, err);

    json_decref(u);
    return rc;
}

int mr_migration_incoming(struct mr_migration *mig, const char *uri,
                          struct mr_error *err)
{
    if (strcmp(uri, "defer") == 0)
        return 0;
    return mr_migration_start_incoming(mig, uri, true, err);
}

void mr_migration_cancel(struct mr_migration *mig)
{
    static const enum mr_mig_status from[] = {
        MR_MIG_SETUP, MR_MIG_ACTIVE, MR_MIG_PRE_SWITCHOVER, MR_MIG_DEVICE };

    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
        if (mr_mig_state_cas(&mig->out, from[i], MR_MIG_CANCELLING)) {
            atomic_store(&mig->cancel_req, true);
            pthread_mutex_lock(&mig->lock);
            if (mig->out_abort_fn)
                mig->out_abort_fn(mig->out_abort_opaque);
            pthread_cond_broadcast(&mig->cond);
            pthread_mutex_unlock(&mig->lock);
            return;
        }
    }
}

int mr_migration_continue(struct mr_migration *mig, struct mr_error *err)
{
    enum mr_mig_status st = mr_mig_state_get(&mig->out);

    if (st != MR_MIG_PRE_SWITCHOVER)
        return mr_error_set(err, -EINVAL, "Migration not in expected state: "
                            "%s", mr_mig_status_name(st));
    pthread_mutex_lock(&mig->lock);
    mig->continue_req = true;
    pthread_cond_broadcast(&mig->cond);
    pthread_mutex_unlock(&mig->lock);
    return 0;
}

enum mr_mig_status mr_migration_state(struct mr_migration *mig)
{
    return mr_mig_state_get(&mig->out);
}

enum mr_mig_status mr_migration_incoming_state(struct mr_migration *mig)
{
    return mr_mig_state_get(&mig->in);
}

void mr_migration_last_error(struct mr_migration *mig, struct mr_error *out)
{
    pthread_mutex_lock(&mig->lock);
    *out = mig->out_err.code ? mig->out_err : mig->in_err;
    pthread_mutex_unlock(&mig->lock);
}

static json_t *ram_json(const struct mig_ram_stats *s, bool completed)
{
    uint64_t normal_bytes = s->normal * s->page_size;

    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:I,"
                     "s:I,s:I,s:I,s:I}",
        "transferred", (json_int_t)s->transferred,
        "remaining", (json_int_t)(completed ? 0 : s->remaining),
        "total", (json_int_t)s->total,
        "duplicate", (json_int_t)s->duplicate,
        "normal", (json_int_t)s->normal,
        "normal-bytes", (json_int_t)normal_bytes,
        "dirty-pages-rate", (json_int_t)0,
        "mbps", s->mbps,
        "dirty-sync-count", (json_int_t)s->dirty_sync_count,
        "postcopy-requests", (json_int_t)0,
        "page-size", (json_int_t)s->page_size,
        "multifd-bytes", (json_int_t)s->multifd_bytes,
        "pages-per-second", (json_int_t)s->pages_per_second,
        "precopy-bytes", (json_int_t)(s->transferred - s->downtime_bytes),
        "downtime-bytes", (json_int_t)s->downtime_bytes,
        "postcopy-bytes", (json_int_t)0,
        "dirty-sync-missed-zero-copy", (json_int_t)0);
}

static void query_out(struct mr_migration *mig, enum mr_mig_status st,
                      json_t *o)
{
    const struct mig_ram_stats *s = &mig->out_stats;
    bool live = st == MR_MIG_ACTIVE || st == MR_MIG_DEVICE ||
                st == MR_MIG_PRE_SWITCHOVER || st == MR_MIG_CANCELLING;

    if (live || st == MR_MIG_COMPLETED) {
        json_object_set_new(o, "setup-time", json_integer(s->setup_time_ms));
        json_object_set_new(o, "total-time", json_integer(live ?
                            mig_now_ms() - mig->out_start_ms : s->total_time_ms));
        json_object_set_new(o, "ram", ram_json(s, st == MR_MIG_COMPLETED));
    }
    if (live)
        json_object_set_new(o, "expected-downtime",
                            json_integer(s->expected_downtime_ms));
    if (st == MR_MIG_COMPLETED)
        json_object_set_new(o, "downtime", json_integer(s->downtime_ms));
}

void mr_migration_check_invariants(struct mr_migration *mig)
{
#ifndef NDEBUG
    enum mr_mig_status out = mr_mig_state_get(&mig->out);
    enum mr_mig_status in = mr_mig_state_get(&mig->in);

    pthread_mutex_lock(&mig->lock);
    assert((unsigned)out < MR_MIG__MAX && (unsigned)in < MR_MIG__MAX);
    /* an error is recorded before the state moves to failed ... */
    assert(out != MR_MIG_FAILED || mig->out_err.code);
    assert(in != MR_MIG_FAILED || mig->in_err.code);
    /* ... and a completed load never has one */
    assert(in != MR_MIG_COMPLETED || !mig->in_err.code);
    /* the destination's table has no cancel or device states */
    assert(in != MR_MIG_CANCELLING && in != MR_MIG_DEVICE);
    assert(mig->params.multifd_channels >= 1);
    pthread_mutex_unlock(&mig->lock);
#else
    (void)mig;
#endif
}

json_t *mr_migration_query(struct mr_migration *mig)
{
    json_t *o = json_object();
    enum mr_mig_status out, in;

    mr_migration_check_invariants(mig);
    out = mr_mig_state_get(&mig->out);
    in = mr_mig_state_get(&mig->in);
    pthread_mutex_lock(&mig->lock);
    if (in != MR_MIG_NONE) {
        json_object_set_new(o, "status", json_string(mr_mig_status_name(in)));
        /* QEMU blocks its monitor during a load; mapram reports progress. */
        if (in == MR_MIG_ACTIVE || in == MR_MIG_POSTCOPY_ACTIVE ||
            mig->lazy) {
            json_t *ram = ram_json(&mig->in_stats, false);

            mig_lazy_query(mig->lazy, ram);
            json_object_set_new(o, "ram", ram);
        }
        if (mig->in_err.code)
            json_object_set_new(o, "error-desc", json_string(mig->in_err.msg));
    }
    if (out != MR_MIG_NONE) {
        json_object_clear(o);
        json_object_set_new(o, "status", json_string(mr_mig_status_name(out)));
        query_out(mig, out, o);
        if (mig->out_err.code)
            json_object_set_new(o, "error-desc", json_string(mig->out_err.msg));
    }
    pthread_mutex_unlock(&mig->lock);
    return o;
}
