/* Errors as values: see include/mapram/error.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mapram/error.h"

int mr_error_set(struct mr_error *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (code >= 0)
        code = -EINVAL;
    if (!err)
        return code;
    if (err->code)
        return err->code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

int mr_error_prefix(struct mr_error *err, const char *fmt, ...)
{
    char prefix[MR_ERROR_MSG_MAX];
    char joined[MR_ERROR_MSG_MAX];
    size_t used;
    va_list ap;

    if (!err || !err->code)
        return err ? err->code : 0;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    /* Truncation is expected and fine: the buffer is fixed on purpose. */
    used = strnlen(prefix, sizeof(joined) - 1);
    memcpy(joined, prefix, used);
    joined[used] = '\0';
    strncat(joined, err->msg, sizeof(joined) - 1 - used);
    memcpy(err->msg, joined, sizeof(err->msg));
    return err->code;
}

int mr_error_propagate(struct mr_error *dst, const struct mr_error *src)
{
    if (!src || !src->code)
        return dst ? dst->code : 0;
    if (!dst)
        return src->code;
    if (!dst->code)
        *dst = *src;
    return dst->code;
}

void mr_error_clear(struct mr_error *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}
