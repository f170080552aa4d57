/*
 * The built-in QMP commands: qmp_capabilities, query-version,
 * query-commands, and the table that adds human-monitor-command (hmp.c).
 * The server registers it first, so a module cannot shadow a built-in.
 * Handlers: they use the call helpers (call.c) and the tables' data.
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

    if (mr_qmp_call_negotiated(call)) {
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
    mr_qmp_call_negotiate(call, oob);
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
