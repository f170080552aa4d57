/*
 * fdset up-front rules (see fdset_rules.h).  The pure part decides from
 * flags and description ids (fdset_probe.c gathers them).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "migration/fdset_rules.h"

#define MAX_PROBE 8

static bool has_match(const struct mr_fdset_fdinfo *fds, int n, int wanted,
                      int *which)
{
    for (int i = 0; i < n; i++) {
        /* docs/fdsets.md, "Opening /dev/fdset/ID": access mode and O_DIRECT must agree. */
        int mask = O_ACCMODE | O_DIRECT;
        if ((wanted & mask) == (fds[i].flags & mask)) {
            *which = i;
            return true;
        }
    }
    return false;
}

int mr_fdset_rules_source(const struct mr_fdset_fdinfo *fds, int total,
                          bool multifd, bool direct_io, struct mr_error *err)
{
    int main_flags = O_WRONLY | O_CREAT;
    int chan_flags = O_WRONLY | (direct_io ? O_DIRECT : 0);
    int a, b;

    if (!multifd)
        return mr_error_set(err, -EINVAL,
                            "fdset is only supported with multifd");
    if (total != 2)
        return mr_error_set(err, -EINVAL, "Outgoing migration needs two fds "
                            "in the fdset, got %d", total);
    if (fds[0].desc_id == fds[1].desc_id)
        return mr_error_set(err, -EINVAL, "Outgoing migration needs two fds "
                            "in the fdset that are not duplicates of each "
                            "other");
    if (!has_match(fds, 2, main_flags, &a))
        return mr_error_set(err, -EACCES, "Fdset is missing a file "
                            "descriptor with flags: 0x%x", main_flags);
    if (!has_match(fds, 2, chan_flags, &b))
        return mr_error_set(err, -EACCES, "Fdset is missing a file "
                            "descriptor with flags: 0x%x", chan_flags);
    /* Both fds must be write-only: the channels may use either. */
    for (int i = 0; i < 2; i++)
        if ((fds[i].flags & O_ACCMODE) != O_WRONLY)
            return mr_error_set(err, -EACCES, "Fdset is missing a file "
                                "descriptor with flags: 0x%x",
                                (fds[i].flags & O_DIRECT) ? chan_flags
                                                          : main_flags);
    return 0;
}

int mr_fdset_rules_dest(const struct mr_fdset_fdinfo *fds, int total,
                        bool direct_io, struct mr_error *err)
{
    int a, b;
    int n = total < MAX_PROBE ? total : MAX_PROBE;

    if (!has_match(fds, n, O_RDONLY, &a))
        return mr_error_set(err, -EACCES, "Fdset is missing a file "
                            "descriptor with flags: 0x%x", O_RDONLY);
    if (!direct_io)
        return 0;
    if (!has_match(fds, n, O_RDONLY | O_DIRECT, &b))
        return mr_error_set(err, -EACCES, "Fdset is missing a file "
                            "descriptor with flags: 0x%x", O_RDONLY | O_DIRECT);
    if (fds[a].desc_id == fds[b].desc_id)
        return mr_error_set(err, -EINVAL, "Incoming migration needs two fds "
                            "in the fdset that are not duplicates of each "
                            "other");
    return 0;
}

