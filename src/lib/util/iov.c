/* iovec arithmetic for resubmitting short transfers; see iov.h. */
#include "util/iov.h"

size_t mr_iov_total(const struct iovec *iov, int iovcnt)
{
    size_t total = 0;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    return total;
}

size_t mr_iov_advance(struct iovec **iov, int *iovcnt, size_t bytes)
{
    struct iovec *v = *iov;
    int n = *iovcnt;

    while (n > 0 && bytes >= v->iov_len) {
        bytes -= v->iov_len;
        v++;
        n--;
    }
    if (n > 0 && bytes) {
        v->iov_base = (char *)v->iov_base + bytes;
        v->iov_len -= bytes;
        bytes = 0;
    }
    /* Skip empty entries so a resubmission never starts with one. */
    while (n > 0 && v->iov_len == 0) {
        v++;
        n--;
    }
    *iov = v;
    *iovcnt = n;
    return bytes;
}

int mr_iov_run_len(const struct iovec *iov, int iovcnt, int max)
{
    int n;

    if (iovcnt <= 0)
        return 0;
    for (n = 1; n < iovcnt && n < max; n++) {
        const char *end = (const char *)iov[n - 1].iov_base + iov[n - 1].iov_len;

        if ((const char *)iov[n].iov_base != end)
            break;
    }
    return n;
}
