/*
 * fdsets: descriptors handed in by a management layer (docs/fdsets.md).
 */
#ifndef MAPRAM_FDSET_H
#define MAPRAM_FDSET_H

#include <jansson.h>
/* json_t: mr_fdset_query returns query-fdsets' JSON shape for QMP. */
#include <stdbool.h>
#include <stdint.h>

#include "mapram/error.h"

/*
 * A registry per VM holds fdsets, each with the user's descriptors (added
 * with add-fd, newest first) and the duplicates handed out by opening
 * `/dev/fdset/N`.  A set lives while either list is non-empty.  The
 * matching rule (access mode and O_DIRECT must agree) is a pure function so
 * it is unit-tested alone; the registry calls fcntl() outside its lock.
 * All functions are thread-safe.
 */

struct mr_fdset_registry;
struct mr_qmp_server;

struct mr_fdset_registry *mr_fdset_registry_new(void);
/* Closes every user descriptor and duplicate still held. */
void mr_fdset_registry_free(struct mr_fdset_registry *reg);

/* add-fd: takes ownership of `fd` (closed on error).  `fdset_id` < 0 with
 * `has_id` false means "lowest free id".  `opaque` may be NULL. */
int mr_fdset_add_fd(struct mr_fdset_registry *reg, int fd, bool has_id,
                    int64_t fdset_id, const char *opaque,
                    int64_t *out_fdset_id, struct mr_error *err);
/* remove-fd: `fd` < 0 means every user descriptor of the set. */
int mr_fdset_remove_fd(struct mr_fdset_registry *reg, int64_t fdset_id,
                       bool has_fd, int64_t fd, struct mr_error *err);
/* query-fdsets result, QEMU's order (new reference). */
json_t *mr_fdset_query(struct mr_fdset_registry *reg);
/* Drop sets with neither user descriptors nor duplicates. */
void mr_fdset_reap_empty(struct mr_fdset_registry *reg);

/* A snapshot of set `fdset_id`'s user descriptors, newest first: up to
 * `max` descriptors (borrowed: valid while they stay in the set) and their
 * F_GETFL status flags.  Returns how many the set holds (possibly > max),
 * or -ENOENT with QEMU's "Failed to find fdset" message.  For up-front
 * validation of what a management layer handed in. */
int mr_fdset_list(struct mr_fdset_registry *reg, int64_t fdset_id, int *fds,
                  int *flags, int max, struct mr_error *err);

/* True for paths of the form /dev/fdset/... */
bool mr_fdset_path_is_fdset(const char *path);
/* Open `/dev/fdset/N` with `flags`: duplicate the newest matching fd, apply
 * the flags, track the duplicate.  Returns the fd or a negative errno with
 * QEMU's message in `err`. */
int mr_fdset_open(struct mr_fdset_registry *reg, const char *path, int flags,
                  struct mr_error *err);
/* Close a descriptor; if it is a tracked duplicate, untrack it first (and
 * drop its set if that left it empty).  Plain descriptors are just closed. */
int mr_fdset_close(struct mr_fdset_registry *reg, int fd);

/* The pure rule: does a descriptor with status flags `fd_flags` satisfy an
 * open with `requested_flags`? */
bool mr_fdset_flags_match(int requested_flags, int fd_flags);

/* The command line's `-add-fd fd=N,set=ID[,opaque=S]` (docs/fdsets.md, "add-fd"):
 * duplicates inherited descriptor N (close-on-exec) into set ID.  N itself
 * is left open for the caller. */
int mr_fdset_add_fd_option(struct mr_fdset_registry *reg, const char *option,
                           struct mr_error *err);

/* Register add-fd, remove-fd, query-fdsets and HMP `info fdsets`. */
int mr_fdset_register_commands(struct mr_fdset_registry *reg,
                               struct mr_qmp_server *srv, struct mr_error *err);

#endif
