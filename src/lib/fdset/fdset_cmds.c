/*
 * The monitor's view of the fdset registry: QMP add-fd, remove-fd,
 * query-fdsets, HMP `info fdsets` (QEMU 10 has no such HMP command; ours
 * prints the query-fdsets data), the reap of empty sets when a monitor
 * connection closes, and the command line's -add-fd option.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdset/fdset_internal.h"
#include "mapram/qmp.h"

static json_t *cmd_add_fd(struct mr_qmp_call *call, json_t *args,
                          struct mr_error *err)
{
    struct mr_fdset_registry *reg = mr_qmp_call_opaque(call);
    json_t *id = json_object_get(args, "fdset-id");
    int fd = mr_qmp_call_take_fd(call);
    int64_t out_id;

    if (fd < 0) {
        mr_error_set(err, -EBADF, "No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    if (mr_fdset_add_fd(reg, fd, id != NULL, json_integer_value(id),
                        json_string_value(json_object_get(args, "opaque")),
                        &out_id, err) < 0)
        return NULL;
    return json_pack("{s:I,s:i}", "fdset-id", (json_int_t)out_id, "fd", fd);
}

static json_t *cmd_remove_fd(struct mr_qmp_call *call, json_t *args,
                             struct mr_error *err)
{
    struct mr_fdset_registry *reg = mr_qmp_call_opaque(call);
    json_t *fd = json_object_get(args, "fd");

    mr_fdset_remove_fd(reg, json_integer_value(json_object_get(args,
                                                               "fdset-id")),
                       fd != NULL, json_integer_value(fd), err);
    return NULL;
}

static json_t *cmd_query_fdsets(struct mr_qmp_call *call, json_t *args,
                                struct mr_error *err)
{
    (void)args;
    (void)err;
    return mr_fdset_query(mr_qmp_call_opaque(call));
}

static void hmp_info_fdsets(struct mr_qmp_call *call, const char *args,
                            FILE *out)
{
    json_t *sets = mr_fdset_query(mr_qmp_call_opaque(call)), *set, *fd;
    size_t i, j;

    (void)args;
    json_array_foreach(sets, i, set) {
        fprintf(out, "fdset-id: %" JSON_INTEGER_FORMAT "\n",
                json_integer_value(json_object_get(set, "fdset-id")));
        json_array_foreach(json_object_get(set, "fds"), j, fd) {
            const char *opaque = json_string_value(json_object_get(fd,
                                                                   "opaque"));

            fprintf(out, "    fd: %" JSON_INTEGER_FORMAT,
                    json_integer_value(json_object_get(fd, "fd")));
            if (opaque)
                fprintf(out, "; opaque: %s", opaque);
            fprintf(out, "\n");
        }
    }
    json_decref(sets);
}

static const struct mr_qmp_arg add_fd_args[] = {
    { "fdset-id", MR_QMP_T_INT, true },
    { "opaque", MR_QMP_T_STR, true },
    { NULL },
};

static const struct mr_qmp_arg remove_fd_args[] = {
    { "fdset-id", MR_QMP_T_INT, false },
    { "fd", MR_QMP_T_INT, true },
    { NULL },
};

static const struct mr_qmp_command fdset_commands[] = {
    { "add-fd", cmd_add_fd, add_fd_args },
    { "remove-fd", cmd_remove_fd, remove_fd_args },
    { "query-fdsets", cmd_query_fdsets, NULL },
    { NULL },
};

static const struct mr_hmp_command fdset_hmp_commands[] = {
    { "info fdsets", hmp_info_fdsets },
    { NULL },
};

/* A monitor connection closed: completely empty sets go (docs/fdsets.md, "Lifecycle"). */
static void reap_on_disconnect(void *opaque)
{
    mr_fdset_reap_empty(opaque);
}

int mr_fdset_register_commands(struct mr_fdset_registry *reg,
                               struct mr_qmp_server *srv, struct mr_error *err)
{
    int rc = mr_qmp_server_register(srv, fdset_commands, reg, err);

    if (rc == 0)
        rc = mr_qmp_server_register_hmp(srv, fdset_hmp_commands, reg, err);
    if (rc == 0)
        mr_qmp_server_on_disconnect(srv, reap_on_disconnect, reg);
    return rc;
}

/* --- -add-fd fd=N,set=ID[,opaque=S] --- */

struct add_fd_opts {
    long long fd, set;
    char *opaque;
};

static int parse_number(const char *key, const char *val, long long *out,
                        struct mr_error *err)
{
    char *end;

    errno = 0;
    *out = strtoll(val, &end, 10);
    if (end == val || *end || errno)
        return mr_error_set(err, -EINVAL, "Parameter '%s' expects a number",
                            key);
    return 0;
}

static int parse_pair(char *pair, struct add_fd_opts *o, struct mr_error *err)
{
    char *eq = strchr(pair, '=');

    if (!eq)
        return mr_error_set(err, -EINVAL, "Invalid parameter '%s'", pair);
    *eq = '\0';
    if (!strcmp(pair, "fd"))
        return parse_number("fd", eq + 1, &o->fd, err);
    if (!strcmp(pair, "set"))
        return parse_number("set", eq + 1, &o->set, err);
    if (!strcmp(pair, "opaque")) {
        free(o->opaque);
        o->opaque = strdup(eq + 1);
        return o->opaque ? 0 : mr_error_set(err, -ENOMEM, "Out of memory");
    }
    return mr_error_set(err, -EINVAL, "Invalid parameter '%s'", pair);
}

static int parse_add_fd(const char *option, struct add_fd_opts *o,
                        struct mr_error *err)
{
    char *copy = strdup(option), *save = NULL, *pair;
    int rc = 0;

    if (!copy)
        return mr_error_set(err, -ENOMEM, "Out of memory");
    for (pair = strtok_r(copy, ",", &save); pair && rc == 0;
         pair = strtok_r(NULL, ",", &save))
        rc = parse_pair(pair, o, err);
    free(copy);
    return rc;
}

/* The checks of QEMU's -add-fd, in its order. */
static int check_add_fd(const struct add_fd_opts *o, struct mr_error *err)
{
    int fd_flags;

    if (o->fd < 0)
        return mr_error_set(err, -EINVAL,
                            "fd option is required and must be non-negative");
    if (o->fd <= STDERR_FILENO)
        return mr_error_set(err, -EINVAL, "fd cannot be a standard I/O stream");
    fd_flags = o->fd > INT32_MAX ? -1 : fcntl((int)o->fd, F_GETFD);
    if (fd_flags < 0 || (fd_flags & FD_CLOEXEC))
        return mr_error_set(err, -EBADF, "fd is not valid or already in use");
    if (o->set < 0)
        return mr_error_set(err, -EINVAL,
                            "set option is required and must be non-negative");
    return 0;
}

int mr_fdset_add_fd_option(struct mr_fdset_registry *reg, const char *option,
                           struct mr_error *err)
{
    struct add_fd_opts o = { -1, -1, NULL };
    int rc, dup;

    rc = parse_add_fd(option, &o, err);
    if (rc == 0)
        rc = check_add_fd(&o, err);
    if (rc == 0) {
        dup = fcntl((int)o.fd, F_DUPFD_CLOEXEC, 0);
        if (dup < 0)
            rc = mr_error_set(err, -errno, "error duplicating fd: %s",
                              strerror(errno));
        else
            rc = mr_fdset_add_fd(reg, dup, true, o.set, o.opaque, NULL, err);
    }
    free(o.opaque);
    return rc;
}
