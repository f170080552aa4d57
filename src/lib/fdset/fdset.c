/*
 * The fdset registry (docs/fdsets.md): sets sorted by id, each holding the
 * user's descriptors (newest first) and the duplicates handed out by
 * opening /dev/fdset/N; one mutex over the lists, descriptor syscalls
 * outside it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdset/fdset_internal.h"

/*
 * The fdset registry (docs/fdsets.md): sets sorted by id, each holding the
 * user's descriptors (newest first, with their opaque strings) and the
 * duplicates handed out by opening /dev/fdset/N.  A set lives while either
 * list is non-empty.  One mutex protects the lists; descriptor syscalls
 * (fcntl, dup, close) happen outside it, on snapshots, so a slow or odd
 * descriptor never stalls another thread holding the registry.
 */

#define FDSET_PREFIX "/dev/fdset/"
#define OPEN_SCAN_MAX 64 /* user descriptors examined per open */

struct mr_fdset_registry *mr_fdset_registry_new(void)
{
    struct mr_fdset_registry *reg = calloc(1, sizeof(*reg));

    if (reg)
        pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

static void free_set(struct fdset *set)
{
    struct fdset_fd *f;
    struct fdset_dup *d;

    while ((f = set->fds)) {
        set->fds = f->next;
        close(f->fd);
        free(f->opaque);
        free(f);
    }
    while ((d = set->dups)) {
        set->dups = d->next;
        close(d->fd);
        free(d);
    }
    free(set);
}

void mr_fdset_registry_free(struct mr_fdset_registry *reg)
{
    struct fdset *set;

    if (!reg)
        return;
    while ((set = reg->sets)) {
        reg->sets = set->next;
        free_set(set);
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

static struct fdset *find_set(struct mr_fdset_registry *reg, int64_t id)
{
    struct fdset *set;

    for (set = reg->sets; set && set->id <= id; set = set->next)
        if (set->id == id)
            return set;
    return NULL;
}

/* Lowest id not in use: the sorted list is scanned for its first gap. */
static int64_t lowest_free_id(struct mr_fdset_registry *reg)
{
    struct fdset *set;
    int64_t id = 0;

    for (set = reg->sets; set && set->id == id; set = set->next)
        id++;
    return id;
}

static struct fdset *create_set(struct mr_fdset_registry *reg, int64_t id)
{
    struct fdset **pp = &reg->sets, *set = calloc(1, sizeof(*set));

    if (!set)
        return NULL;
    set->id = id;
    while (*pp && (*pp)->id < id)
        pp = &(*pp)->next;
    set->next = *pp;
    *pp = set;
    return set;
}

static void drop_if_empty(struct mr_fdset_registry *reg, struct fdset *set)
{
    struct fdset **pp;

    if (set->fds || set->dups)
        return;
    for (pp = &reg->sets; *pp; pp = &(*pp)->next) {
        if (*pp == set) {
            *pp = set->next;
            free(set);
            return;
        }
    }
}

int mr_fdset_add_fd(struct mr_fdset_registry *reg, int fd, bool has_id,
                    int64_t fdset_id, const char *opaque,
                    int64_t *out_fdset_id, struct mr_error *err)
{
    struct fdset_fd *f = calloc(1, sizeof(*f));
    struct fdset *set;
    int rc = 0;

    if (!f || (opaque && !(f->opaque = strdup(opaque)))) {
        free(f);
        close(fd);
        return mr_error_set(err, -ENOMEM, "Out of memory");
    }
    f->fd = fd;
    pthread_mutex_lock(&reg->lock);
    if (!has_id)
        fdset_id = lowest_free_id(reg);
    set = find_set(reg, fdset_id);
    if (!set && fdset_id < 0)
        rc = mr_error_set(err, -EINVAL,
                          "Parameter 'fdset-id' expects a non-negative value");
    else if (reg->nr_user_fds >= MR_FDSET_MAX_USER_FDS)
        rc = mr_error_set(err, -EMFILE,
                          "Too many file descriptors in fdsets (limit %d)",
                          MR_FDSET_MAX_USER_FDS);
    else if (!set && !(set = create_set(reg, fdset_id)))
        rc = mr_error_set(err, -ENOMEM, "Out of memory");
    if (rc == 0) {
        f->next = set->fds; /* newest first */
        set->fds = f;
        reg->nr_user_fds++;
    }
    pthread_mutex_unlock(&reg->lock);
    if (rc < 0) {
        free(f->opaque);
        free(f);
        close(fd);
        return rc;
    }
    if (out_fdset_id)
        *out_fdset_id = fdset_id;
    return 0;
}

static int not_found(bool has_fd, int64_t fdset_id, int64_t fd,
                     struct mr_error *err)
{
    if (has_fd)
        return mr_error_set(err, -ENOENT,
                            "File descriptor named 'fdset-id:%lld, fd:%lld' not found",
                            (long long)fdset_id, (long long)fd);
    return mr_error_set(err, -ENOENT,
                        "File descriptor named 'fdset-id:%lld' not found",
                        (long long)fdset_id);
}

int mr_fdset_remove_fd(struct mr_fdset_registry *reg, int64_t fdset_id,
                       bool has_fd, int64_t fd, struct mr_error *err)
{
    struct fdset_fd *removed = NULL, **pp, *f;
    struct fdset *set;

    pthread_mutex_lock(&reg->lock);
    set = find_set(reg, fdset_id);
    if (set) {
        for (pp = &set->fds; (f = *pp);) {
            if (!has_fd || f->fd == fd) {
                *pp = f->next;
                f->next = removed;
                removed = f;
                reg->nr_user_fds--;
            } else {
                pp = &f->next;
            }
        }
        if (!has_fd || removed)
            drop_if_empty(reg, set);
    }
    pthread_mutex_unlock(&reg->lock);
    if (!set || (has_fd && !removed))
        return not_found(has_fd, fdset_id, fd, err);
    /* Honoured immediately: the user's descriptors are closed now. */
    while ((f = removed)) {
        removed = f->next;
        close(f->fd);
        free(f->opaque);
        free(f);
    }
    return 0;
}

/* QEMU builds its answer by prepending while walking its lists, so sets
 * come out in descending id order and descriptors oldest first. */
json_t *mr_fdset_query(struct mr_fdset_registry *reg)
{
    json_t *list = json_array();
    struct fdset *set;

    pthread_mutex_lock(&reg->lock);
    for (set = reg->sets; list && set; set = set->next) {
        json_t *fds = json_array();
        struct fdset_fd *f;

        for (f = set->fds; fds && f; f = f->next) {
            json_t *info = json_pack("{s:i}", "fd", f->fd);

            if (info && f->opaque)
                json_object_set_new(info, "opaque", json_string(f->opaque));
            json_array_insert_new(fds, 0, info);
        }
        json_array_insert_new(list, 0, json_pack("{s:I,s:o}", "fdset-id",
                                                 (json_int_t)set->id, "fds",
                                                 fds));
    }
    pthread_mutex_unlock(&reg->lock);
    return list;
}

void mr_fdset_reap_empty(struct mr_fdset_registry *reg)
{
    struct fdset **pp, *set;

    pthread_mutex_lock(&reg->lock);
    for (pp = &reg->sets; (set = *pp);) {
        if (!set->fds && !set->dups) {
            *pp = set->next;
            free(set);
        } else {
            pp = &set->next;
        }
    }
    pthread_mutex_unlock(&reg->lock);
}

/* Copy up to `max` user descriptors of a set, newest first; returns the
 * set's count or -1 when it does not exist.  Under the lock, no syscall. */
static int snapshot(struct mr_fdset_registry *reg, int64_t id, int *fds,
                    int max)
{
    struct fdset_fd *f;
    struct fdset *set;
    int n = 0;

    pthread_mutex_lock(&reg->lock);
    set = find_set(reg, id);
    for (f = set ? set->fds : NULL; f; f = f->next, n++)
        if (n < max)
            fds[n] = f->fd;
    pthread_mutex_unlock(&reg->lock);
    return set ? n : -1;
}

int mr_fdset_list(struct mr_fdset_registry *reg, int64_t fdset_id, int *fds,
                  int *flags, int max, struct mr_error *err)
{
    int n = snapshot(reg, fdset_id, fds, max), i;

    if (n < 0)
        return mr_error_set(err, -ENOENT, "Failed to find fdset /dev/fdset/%lld",
                            (long long)fdset_id);
    for (i = 0; i < n && i < max; i++)
        flags[i] = fcntl(fds[i], F_GETFL);
    return n;
}

bool mr_fdset_path_is_fdset(const char *path)
{
    return path && !strncmp(path, FDSET_PREFIX, strlen(FDSET_PREFIX));
}

int mr_fdset_parse_path(const char *path, int64_t *id, struct mr_error *err)
{
    const char *num = path + strlen(FDSET_PREFIX);
    char *end;
    long v;

    errno = 0;
    v = strtol(num, &end, 10);
    if (!mr_fdset_path_is_fdset(path) || end == num || errno || *end ||
        v < 0 || v > INT_MAX)
        return mr_error_set(err, -EINVAL, "Could not parse fdset %s", path);
    *id = v;
    return 0;
}

/* Step 4 of docs/fdsets.md, "Opening /dev/fdset/ID": duplicate, check O_SYNC, apply the flags,
 * truncate when open(2) would. */
static int dup_with_flags(int fd, int flags)
{
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0), dup_flags;

    if (dup < 0)
        return -errno;
    dup_flags = fcntl(dup, F_GETFL);
    if (dup_flags < 0 || (flags & O_SYNC) != (dup_flags & O_SYNC) ||
        fcntl(dup, F_SETFL, flags) < 0 ||
        ((flags & O_TRUNC ||
          (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) &&
         ftruncate(dup, 0) < 0)) {
        int e = dup_flags >= 0 && (flags & O_SYNC) != (dup_flags & O_SYNC) ?
                EINVAL : errno;

        close(dup);
        return -e;
    }
    return dup;
}

/* Track a duplicate, if its source is still in the set. */
static bool track_dup(struct mr_fdset_registry *reg, int64_t id, int src,
                      struct fdset_dup *d)
{
    struct fdset *set;
    struct fdset_fd *f = NULL;

    pthread_mutex_lock(&reg->lock);
    set = find_set(reg, id);
    for (f = set ? set->fds : NULL; f && f->fd != src; f = f->next)
        ;
    if (f) {
        d->next = set->dups;
        set->dups = d;
    }
    pthread_mutex_unlock(&reg->lock);
    return f != NULL;
}

int mr_fdset_open(struct mr_fdset_registry *reg, const char *path, int flags,
                  struct mr_error *err)
{
    int fds[OPEN_SCAN_MAX], n, i, chosen = -1, dup;
    struct fdset_dup *d;
    int64_t id;

    if (mr_fdset_parse_path(path, &id, err) < 0)
        return err ? err->code : -EINVAL;
    n = snapshot(reg, id, fds, OPEN_SCAN_MAX);
    if (n < 0)
        return mr_error_set(err, -ENOENT, "Failed to find fdset %s", path);
    for (i = 0; i < n && i < OPEN_SCAN_MAX && chosen < 0; i++) {
        int fd_flags = fcntl(fds[i], F_GETFL);

        if (fd_flags < 0)
            return mr_error_set(err, -errno,
                                "Failed to read file status flags for fd=%d",
                                fds[i]);
        if (mr_fdset_flags_match(flags, fd_flags))
            chosen = fds[i];
    }
    if (chosen < 0)
        return mr_error_set(err, -EACCES,
                            "Failed to find file descriptor with matching flags=0x%x",
                            (unsigned)flags);
    dup = dup_with_flags(chosen, flags);
    if (dup < 0)
        return mr_error_set(err, dup,
                            "Failed to dup() given file descriptor fd=%d",
                            chosen);
    d = calloc(1, sizeof(*d));
    if (!d) {
        close(dup);
        return mr_error_set(err, -ENOMEM, "Out of memory");
    }
    d->fd = dup;
    if (!track_dup(reg, id, chosen, d)) {
        /* The source was removed while we duplicated it. */
        free(d);
        close(dup);
        return mr_error_set(err, -ENOENT, "Failed to find fdset %s", path);
    }
    return dup;
}

int mr_fdset_close(struct mr_fdset_registry *reg, int fd)
{
    struct fdset_dup **pp, *d = NULL;
    struct fdset *set;

    pthread_mutex_lock(&reg->lock);
    for (set = reg->sets; set && !d; set = set ? set->next : NULL) {
        for (pp = &set->dups; *pp; pp = &(*pp)->next) {
            if ((*pp)->fd == fd) {
                d = *pp;
                *pp = d->next;
                drop_if_empty(reg, set);
                set = NULL; /* may be freed: stop walking */
                break;
            }
        }
    }
    pthread_mutex_unlock(&reg->lock);
    free(d);
    return close(fd) < 0 ? -errno : 0;
}
