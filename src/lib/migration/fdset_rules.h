/*
 * Up-front checks of an fdset handed in for a file migration (seed 001 and
 * docs/fdsets.md, "What a migration needs" and docs/management.md, "Descriptors"): mapram refuses a set that cannot work before anything
 * is opened, instead of failing later on a secondary channel.  The rule is
 * pure over a list of {status flags, open-file-description id}; the caller
 * gathers those with fcntl() and kcmp() (fdset_rules_probe).
 */
#ifndef MAPRAM_MIGRATION_FDSET_RULES_H
#define MAPRAM_MIGRATION_FDSET_RULES_H

#include <stdbool.h>

#include "mapram/error.h"

struct mr_fdset_fdinfo {
    int flags;   /* F_GETFL */
    int desc_id; /* equal ids share one open file description (dup'ed) */
};

/* Source: multifd required, exactly two fds, not dup'ed, O_WRONLY, one
 * O_DIRECT when direct-io is effective.  `total` = fds in the set. */
int mr_fdset_rules_source(const struct mr_fdset_fdinfo *fds, int total,
                          bool multifd, bool direct_io, struct mr_error *err);
/* Destination: an O_RDONLY fd, plus an O_RDONLY|O_DIRECT one (not a dup
 * of it) when direct-io is effective. */
int mr_fdset_rules_dest(const struct mr_fdset_fdinfo *fds, int total,
                        bool direct_io, struct mr_error *err);

struct mr_fdset_registry;
/* Gather flags and description ids of set `path` and apply the rule. */
int mr_fdset_rules_probe(struct mr_fdset_registry *reg, const char *path,
                         bool source, bool multifd, bool direct_io,
                         struct mr_error *err);

#endif
