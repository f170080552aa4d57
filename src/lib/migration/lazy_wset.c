/*
 * The working set of a lazy load (lazy_wset.h): recording demand faults,
 * reading FILE.wset into a prefetch order after checking that it belongs
 * to this file and these blocks, and writing it back (temp + rename).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/wset.h"
#include "migration/lazy.h"

#define WSET_MAX_BYTES (MR_WSET_MAX_ENTRIES * 8 + (1u << 20))

int mig_wset_rec_init(struct mig_wset_rec *r, uint64_t granules)
{
    r->order = calloc(granules ? granules : 1, sizeof(*r->order));
    r->seen = calloc(granules ? granules : 1, 1);
    r->n = 0;
    r->ngran = granules;
    return r->order && r->seen ? 0 : -ENOMEM;
}

void mig_wset_note(struct mig_wset_rec *r, uint64_t g)
{
    if (r->seen && g < r->ngran && !r->seen[g]) {
        r->seen[g] = 1;
        r->order[r->n++] = g;
    }
}

void mig_wset_rec_free(struct mig_wset_rec *r)
{
    free(r->order);
    free(r->seen);
    r->order = NULL;
    r->seen = NULL;
}

static void warn(const struct mig_lazy *lz, const char *why)
{
    fprintf(stderr, "warning: working set %s ignored: %s\n", lz->wset_path,
            why);
}

static int read_all(const char *path, uint8_t **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    ssize_t n = -1;
    uint8_t *buf = NULL;

    if (fd < 0)
        return -errno;
    if (!fstat(fd, &st) && st.st_size > 0 &&
        (uint64_t)st.st_size <= WSET_MAX_BYTES &&
        (buf = malloc((size_t)st.st_size)))
        n = pread(fd, buf, (size_t)st.st_size, 0);
    close(fd);
    if (n != st.st_size || n <= 0) {
        free(buf);
        return -EIO;
    }
    *out = buf;
    *len = (size_t)n;
    return 0;
}

/* The lazy block holding the sidecar's block i, or -1. */
static long match_block(const struct mig_lazy *lz, const struct mr_wset *w,
                        uint32_t i)
{
    for (size_t k = 0; k < lz->nplans; k++) {
        const char *name = lz->mig->blocks[lz->blk[k].plan->block].name;

        if (!strcmp(name, w->blocks[i].name) &&
            lz->blk[k].len == w->blocks[i].used_length)
            return (long)k;
    }
    return -1;
}

/* Entries to global granules at this load's granule, each once. */
static const char *to_order(struct mig_lazy *lz, const struct mr_wset *w)
{
    long *map = calloc(w->nblocks ? w->nblocks : 1, sizeof(*map));
    uint8_t *seen = calloc(lz->claim.n ? lz->claim.n : 1, 1);
    const char *why = NULL;

    lz->pre = calloc(lz->claim.n ? lz->claim.n : 1, sizeof(*lz->pre));
    if (!map || !seen || !lz->pre)
        why = "out of memory";
    for (uint32_t i = 0; !why && i < w->nblocks; i++)
        if ((map[i] = match_block(lz, w, i)) < 0)
            why = "its RAM blocks differ from the file's";
    for (uint64_t i = 0; !why && i < w->n; i++) {
        const struct mig_lazy_block *b = &lz->blk[map[w->e[i].block]];
        uint64_t g = b->first +
                     (uint64_t)w->e[i].index * w->granule / lz->granule;

        if (!seen[g]) {
            seen[g] = 1;
            lz->pre[lz->npre++] = g;
        }
    }
    free(map);
    free(seen);
    if (why) {
        free(lz->pre);
        lz->pre = NULL;
        lz->npre = 0;
    }
    return why;
}

static void wset_load(struct mig_lazy *lz)
{
    struct mr_error err = MR_ERROR_INIT;
    struct mr_wset w;
    uint8_t *buf = NULL;
    size_t len = 0;
    const char *why;
    int rc;

    if (!lz->wset_path)
        return;
    if ((rc = read_all(lz->wset_path, &buf, &len))) {
        if (rc != -ENOENT)
            warn(lz, "cannot read it");
        return;
    }
    rc = mr_wset_decode(buf, len, &w, &err);
    free(buf);
    if (rc) {
        warn(lz, err.msg);
        return;
    }
    if (w.file_size != lz->file_size || w.file_mtime_ns != lz->file_mtime_ns)
        why = "it was recorded for an older version of the file";
    else
        why = to_order(lz, &w);
    if (why)
        warn(lz, why);
    mr_wset_free(&w);
}

/* The file's own name: the address's path, or for a descriptor passed in
 * an fdset (mapram restore) the name the kernel has for it. */
static const char *file_name(const struct mig_lazy *lz,
                             const struct load_job *j, char *buf, size_t len)
{
    char link[64];
    ssize_t n;

    if (strncmp(j->ch.addr.path, "/dev/fdset/", 11))
        return j->ch.addr.path;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", lz->file_fd);
    n = readlink(link, buf, len - 1);
    if (n <= 0 || (size_t)n >= len - 1 || buf[0] != '/')
        return NULL;
    buf[n] = '\0';
    return strstr(buf, " (deleted)") ? NULL : buf;
}

static int identify(struct mig_lazy *lz, const struct load_job *j)
{
    char buf[MR_URI_PATH_MAX];
    const char *path;
    struct stat st;
    size_t len;

    if (!j->lazy_wset || j->ch.addr.transport != MR_TRANSPORT_FILE ||
        !j->ch.addr.path[0] ||
        !(path = file_name(lz, j, buf, sizeof(buf))) ||
        fstat(lz->file_fd, &st) || !S_ISREG(st.st_mode))
        return 0;
    len = strlen(path) + sizeof(".wset");
    lz->file_size = (uint64_t)st.st_size;
    lz->file_mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u +
                        (uint64_t)st.st_mtim.tv_nsec;
    if (!(lz->wset_path = malloc(len)))
        return -ENOMEM;
    snprintf(lz->wset_path, len, "%s.wset", path);
    return 0;
}

int mig_lazy_wset_setup(struct mig_lazy *lz, const struct load_job *j)
{
    if (identify(lz, j))
        return -ENOMEM;
    if (!lz->wset_path)
        return 0;
    if (mig_wset_rec_init(&lz->rec, lz->claim.n))
        return -ENOMEM;
    wset_load(lz);
    return 0;
}

/* Global granule g as (block, index). */
static struct mr_wset_entry entry_of(const struct mig_lazy *lz, uint64_t g)
{
    uint32_t k = (uint32_t)(mig_lazy_block_of(lz, g) - lz->blk);

    return (struct mr_wset_entry){ k, (uint32_t)(g - lz->blk[k].first) };
}

static int fill_wset(struct mig_lazy *lz, struct mr_wset *w)
{
    uint8_t *seen = calloc(lz->claim.n ? lz->claim.n : 1, 1);
    uint64_t n = lz->npre + lz->rec.n;

    w->granule = lz->granule;
    w->file_size = lz->file_size;
    w->file_mtime_ns = lz->file_mtime_ns;
    w->nblocks = (uint32_t)lz->nplans;
    w->blocks = calloc(lz->nplans ? lz->nplans : 1, sizeof(*w->blocks));
    w->e = calloc(n ? n : 1, sizeof(*w->e));
    if (!seen || !w->blocks || !w->e || lz->nplans > MR_WSET_MAX_BLOCKS) {
        free(seen);
        return -ENOMEM;
    }
    for (size_t k = 0; k < lz->nplans; k++) {
        snprintf(w->blocks[k].name, sizeof(w->blocks[k].name), "%s",
                 lz->mig->blocks[lz->blk[k].plan->block].name);
        w->blocks[k].used_length = lz->blk[k].len;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t g = i < lz->npre ? lz->pre[i] : lz->rec.order[i - lz->npre];

        if (!seen[g]) {
            seen[g] = 1;
            w->e[w->n++] = entry_of(lz, g);
        }
    }
    free(seen);
    return 0;
}

static int write_file(const char *path, const uint8_t *buf, size_t len)
{
    size_t plen = strlen(path) + 8;
    char *tmp = malloc(plen);
    int fd, rc = 0;

    if (!tmp)
        return -ENOMEM;
    snprintf(tmp, plen, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
        rc = errno ? -errno : -EIO;
    if (fd >= 0 && close(fd) && !rc)
        rc = -errno;
    if (!rc && rename(tmp, path))
        rc = -errno;
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

void mig_lazy_wset_save(struct mig_lazy *lz)
{
    struct mr_wset w = { 0 };
    uint8_t *buf = NULL;
    size_t len;

    if (!lz->wset_path || (lz->rec.n == 0 && lz->npre))
        return;     /* nothing new: the sidecar stays as it is */
    if (fill_wset(lz, &w) || mr_wset_encode(&w, &buf, &len) ||
        write_file(lz->wset_path, buf, len))
        fprintf(stderr, "warning: cannot write the working set %s\n",
                lz->wset_path);
    free(buf);
    mr_wset_free(&w);
}
