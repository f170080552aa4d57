/*
 * The lazy load mode (docs/lazy-load.md): after the stream was checked,
 * guest RAM is registered with userfaultfd and the guest resumed; the
 * fault thread serves what it touches, a fill thread installs the rest
 * through the page channels (lazy_fill.c: the working set first, then
 * file order), yielding to faults, and the load completes when every
 * granule is resident.  Any failure stops the guest (fail closed).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "io/fault.h"
#include "migration/lazy.h"
#include "migration/load_mode.h"
#include "migration/publish.h"
#include "migration/uffd.h"

static const struct mr_cksum_block *ck_block(struct mig_lazy *lz,
                                             const struct load_plan *p,
                                             struct mr_error *err)
{
    const char *name = lz->mig->blocks[p->block].name;
    const struct mr_cksum_block *cb = mr_cksum_find(&lz->ck, name);

    if (!cb)
        mr_error_set(err, -EINVAL, "checksum trailer has no entry for RAM "
                     "block %s", name);
    else if (cb->page_size != p->page_size ||
             cb->pages_offset != p->pages_offset ||
             cb->used_length != p->num_pages * p->page_size)
        mr_error_set(err, -EINVAL, "checksum trailer: RAM block %s layout "
                     "differs from the stream's", name);
    return err->code ? NULL : cb;
}

/* The granule reads, through the fault seam (MAPRAM_FAULT=lazy-read:N:..). */
static int64_t granule_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
    struct mig_lazy *lz = opaque;

    return mr_fault_filter(MR_FAULT_OP_LAZY_READ,
                           lz->fd_pread((void *)(intptr_t)lz->file_fd, buf,
                                        len, off));
}

/* Take the job's plans, trailer and file over; lay out the claim table. */
static int adopt(struct mig_lazy *lz, struct load_job *j, struct mr_error *err)
{
    uint64_t granules = 0;

    lz->plans = j->plans;
    lz->nplans = j->nplans;
    j->plans = NULL;
    j->nplans = j->plans_cap = 0;
    lz->ck = j->ck;
    lz->have_ck = j->have_ck;
    memset(&j->ck, 0, sizeof(j->ck));
    lz->total_bytes = j->total_bytes;
    lz->file_fd = fcntl(j->ch.main_fd, F_DUPFD_CLOEXEC, 0);
    if (lz->file_fd < 0 || mr_source_init_fd(&lz->src, lz->file_fd, err))
        return mr_error_set(err, -EIO, "lazy load: cannot keep the file open");
    lz->fd_pread = lz->src.pread;
    lz->src.pread = granule_pread;
    lz->src.opaque = lz;
    lz->blk = calloc(lz->nplans ? lz->nplans : 1, sizeof(*lz->blk));
    if (!lz->blk)
        return mr_error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < lz->nplans; i++) {
        struct mig_lazy_block *b = &lz->blk[i];

        b->plan = &lz->plans[i];
        b->host = lz->mig->blocks[b->plan->block].host;
        b->len = b->plan->num_pages * b->plan->page_size;
        b->first = granules;
        granules += (b->len + lz->granule - 1) / lz->granule;
        if (lz->have_ck && !(b->cb = ck_block(lz, b->plan, err)))
            return err->code;
    }
    if (mr_claim_init(&lz->claim, granules))
        return mr_error_set(err, -ENOMEM, "out of memory");
    /* a granule smaller than an extent is read with its whole extent */
    lz->span = lz->granule > (1ULL << 20) ? lz->granule : (1ULL << 20);
    lz->fault_buf = aligned_alloc(4096, lz->span);
    if (!lz->fault_buf)
        return mr_error_set(err, -ENOMEM, "out of memory");
    return 0;
}

/* docs/lazy-load.md: registered memory must be truly empty, or pages
 * already there (a reused shmem file, say) would never fault. */
static int discard(struct mig_lazy_block *b, const char *name,
                   struct mr_error *err)
{
    if (!madvise(b->host, b->len, MADV_REMOVE) ||
        !madvise(b->host, b->len, MADV_DONTNEED))
        return 0;
    return mr_error_set(err, -errno, "RAM block %s: cannot discard its "
                        "memory before a lazy load: %s", name,
                        strerror(errno));
}

static int register_all(struct mig_lazy *lz, struct mr_error *err)
{
    for (size_t i = 0; i < lz->nplans; i++) {
        struct mig_lazy_block *b = &lz->blk[i];

        if (b->plan->page_size != 4096)
            return mr_error_set(err, -EINVAL, "RAM block %s: lazy load "
                                "needs 4 KiB pages",
                                lz->mig->blocks[b->plan->block].name);
        if (b->len && (discard(b, lz->mig->blocks[b->plan->block].name, err) ||
                       mr_uffd_register(lz->uffd, b->host, b->len,
                                        lz->mig->blocks[b->plan->block].name,
                                        err)))
            return err->code;
    }
    return 0;
}

static int lazy_ram(struct load_job *j)
{
    struct mig_lazy *lz = calloc(1, sizeof(*lz));

    if (!lz)
        return mr_error_set(&j->err, -ENOMEM, "out of memory");
    lz->mig = j->mig;
    lz->uffd = lz->file_fd = lz->stop_fd = -1;
    lz->granule = j->lazy_granule;
    lz->t_start_ns = mig_lazy_now_ns();
    lz->exit_on_error = j->exit_on_error;
    j->mig->lazy = lz;          /* freed by mr_migration_free */
    if (!j->caps.on[MR_CAP_MAPPED_RAM])
        return mr_error_set(&j->err, -EINVAL, "Postcopy is not supported: "
                            "mapram loads lazily only from a mapped-ram "
                            "file (enable mapped-ram)");
    if ((lz->uffd = mr_uffd_open(&j->err)) < 0)
        return j->err.code;
    if ((lz->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0)
        return mr_error_set(&j->err, -errno, "eventfd failed");
    if (adopt(lz, j, &j->err) || mig_lazy_fill_setup(lz, j, &j->err))
        return j->err.code;
    if (mig_lazy_wset_setup(lz, j))
        return mr_error_set(&j->err, -ENOMEM, "out of memory");
    if (register_all(lz, &j->err) || mig_lazy_fault_start(lz, &j->err))
        return j->err.code;
    return mig_lazy_prefetch(lz, &j->err);
}

static void publish(struct mig_lazy *lz)
{
    mig_publish_in(lz->mig, lz->total_bytes, atomic_load(&lz->done_bytes));
}

/* Any thread, the fault thread included: it must not touch guest RAM, so
 * the guest is stopped by the fill thread (stop_guest). */
void mig_lazy_fail(struct mig_lazy *lz, const struct mr_error *err)
{
    struct mr_migration *mig = lz->mig;

    if (atomic_exchange(&lz->failed, true))
        return;
    mig_set_in_error(mig, err);
    if (!mr_mig_state_cas(&mig->in, MR_MIG_POSTCOPY_ACTIVE, MR_MIG_FAILED))
        mr_mig_state_cas(&mig->in, MR_MIG_ACTIVE, MR_MIG_FAILED);
}

/* Every granule not resident is poisoned first (lazy_seal.c): a vCPU
 * asleep on one, or reaching one, gets a memory error and parks, so the
 * stop cannot hang; the others park cooperatively. */
static void stop_guest(struct mig_lazy *lz)
{
    struct mr_migration *mig = lz->mig;
    struct mr_error e = MR_ERROR_INIT, stop_err = MR_ERROR_INIT;

    mig_lazy_seal(lz);
    /* Without UFFDIO_POISON (before Linux 6.6) a vCPU asleep on a
     * withheld granule cannot park: it is stopped already, in its fault. */
    if (atomic_load(&lz->stuck))
        mig->ops->set_runstate(mig->vm, MR_RUN_POSTMIGRATE);
    else
        mig->ops->stop(mig->vm, MR_RUN_POSTMIGRATE, &stop_err);
    pthread_mutex_lock(&mig->lock);
    mr_error_propagate(&e, &mig->in_err);
    pthread_mutex_unlock(&mig->lock);
    if (mig->load_failed_fn)
        mig->load_failed_fn(mig->load_failed_opaque, lz->exit_on_error, &e);
}

/* Wait for granules owned by the fault thread to land. */
static void wait_resident(struct mig_lazy *lz)
{
    const struct timespec ms = { 0, 1000000 };

    while (!mr_claim_all_resident(&lz->claim) && !atomic_load(&lz->stop) &&
           !atomic_load(&lz->failed))
        nanosleep(&ms, NULL);
}

static void complete(struct mig_lazy *lz)
{
    atomic_store(&lz->resident_ns, mig_lazy_now_ns());
    for (size_t i = 0; i < lz->nplans; i++)
        if (lz->blk[i].len)
            mr_uffd_unregister(lz->uffd, lz->blk[i].host, lz->blk[i].len);
    mig_lazy_fault_stop(lz);
    mig_lazy_wset_save(lz);
    publish(lz);
    mr_mig_state_cas(&lz->mig->in, MR_MIG_POSTCOPY_ACTIVE, MR_MIG_COMPLETED);
}

static void *fill_thread(void *arg)
{
    struct mig_lazy *lz = arg;
    struct mr_error err = MR_ERROR_INIT;

    if (mig_lazy_fill_run(lz, &err))
        mig_lazy_fail(lz, &err);
    wait_resident(lz);
    if (atomic_load(&lz->failed))
        stop_guest(lz);
    else if (mr_claim_all_resident(&lz->claim))
        complete(lz);
    return NULL;
}

static void lazy_resumed(struct load_job *j)
{
    struct mig_lazy *lz = j->mig->lazy;

    if (!mr_mig_state_cas(&j->mig->in, MR_MIG_ACTIVE,
                          MR_MIG_POSTCOPY_ACTIVE)) {
        /* a fault failed while devices loaded: the state is failed */
        stop_guest(lz);
        return;
    }
    if (pthread_create(&lz->fill_thr, NULL, fill_thread, lz)) {
        mr_error_set(&j->err, -EAGAIN, "cannot start the fill thread");
        mig_lazy_fail(lz, &j->err);
        stop_guest(lz);
        return;
    }
    lz->fill_live = true;
}

const struct mig_load_mode_ops mig_load_lazy = {
    .name = "lazy",
    .ram = lazy_ram,
    .resumed = lazy_resumed,
};

void mig_lazy_free(struct mig_lazy *lz)
{
    if (!lz)
        return;
    atomic_store(&lz->stop, true);
    if (lz->fill_live)
        pthread_join(lz->fill_thr, NULL);
    mig_lazy_fault_stop(lz);
    mig_lazy_fill_free(lz);
    if (lz->uffd >= 0)
        close(lz->uffd);
    if (lz->stop_fd >= 0)
        close(lz->stop_fd);
    if (lz->file_fd >= 0)
        close(lz->file_fd);
    for (size_t i = 0; i < lz->nplans; i++)
        free(lz->plans[i].bitmap);
    free(lz->plans);
    free(lz->blk);
    mr_cksum_free(&lz->ck);
    mr_claim_free(&lz->claim);
    free(lz->fault_buf);
    mig_wset_rec_free(&lz->rec);
    free(lz->pre);
    free(lz->wset_path);
    free(lz);
}

void mig_lazy_query(struct mig_lazy *lz, json_t *ram)
{
    uint64_t n, sum;

    if (!lz)
        return;
    n = atomic_load(&lz->faults);
    sum = atomic_load(&lz->fault_ns_sum);
    json_object_set_new(ram, "x-lazy-faults", json_integer((json_int_t)n));
    json_object_set_new(ram, "x-lazy-fault-avg-us",
                        json_integer(n ? (json_int_t)(sum / n / 1000) : 0));
    json_object_set_new(ram, "x-lazy-fault-max-us",
                        json_integer((json_int_t)
                                     (atomic_load(&lz->fault_ns_max) / 1000)));
    json_object_set_new(ram, "x-lazy-remaining-bytes",
                        json_integer((json_int_t)(lz->total_bytes -
                                     atomic_load(&lz->done_bytes))));
    json_object_set_new(ram, "x-lazy-granule",
                        json_integer((json_int_t)lz->granule));
    mig_lazy_fill_query(lz, ram);
}

int mig_lazy_cancel_check(struct mr_migration *mig, struct mr_error *err)
{
    if (mr_mig_state_get(&mig->in) == MR_MIG_POSTCOPY_ACTIVE)
        return mr_error_set(err, -EBUSY, "Postcopy migration in progress, "
                            "cannot cancel");
    return 0;
}
