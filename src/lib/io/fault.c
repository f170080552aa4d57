/*
 * Fault plans: parsing (always built) and the process-wide counter that
 * fires a plan (fault-injection builds only).  A process-wide plan is
 * deliberate: it is a test seam reached through the environment by
 * mapram-vm and the CLI, like CRIU_FAULT, not an engine setting.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "io/fault.h"

static const char *const op_names[MR_FAULT_OP_COUNT] = {
    [MR_FAULT_OP_WRITE] = "write",         [MR_FAULT_OP_READ] = "read",
    [MR_FAULT_OP_OPEN] = "open",           [MR_FAULT_OP_FCNTL] = "fcntl",
    [MR_FAULT_OP_FTRUNCATE] = "ftruncate", [MR_FAULT_OP_FALLOCATE] = "fallocate",
    [MR_FAULT_OP_FDATASYNC] = "fdatasync", [MR_FAULT_OP_PWRITE] = "pwrite",
    [MR_FAULT_OP_PREAD] = "pread",         [MR_FAULT_OP_USERFAULTFD] = "userfaultfd",
    [MR_FAULT_OP_UFFD_READ] = "uffd-read", [MR_FAULT_OP_LAZY_READ] = "lazy-read",
};

static const struct {
    const char *name;
    enum mr_fault_kind kind;
} kind_names[] = {
    { "short", MR_FAULT_SHORT },   { "eio", MR_FAULT_EIO },
    { "enospc", MR_FAULT_ENOSPC }, { "eintr", MR_FAULT_EINTR },
    { "eagain", MR_FAULT_EAGAIN },
};

static int parse_op(const char *s, size_t len, enum mr_fault_op *op)
{
    for (int i = 0; i < MR_FAULT_OP_COUNT; i++) {
        if (strlen(op_names[i]) == len && !strncmp(s, op_names[i], len)) {
            *op = (enum mr_fault_op)i;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_kind(const char *s, enum mr_fault_kind *kind)
{
    for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
        if (!strcmp(s, kind_names[i].name)) {
            *kind = kind_names[i].kind;
            return 0;
        }
    }
    return -EINVAL;
}

int mr_fault_parse(const char *spec, struct mr_fault_plan *plan,
                   struct mr_error *err)
{
    const char *c1 = strchr(spec, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    unsigned long long nth;
    char *end;

    if (!c2)
        return mr_error_set(err, -EINVAL,
                            "Invalid fault plan '%s': expected <op>:<N>:<kind>",
                            spec);
    if (parse_op(spec, (size_t)(c1 - spec), &plan->op) < 0)
        return mr_error_set(err, -EINVAL, "Invalid fault plan '%s': unknown "
                            "operation '%.*s'", spec, (int)(c1 - spec), spec);
    errno = 0;
    nth = strtoull(c1 + 1, &end, 10);
    if (end != c2 || c1 + 1 == c2 || errno || nth == 0)
        return mr_error_set(err, -EINVAL, "Invalid fault plan '%s': N must "
                            "be a positive integer", spec);
    plan->nth = nth;
    if (parse_kind(c2 + 1, &plan->kind) < 0)
        return mr_error_set(err, -EINVAL, "Invalid fault plan '%s': unknown "
                            "fault '%s'", spec, c2 + 1);
    return 0;
}

#ifdef MR_FAULT_INJECTION

static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static bool plan_active;
static struct mr_fault_plan plan_cur;
static uint64_t op_count;
static unsigned fired;

static void load_env(void)
{
    const char *spec = getenv("MAPRAM_FAULT");
    struct mr_fault_plan p;

    /* A bad plan in the environment is ignored rather than fatal: a test
     * harness that typos it sees "never fired". */
    if (spec && *spec && mr_fault_parse(spec, &p, NULL) == 0) {
        pthread_mutex_lock(&plan_lock);
        plan_cur = p;
        plan_active = true;
        pthread_mutex_unlock(&plan_lock);
    }
}

void mr_fault_set(const struct mr_fault_plan *plan)
{
    /* The API overrides the environment: consume the once first. */
    pthread_once(&env_once, load_env);
    pthread_mutex_lock(&plan_lock);
    plan_active = plan != NULL;
    if (plan)
        plan_cur = *plan;
    op_count = 0;
    fired = 0;
    pthread_mutex_unlock(&plan_lock);
}

unsigned mr_fault_fired(void)
{
    unsigned n;

    pthread_mutex_lock(&plan_lock);
    n = fired;
    pthread_mutex_unlock(&plan_lock);
    return n;
}

static ssize_t inject(enum mr_fault_op op, enum mr_fault_kind kind,
                      ssize_t res)
{
    static const int codes[] = {
        [MR_FAULT_EIO] = EIO,     [MR_FAULT_ENOSPC] = ENOSPC,
        [MR_FAULT_EINTR] = EINTR, [MR_FAULT_EAGAIN] = EAGAIN,
    };
    bool moves_bytes = op == MR_FAULT_OP_WRITE || op == MR_FAULT_OP_READ ||
                       op == MR_FAULT_OP_PWRITE || op == MR_FAULT_OP_PREAD ||
                       op == MR_FAULT_OP_LAZY_READ;

    if (kind != MR_FAULT_SHORT)
        return -codes[kind];
    if (!moves_bytes)
        return -EIO;
    if (res <= 1)
        return res;           /* nothing to shorten; leave it */
    return res / 2 >= 4096 ? (res / 2) & ~(ssize_t)4095 : res / 2;
}

ssize_t mr_fault_filter(enum mr_fault_op op, ssize_t res)
{
    bool hit = false;
    enum mr_fault_kind kind = MR_FAULT_EIO;

    pthread_once(&env_once, load_env);
    pthread_mutex_lock(&plan_lock);
    if (plan_active && plan_cur.op == op && ++op_count == plan_cur.nth) {
        hit = true;
        kind = plan_cur.kind;
        fired++;
    }
    pthread_mutex_unlock(&plan_lock);
    return hit ? inject(op, kind, res) : res;
}

#endif
