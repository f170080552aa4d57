/*
 * Gathers what the fdset rules need from the kernel: status flags, and
 * whether two descriptors share an open file description (kcmp), because
 * dup()ed descriptors share status flags and so cannot be one O_DIRECT and
 * one not.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mapram/fdset.h"
#include "migration/fdset_rules.h"

#define KCMP_FILE_TYPE 0 /* KCMP_FILE from linux/kcmp.h */
#define MAX_PROBE 8

/* Same open file description?  kcmp answers exactly; where it is not
 * available (seccomp, kernels without CONFIG_KCMP) the descriptors are
 * assumed distinct and a dup shows up later as an O_DIRECT open failure. */
static bool same_description(int fd1, int fd2)
{
    pid_t pid = getpid();
    long r = syscall(SYS_kcmp, pid, pid, KCMP_FILE_TYPE, fd1, fd2);

    return r == 0;
}

int mr_fdset_rules_probe(struct mr_fdset_registry *reg, const char *path,
                         bool source, bool multifd, bool direct_io,
                         struct mr_error *err)
{
    struct mr_fdset_fdinfo info[MAX_PROBE];
    int fds[MAX_PROBE], flags[MAX_PROBE];
    const char *idstr = path + strlen("/dev/fdset/");
    char *end;
    long id = strtol(idstr, &end, 10);
    int total;

    if (source && !multifd)
        return mr_error_set(err, -EINVAL,
                            "fdset is only supported with multifd");
    if (!*idstr || *end || id < 0)
        return mr_error_set(err, -EINVAL, "Could not parse fdset %s", path);
    if (!reg)
        return mr_error_set(err, -ENOENT, "Failed to find fdset %s", path);
    total = mr_fdset_list(reg, id, fds, flags, MAX_PROBE, err);
    if (total < 0)
        return total;
    for (int i = 0; i < total && i < MAX_PROBE; i++) {
        info[i].flags = flags[i];
        info[i].desc_id = i;
        for (int j = 0; j < i; j++)
            if (same_description(fds[j], fds[i]))
                info[i].desc_id = info[j].desc_id;
    }
    if (source)
        return mr_fdset_rules_source(info, total, multifd, direct_io, err);
    return mr_fdset_rules_dest(info, total, direct_io, err);
}
