/*
 * The VM's monitor commands (see monitor.h).  Handlers run on the monitor
 * thread; run control goes through vmhost.c, which serialises it.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mapram/fdset.h"
#include "mapram/qmp.h"
#include "memsave.h"
#include "monitor.h"

struct monitor {
    struct vm *vm;
    struct mr_qmp_server *srv;
    struct mr_fdset_registry *fdsets;
    struct memsave *memsave;   /* NULL once shut down */
};

static struct monitor *call_monitor(struct mr_qmp_call *call)
{
    return mr_qmp_call_opaque(call);
}

static struct vm *call_vm(struct mr_qmp_call *call)
{
    return call_monitor(call)->vm;
}

static json_t *qmp_query_status(struct mr_qmp_call *call, json_t *args,
                                struct mr_error *err)
{
    enum mr_runstate state = vm_mr_ops.runstate(call_vm(call));

    (void)args;
    (void)err;
    return json_pack("{s:b, s:s}", "running", state == MR_RUN_RUNNING,
                     "status", mr_runstate_name(state));
}

static json_t *qmp_query_name(struct mr_qmp_call *call, json_t *args,
                              struct mr_error *err)
{
    const char *name = call_vm(call)->cfg->name;

    (void)args;
    (void)err;
    return name ? json_pack("{s:s}", "name", name) : json_object();
}

/* QEMU answers {"base-memory": N[, "plugged-memory": M]}; management
 * tools (mapram restore) compare it with a save file's RAM size. */
static json_t *qmp_query_memory_size_summary(struct mr_qmp_call *call,
                                             json_t *args,
                                             struct mr_error *err)
{
    (void)args;
    (void)err;
    return json_pack("{s:I}", "base-memory",
                     (json_int_t)call_vm(call)->machine.ram_bytes);
}

static json_t *qmp_stop(struct mr_qmp_call *call, json_t *args,
                        struct mr_error *err)
{
    (void)args;
    vm_qmp_stop(call_vm(call), err);
    return NULL;
}

static json_t *qmp_cont(struct mr_qmp_call *call, json_t *args,
                        struct mr_error *err)
{
    (void)args;
    vm_qmp_cont(call_vm(call), err);
    return NULL;
}

/* Refuse what follows at once (a pipelined `migrate` must not start),
 * then wake main(), which stops the monitor once it has the signal.  The
 * reply is queued before the monitor thread looks at anything else. */
static void request_quit(struct mr_qmp_call *call)
{
    mr_qmp_server_quiesce(mr_qmp_call_server(call));
    kill(getpid(), MONITOR_QUIT_SIGNAL);
}

static json_t *qmp_quit(struct mr_qmp_call *call, json_t *args,
                        struct mr_error *err)
{
    (void)args;
    (void)err;
    request_quit(call);
    return NULL;
}

static int64_t arg_int(json_t *args, const char *name)
{
    return json_integer_value(json_object_get(args, name));
}

/* The copy runs on its own thread; the reply comes when it is done. */
static int save_range(struct mr_qmp_call *call, json_t *args,
                      struct mr_error *err)
{
    int64_t val = arg_int(args, "val"), size = arg_int(args, "size");

    if (val < 0 || size < 0)
        return mr_error_set(err, -EINVAL, "Invalid addr 0x%016llx/size %lld "
                            "specified", (unsigned long long)val,
                            (long long)size);
    return memsave_start(call_monitor(call)->memsave, call, call_vm(call),
                         (uint64_t)val, (uint64_t)size,
                         json_string_value(json_object_get(args, "filename")),
                         err);
}

static json_t *qmp_pmemsave(struct mr_qmp_call *call, json_t *args,
                            struct mr_error *err)
{
    save_range(call, args, err);
    return NULL;
}

/* Virtual = physical: the guest runs on an identity map. */
static json_t *qmp_memsave(struct mr_qmp_call *call, json_t *args,
                           struct mr_error *err)
{
    json_t *cpu = json_object_get(args, "cpu-index");

    if (cpu && json_integer_value(cpu) != 0) {
        mr_error_set(err, -EINVAL, "Parameter 'cpu-index' expects a CPU "
                     "number");
        return NULL;
    }
    save_range(call, args, err);
    return NULL;
}

static const struct mr_qmp_arg save_args[] = {
    { "val", MR_QMP_T_INT, false },
    { "size", MR_QMP_T_INT, false },
    { "filename", MR_QMP_T_STR, false },
    { NULL, MR_QMP_T_ANY, false },
};

static const struct mr_qmp_arg memsave_args[] = {
    { "val", MR_QMP_T_INT, false },
    { "size", MR_QMP_T_INT, false },
    { "filename", MR_QMP_T_STR, false },
    { "cpu-index", MR_QMP_T_INT, true },
    { NULL, MR_QMP_T_ANY, false },
};

static const struct mr_qmp_command vm_commands[] = {
    { "query-status", qmp_query_status, NULL },
    { "query-name", qmp_query_name, NULL },
    { "query-memory-size-summary", qmp_query_memory_size_summary, NULL },
    { "stop", qmp_stop, NULL },
    { "cont", qmp_cont, NULL },
    { "quit", qmp_quit, NULL },
    { "pmemsave", qmp_pmemsave, save_args },
    { "memsave", qmp_memsave, memsave_args },
    { NULL, NULL, NULL },
};

/* QEMU's hmp_info_status: "paused" alone for the paused state, with the
 * run state in parentheses for the others. */
static void hmp_info_status(struct mr_qmp_call *call, const char *args,
                            FILE *out)
{
    enum mr_runstate state = vm_mr_ops.runstate(call_vm(call));

    (void)args;
    if (state == MR_RUN_RUNNING)
        fprintf(out, "VM status: running\n");
    else if (state == MR_RUN_PAUSED)
        fprintf(out, "VM status: paused\n");
    else
        fprintf(out, "VM status: paused (%s)\n", mr_runstate_name(state));
}

static void hmp_info_name(struct mr_qmp_call *call, const char *args,
                          FILE *out)
{
    const char *name = call_vm(call)->cfg->name;

    (void)args;
    if (name)
        fprintf(out, "%s\n", name);
}

static void hmp_stop(struct mr_qmp_call *call, const char *args, FILE *out)
{
    struct mr_error err = MR_ERROR_INIT;

    (void)args;
    if (vm_qmp_stop(call_vm(call), &err) < 0)
        fprintf(out, "Error: %s\n", err.msg);
}

static void hmp_cont(struct mr_qmp_call *call, const char *args, FILE *out)
{
    struct mr_error err = MR_ERROR_INIT;

    (void)args;
    if (vm_qmp_cont(call_vm(call), &err) < 0)
        fprintf(out, "Error: %s\n", err.msg);
}

static void hmp_quit(struct mr_qmp_call *call, const char *args, FILE *out)
{
    (void)args;
    (void)out;
    request_quit(call);
}

static const struct mr_hmp_command vm_hmp_commands[] = {
    { "info status", hmp_info_status },
    { "info name", hmp_info_name },
    { "stop", hmp_stop },
    { "cont", hmp_cont },
    { "c", hmp_cont },
    { "quit", hmp_quit },
    { "q", hmp_quit },
    { NULL, NULL },
};

static void emit_event(void *opaque, const char *event)
{
    struct monitor *mon = opaque;

    mr_qmp_server_emit_event(mon->srv, event, NULL);
}

struct monitor *monitor_new(struct vm *vm, struct mr_error *err)
{
    static const struct mr_qmp_server_config cfg = { 10, 0, 2, "mapram-vm" };
    struct monitor *mon = calloc(1, sizeof(*mon));
    int rc = 0;

    if (!mon) {
        mr_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    mon->vm = vm;
    mon->srv = mr_qmp_server_new(&cfg, err);
    mon->fdsets = mr_fdset_registry_new();
    mon->memsave = memsave_new(err);
    if (!mon->srv || !mon->fdsets || !mon->memsave)
        rc = mr_error_set(err, -ENOMEM, "cannot create the monitor");
    for (size_t i = 0; rc == 0 && i < vm->cfg->nr_qmp; i++)
        rc = mr_qmp_server_listen_unix(mon->srv, vm->cfg->qmp_paths[i], err);
    if (rc == 0)
        rc = mr_qmp_server_register(mon->srv, vm_commands, mon, err);
    if (rc == 0)
        rc = mr_qmp_server_register_hmp(mon->srv, vm_hmp_commands, mon, err);
    if (rc == 0)
        rc = mr_fdset_register_commands(mon->fdsets, mon->srv, err);
    if (rc < 0) {
        monitor_free(mon);
        return NULL;
    }
    vm->emit = emit_event;
    vm->emit_opaque = mon;
    return mon;
}

int monitor_start(struct monitor *mon, struct mr_error *err)
{
    return mr_qmp_server_start(mon->srv, err);
}

void monitor_shutdown(struct monitor *mon, const char *reason)
{
    if (!mon || !mon->srv)
        return;
    mr_qmp_server_quiesce(mon->srv);
    if (reason)
        mr_qmp_server_emit_event(mon->srv, "SHUTDOWN",
                                 json_pack("{s:b, s:s}", "guest", 0,
                                           "reason", reason));
    mr_qmp_server_stop(mon->srv);
    /* No handler runs now, so no copy starts; the running ones answer
     * into closed connections, which the server drops. */
    memsave_free(mon->memsave);
    mon->memsave = NULL;
}

void monitor_free(struct monitor *mon)
{
    if (!mon)
        return;
    /* vCPU and migration threads emit under vm->lock (vmhost.c). */
    pthread_mutex_lock(&mon->vm->lock);
    if (mon->vm->emit_opaque == mon)
        mon->vm->emit = NULL;
    pthread_mutex_unlock(&mon->vm->lock);
    monitor_shutdown(mon, NULL); /* the copies finish before the server goes */
    memsave_free(mon->memsave);
    mr_qmp_server_free(mon->srv);
    if (mon->fdsets)
        mr_fdset_registry_free(mon->fdsets);
    free(mon);
}

struct mr_qmp_server *monitor_server(struct monitor *mon)
{
    return mon->srv;
}

struct mr_fdset_registry *monitor_fdsets(struct monitor *mon)
{
    return mon->fdsets;
}
