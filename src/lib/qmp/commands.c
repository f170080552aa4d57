/*
 * Command tables and the built-in QMP commands: qmp_capabilities,
 * query-version, query-commands (human-monitor-command lives in hmp.c).
 * The built-ins are the server's first table, so a module cannot register
 * a command that shadows them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/qmp_internal.h"

static json_t *cmd_qmp_capabilities(struct mr_qmp_call *call, json_t *args,
                                    struct mr_error *err)
{
    json_t *enable = json_object_get(args, "enable"), *v;
    bool oob = false;
    size_t i;

    if (call->conn->negotiated) {
        mr_qmp_call_set_error_class(call, "CommandNotFound");
        mr_error_set(err, -EINVAL,
                     "Capabilities negotiation is already complete, command ignored");
        return NULL;
    }
    json_array_foreach(enable, i, v) {
        if (!json_is_string(v)) {
            mr_error_set(err, -EINVAL,
                         "Invalid parameter type for 'enable[%zu]', expected: string",
                         i);
            return NULL;
        }
        if (strcmp(json_string_value(v), "oob") != 0) {
            /* QEMU 10.0 names the list element 'null' here (sic). */
            mr_error_set(err, -EINVAL,
                         "Parameter 'null' does not accept value '%s'",
                         json_string_value(v));
            return NULL;
        }
        oob = true;
    }
    call->conn->oob = oob;
    /* Events go to negotiated connections; emitters read this locked. */
    pthread_mutex_lock(&call->srv->lock);
    call->conn->negotiated = true;
    pthread_mutex_unlock(&call->srv->lock);
    return NULL;
}

static json_t *cmd_query_version(struct mr_qmp_call *call, json_t *args,
                                 struct mr_error *err)
{
    const struct mr_qmp_server_config *cfg = &call->srv->cfg;

    (void)args;
    (void)err;
    return json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "major",
                     cfg->version_major, "minor", cfg->version_minor,
                     "micro", cfg->version_micro, "package",
                     call->srv->package);
}

static json_t *cmd_query_commands(struct mr_qmp_call *call, json_t *args,
                                  struct mr_error *err)
{
    struct mr_qmp_server *srv = call->srv;
    json_t *list = json_array();
    size_t t;

    (void)args;
    (void)err;
    for (t = 0; list && t < srv->nr_tables; t++) {
        const struct mr_qmp_command *c;

        for (c = srv->tables[t].cmds; c->name; c++)
            json_array_append_new(list, json_pack("{s:s}", "name", c->name));
    }
    return list;
}

static const struct mr_qmp_arg capabilities_args[] = {
    { "enable", MR_QMP_T_ARRAY, true },
    { NULL },
};

static const struct mr_qmp_arg hmp_args[] = {
    { "command-line", MR_QMP_T_STR, false },
    { "cpu-index", MR_QMP_T_INT, true },
    { NULL },
};

const struct mr_qmp_command mr_qmp_builtin_commands[] = {
    { "qmp_capabilities", cmd_qmp_capabilities, capabilities_args },
    { "query-version", cmd_query_version, NULL },
    { "query-commands", cmd_query_commands, NULL },
    { "human-monitor-command", mr_qmp_hmp_command, hmp_args },
    { NULL },
};

const struct mr_qmp_command *mr_qmp_find_command(struct mr_qmp_server *srv,
                                                 const char *name,
                                                 void **opaque)
{
    size_t t;

    for (t = 0; t < srv->nr_tables; t++) {
        const struct mr_qmp_command *c;

        for (c = srv->tables[t].cmds; c->name; c++) {
            if (!strcmp(c->name, name)) {
                if (opaque)
                    *opaque = srv->tables[t].opaque;
                return c;
            }
        }
    }
    return NULL;
}

int mr_qmp_server_register(struct mr_qmp_server *srv,
                           const struct mr_qmp_command *cmds, void *opaque,
                           struct mr_error *err)
{
    const struct mr_qmp_command *c, *d;
    struct mr_qmp_table *t;

    if (srv->running)
        return mr_error_set(err, -EBUSY,
                            "QMP commands must be registered before the monitor starts");
    for (c = cmds; c->name; c++) {
        if (!c->handler)
            return mr_error_set(err, -EINVAL, "QMP command '%s' has no handler",
                                c->name);
        for (d = cmds; d != c; d++)
            if (!strcmp(d->name, c->name))
                break;
        if (d != c || mr_qmp_find_command(srv, c->name, NULL))
            return mr_error_set(err, -EEXIST,
                                "QMP command '%s' is already registered",
                                c->name);
    }
    t = realloc(srv->tables, (srv->nr_tables + 1) * sizeof(*t));
    if (!t)
        return mr_error_set(err, -ENOMEM, "Out of memory");
    srv->tables = t;
    t[srv->nr_tables].cmds = cmds;
    t[srv->nr_tables].opaque = opaque;
    srv->nr_tables++;
    return 0;
}

int mr_qmp_server_register_hmp(struct mr_qmp_server *srv,
                               const struct mr_hmp_command *cmds, void *opaque,
                               struct mr_error *err)
{
    struct mr_hmp_table *t;

    if (srv->running)
        return mr_error_set(err, -EBUSY,
                            "HMP commands must be registered before the monitor starts");
    t = realloc(srv->hmp_tables, (srv->nr_hmp_tables + 1) * sizeof(*t));
    if (!t)
        return mr_error_set(err, -ENOMEM, "Out of memory");
    srv->hmp_tables = t;
    t[srv->nr_hmp_tables].cmds = cmds;
    t[srv->nr_hmp_tables].opaque = opaque;
    srv->nr_hmp_tables++;
    return 0;
}

void mr_qmp_server_on_disconnect(struct mr_qmp_server *srv,
                                 void (*cb)(void *opaque), void *opaque)
{
    struct mr_qmp_disconnect_cb *d;

    d = realloc(srv->disc, (srv->nr_disc + 1) * sizeof(*d));
    if (!d)
        return;
    srv->disc = d;
    d[srv->nr_disc].cb = cb;
    d[srv->nr_disc].opaque = opaque;
    srv->nr_disc++;
}
