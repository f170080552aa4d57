/* fdset registry internals, shared by fdset.c and fdset_cmds.c. */
#ifndef MAPRAM_FDSET_INTERNAL_H
#define MAPRAM_FDSET_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "mapram/fdset.h"

struct fdset_fd {
    int fd;
    char *opaque;           /* NULL: none */
    struct fdset_fd *next;
};

struct fdset_dup {
    int fd;
    struct fdset_dup *next;
};

struct fdset {
    int64_t id;
    struct fdset_fd *fds;   /* user descriptors, newest first */
    struct fdset_dup *dups; /* handed out by mr_fdset_open, newest first */
    struct fdset *next;     /* ascending id */
};

/* User descriptors held by one registry: a client looping on add-fd must
 * not exhaust the process's descriptor table (QEMU has no such cap). */
#define MR_FDSET_MAX_USER_FDS 256

struct mr_fdset_registry {
    pthread_mutex_t lock;
    struct fdset *sets;
    int nr_user_fds;
};

/* "/dev/fdset/<id>" -> id (0..INT_MAX, decimal, nothing trailing). */
int mr_fdset_parse_path(const char *path, int64_t *id, struct mr_error *err);

#endif
