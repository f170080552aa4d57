/*
 * The command tables: QMP and HMP registration with its rules (no
 * duplicates, nothing after the monitor started), lookup by name, and the
 * disconnect callbacks.  Data only: it calls no handler and no other file
 * of the monitor.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/qmp_internal.h"

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

const struct mr_hmp_command *mr_hmp_find_command(struct mr_qmp_server *srv,
                                                const char *name,
                                                void **opaque)
{
    size_t t;

    for (t = 0; t < srv->nr_hmp_tables; t++) {
        const struct mr_hmp_command *c;

        for (c = srv->hmp_tables[t].cmds; c->name; c++) {
            if (!strcmp(c->name, name)) {
                *opaque = srv->hmp_tables[t].opaque;
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
