/*
 * Errors as values.
 */
#ifndef MAPRAM_ERROR_H
#define MAPRAM_ERROR_H

#include <stdbool.h>

/*
 * Every fallible libmapram function takes a `struct mr_error *` and returns
 * an int: 0 on success, a negative errno (or MR_E* code) on failure, with a
 * human message in the error object.  The buffer is fixed so an error can be
 * recorded under memory pressure and from channel threads.  The first error
 * recorded wins; later ones are dropped, so the root cause survives.
 *
 *     if (fd < 0)
 *         return mr_error_set(err, -errno, "Could not open '%s': %s",
 *                             path, strerror(errno));
 */

#define MR_ERROR_MSG_MAX 256

struct mr_error {
    int code;                   /* 0 = no error; otherwise negative */
    char msg[MR_ERROR_MSG_MAX]; /* NUL-terminated, may be truncated */
};

#define MR_ERROR_INIT { 0, { 0 } }

/*
 * Record an error unless one is already recorded.  A code >= 0 is stored as
 * -EINVAL so that a set error is always recognisable.  Returns the code
 * stored in `err` (the earlier one if there was one).  `err` may be NULL,
 * in which case the code is simply returned.
 */
int mr_error_set(struct mr_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend context ("while loading block pc.ram: ") to a recorded error. */
int mr_error_prefix(struct mr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Copy `src` into `dst` if `src` is set and `dst` is not. */
int mr_error_propagate(struct mr_error *dst, const struct mr_error *src);

void mr_error_clear(struct mr_error *err);

static inline bool mr_error_is_set(const struct mr_error *err)
{
    return err && err->code != 0;
}

#endif
