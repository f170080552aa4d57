/*
 * The migration state machines: a const table of allowed transitions,
 * compare-and-swap moves, one MIGRATION event each.  Who performs each
 * transition: docs/migration.md, "States".
 */
#include "migration/state.h"

#define B(s) (1u << (s))

static const unsigned out_table[MR_MIG__MAX] = {
    [MR_MIG_NONE] = B(MR_MIG_SETUP),
    [MR_MIG_SETUP] = B(MR_MIG_ACTIVE) | B(MR_MIG_FAILED) |
                     B(MR_MIG_CANCELLING) | B(MR_MIG_CANCELLED),
    [MR_MIG_ACTIVE] = B(MR_MIG_DEVICE) | B(MR_MIG_PRE_SWITCHOVER) |
                      B(MR_MIG_FAILED) | B(MR_MIG_CANCELLING),
    [MR_MIG_PRE_SWITCHOVER] = B(MR_MIG_DEVICE) | B(MR_MIG_FAILED) |
                              B(MR_MIG_CANCELLING),
    [MR_MIG_DEVICE] = B(MR_MIG_COMPLETED) | B(MR_MIG_FAILED) |
                      B(MR_MIG_CANCELLING),
    [MR_MIG_CANCELLING] = B(MR_MIG_CANCELLED) | B(MR_MIG_FAILED),
};

static const unsigned in_table[MR_MIG__MAX] = {
    [MR_MIG_NONE] = B(MR_MIG_SETUP),
    [MR_MIG_SETUP] = B(MR_MIG_ACTIVE) | B(MR_MIG_FAILED),
    [MR_MIG_ACTIVE] = B(MR_MIG_COMPLETED) | B(MR_MIG_FAILED) |
                      B(MR_MIG_POSTCOPY_ACTIVE),
    [MR_MIG_POSTCOPY_ACTIVE] = B(MR_MIG_COMPLETED) | B(MR_MIG_FAILED),
};

static const char *const status_names[MR_MIG__MAX] = {
    "none", "setup", "cancelling", "cancelled", "active", "postcopy-active",
    "postcopy-paused", "postcopy-recover-setup", "postcopy-recover",
    "completed", "failed", "colo", "pre-switchover", "device", "wait-unplug",
};

const char *mr_mig_status_name(enum mr_mig_status st)
{
    return (unsigned)st < MR_MIG__MAX ? status_names[st] : "unknown";
}

void mr_mig_state_init(struct mr_mig_state *s, bool incoming,
                       mr_mig_state_cb cb, void *opaque)
{
    atomic_init(&s->cur, MR_MIG_NONE);
    s->incoming = incoming;
    s->cb = cb;
    s->opaque = opaque;
}

bool mr_mig_state_allowed(bool incoming, enum mr_mig_status from,
                          enum mr_mig_status to)
{
    const unsigned *t = incoming ? in_table : out_table;

    if ((unsigned)from >= MR_MIG__MAX || (unsigned)to >= MR_MIG__MAX)
        return false;
    return t[from] & B(to);
}

bool mr_mig_state_cas(struct mr_mig_state *s, enum mr_mig_status from,
                      enum mr_mig_status to)
{
    int expected = (int)from;

    if (!mr_mig_state_allowed(s->incoming, from, to))
        return false;
    if (!atomic_compare_exchange_strong(&s->cur, &expected, (int)to))
        return false;
    if (s->cb)
        s->cb(s->opaque, to);
    return true;
}

enum mr_mig_status mr_mig_state_get(const struct mr_mig_state *s)
{
    return (enum mr_mig_status)atomic_load(&s->cur);
}

bool mr_mig_status_is_terminal(enum mr_mig_status st)
{
    return st == MR_MIG_COMPLETED || st == MR_MIG_FAILED ||
           st == MR_MIG_CANCELLED;
}

bool mr_mig_status_is_running(enum mr_mig_status st)
{
    return st != MR_MIG_NONE && !mr_mig_status_is_terminal(st);
}

bool mr_mig_state_reset(struct mr_mig_state *s)
{
    int cur = atomic_load(&s->cur);

    if (cur == MR_MIG_NONE)
        return true;
    if (!mr_mig_status_is_terminal((enum mr_mig_status)cur))
        return false;
    return atomic_compare_exchange_strong(&s->cur, &cur, MR_MIG_NONE);
}
