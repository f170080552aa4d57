/*
 * The save thread (docs/stream-format.md, "Order of a file migration"): header, configuration, START
 * ram, PART passes until the rest fits the downtime limit, switchover
 * (END, devices, EOF, VMDESC, checksum trailer).  It only sequences: pages
 * go through the job's RAM format, bytes through its transport.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "format/stream_defs.h"
#include "migration/events.h"
#include "migration/publish.h"
#include "migration/ram_format.h"
#include "migration/save.h"
#include "migration/save_job.h"
#include "util/bitmap.h"

#define SAVE_MAX_PASSES 16          /* iterations before forcing switchover */
#define SAVE_CHECK_EVERY_PAGES 256  /* cancel / rate-limit granularity */
#define SAVE_RATE_WINDOW_MS 100

static bool save_cancel_asked(void *opaque)
{
    struct save_job *j = opaque;

    return atomic_load(&j->mig->cancel_req);
}

static bool cancelled(struct save_job *j)
{
    if (!atomic_load(&j->mig->cancel_req))
        return false;
    mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
    return true;
}

struct stats_snap {
    struct save_job *j;
    struct mr_multifd_stats st;
    int64_t elapsed;
};

static void fill_stats(struct mig_ram_stats *s, void *opaque)
{
    struct stats_snap *x = opaque;
    struct save_job *j = x->j;
    uint64_t ps = j->mig->nblocks ? save_blk(j, 0)->page_size
                                  : MR_TARGET_PAGE_SIZE;

    s->page_size = ps;
    s->total = 0;
    for (size_t b = 0; b < j->mig->nblocks; b++)
        s->total += save_blk(j, b)->used_length;
    s->normal = j->legacy_normal + x->st.normal_pages;
    s->duplicate = j->thread_zero + x->st.zero_pages;
    s->multifd_bytes = j->ch.nchan ? x->st.bytes_written : 0;
    s->transferred = j->w.bytes_out + x->st.bytes_written;
    s->remaining = j->remaining_pages * ps;
    s->dirty_sync_count = j->dirty_syncs;
    if (x->elapsed > 0) {
        s->mbps = (double)s->transferred * 8.0 / 1000.0 / (double)x->elapsed;
        s->pages_per_second = (s->normal + s->duplicate) * 1000 /
                              (uint64_t)x->elapsed;
    }
    if (j->downtime_start_ms)
        s->downtime_bytes = s->transferred - j->downtime_start_bytes;
}

static void publish_stats(struct save_job *j)
{
    struct stats_snap x = { .j = j };

    x.elapsed = mig_now_ms() - j->mig->out_start_ms;
    if (j->mf)
        mr_multifd_get_stats(j->mf, &x.st);
    mig_stats_update(j->mig, true, fill_stats, &x);
}

/* max-bandwidth: bytes per second, 0 = unlimited; checked in windows. */
static void rate_limit(struct save_job *j, uint64_t bytes)
{
    uint64_t bw = j->params.max_bandwidth;
    uint64_t budget = bw * SAVE_RATE_WINDOW_MS / 1000;
    int64_t now;

    if (!bw || j->stopped_vm)
        return;
    j->window_bytes += bytes;
    now = mig_now_ms();
    if (now - j->window_ms >= SAVE_RATE_WINDOW_MS) {
        j->window_ms = now;
        j->window_bytes = 0;
        return;
    }
    if (j->window_bytes < budget)
        return;
    while (now - j->window_ms < SAVE_RATE_WINDOW_MS && !cancelled(j)) {
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep(&ts, NULL);
        now = mig_now_ms();
    }
    j->window_ms = now;
    j->window_bytes = 0;
}

/* A run of dirty pages, in batches that end where the cancel and rate
 * checks fall (every SAVE_CHECK_EVERY_PAGES pages of the pass). */
static int send_run(struct save_job *j, size_t b, uint64_t first, uint64_t len,
                    uint64_t *n)
{
    uint64_t ps = save_blk(j, b)->page_size;

    while (len) {
        uint64_t k = SAVE_CHECK_EVERY_PAGES - *n % SAVE_CHECK_EVERY_PAGES;

        if (k > len)
            k = len;
        for (uint64_t p = first; p < first + k; p++)
            j->dirty[b][p / MR_BITS_PER_LONG] &= ~(1UL << (p % MR_BITS_PER_LONG));
        if (j->fmt->send(j, b, first, k))
            return j->err.code;
        j->pass_bytes += k * ps;
        *n += k;
        first += k;
        len -= k;
        if (*n % SAVE_CHECK_EVERY_PAGES == 0) {
            if (cancelled(j) || mr_sw_error(&j->w))
                return mr_error_propagate(&j->err, &j->w.err);
            rate_limit(j, SAVE_CHECK_EVERY_PAGES * ps);
            publish_stats(j);
        }
    }
    return 0;
}

/* Send every page whose dirty bit is set, clearing the bits. */
static int send_pass(struct save_job *j)
{
    uint64_t n = 0;
    int rc;

    j->last_block = NULL;
    for (size_t b = 0; b < j->mig->nblocks; b++) {
        uint64_t npages = save_blk_pages(j, b), first, len;

        for (uint64_t at = 0;
             mr_bitmap_next_run(j->dirty[b], npages, at, &first, &len);
             at = first + len)
            if ((rc = send_run(j, b, first, len, &n)))
                return rc;
    }
    if ((rc = j->fmt->pass_done(j)))
        return rc;
    return mr_error_propagate(&j->err, &j->w.err);
}

static uint64_t count_dirty(struct save_job *j)
{
    uint64_t n = 0;

    for (size_t b = 0; b < j->mig->nblocks; b++)
        n += mr_bitmap_count(j->dirty[b], save_blk_pages(j, b));
    return n;
}

/* One dirty-log sync: a MIGRATION_PASS event each (docs/qmp.md, "Migration states and events"). */
static int sync_dirty(struct save_job *j)
{
    int rc = j->mig->ops->dirty_log_sync(j->mig->vm, j->dirty, &j->err);

    if (rc)
        return rc;
    j->dirty_syncs++;
    j->remaining_pages = count_dirty(j);
    publish_stats(j);
    mig_emit(j->mig, "MIGRATION_PASS",
             json_pack("{s:I}", "pass", (json_int_t)j->dirty_syncs));
    return 0;
}

static void put_configuration(struct save_job *j)
{
    const char *caps[2];
    size_t n = 0;

    /* Only the validated capabilities, in enum order (docs/stream-format.md, "Configuration section"). */
    if (j->caps.on[MR_CAP_X_IGNORE_SHARED])
        caps[n++] = "x-ignore-shared";
    if (j->caps.on[MR_CAP_MAPPED_RAM])
        caps[n++] = "mapped-ram";
    mr_sw_header(&j->w);
    mr_sw_configuration(&j->w, j->mig->ops->machine_type, caps, n);
}

static int alloc_bitmaps(struct save_job *j)
{
    size_t n = j->mig->nblocks;

    j->dirty = calloc(n ? n : 1, sizeof(*j->dirty));
    j->swb = calloc(n ? n : 1, sizeof(*j->swb));
    j->mblocks = calloc(n ? n : 1, sizeof(*j->mblocks));
    if (!j->dirty || !j->swb || !j->mblocks)
        return mr_error_set(&j->err, -ENOMEM, "out of memory");
    for (size_t b = 0; b < n; b++) {
        uint64_t pages = save_blk_pages(j, b);

        j->dirty[b] = mr_bitmap_new(pages);
        if (!j->dirty[b])
            return mr_error_set(&j->err, -ENOMEM, "out of memory for bitmaps");
        mr_bitmap_set_range_atomic(j->dirty[b], 0, pages);
        j->swb[b].name = save_blk(j, b)->name;
        j->swb[b].used_length = save_blk(j, b)->used_length;
        j->swb[b].page_size = save_blk(j, b)->page_size;
    }
    return j->fmt->alloc(j);
}

/* Header, configuration and the START section (docs/stream-format.md, "Order of a file migration", steps 1-2). */
static int save_setup(struct save_job *j)
{
    struct mr_stream_sink sink = j->fmt->sink(j);
    int rc;

    if ((rc = j->ch.ops->open_save_finish(&j->ch, save_cancel_asked, j,
                                          &j->err)) ||
        (rc = alloc_bitmaps(j)))
        return rc;
    if ((rc = mr_sw_init(&j->w, &sink, j->ch.addr.offset, &j->err)))
        return rc;
    j->w_ready = true;
    put_configuration(j);
    mr_sw_section_header(&j->w, QEMU_VM_SECTION_START, MIG_RAM_SECTION_ID,
                         RAM_SECTION_IDSTR, 0, RAM_SECTION_VERSION);
    mr_sw_ram_setup(&j->w, j->swb, j->mig->nblocks, j->fmt->wire_mapped,
                    j->caps.on[MR_CAP_X_IGNORE_SHARED]);
    if (mr_sw_flush(&j->w))
        return mr_error_propagate(&j->err, &j->w.err);
    if ((rc = j->fmt->start(j)))
        return rc;
    mr_sw_ram_eos(&j->w);
    mr_sw_section_footer(&j->w, MIG_RAM_SECTION_ID);
    if (mr_sw_flush(&j->w))
        return mr_error_propagate(&j->err, &j->w.err);
    if ((rc = j->mig->ops->dirty_log_start(j->mig->vm, &j->err)))
        return rc;
    j->dirty_log_on = true;
    return sync_dirty(j);
}

/* PART sections until the dirty rest fits the downtime limit. */
static int save_iterate(struct save_job *j)
{
    for (int pass = 0; pass < SAVE_MAX_PASSES; pass++) {
        int64_t t0 = mig_now_ms();
        int rc;

        j->pass_bytes = 0;
        mr_sw_section_short(&j->w, QEMU_VM_SECTION_PART, MIG_RAM_SECTION_ID);
        if ((rc = send_pass(j)))
            return rc;
        mr_sw_ram_eos(&j->w);
        mr_sw_section_footer(&j->w, MIG_RAM_SECTION_ID);
        if (mr_sw_flush(&j->w))
            return mr_error_propagate(&j->err, &j->w.err);
        if ((rc = sync_dirty(j)))
            return rc;

        /* bytes per millisecond measured over this pass */
        int64_t dt = mig_now_ms() - t0;
        double bw = (double)j->pass_bytes / (double)(dt > 0 ? dt : 1);
        uint64_t rest = j->remaining_pages * save_blk(j, 0)->page_size;
        double expected_ms = bw > 0 ? (double)rest / bw : 0;

        pthread_mutex_lock(&j->mig->lock);
        j->mig->out_stats.expected_downtime_ms = (int64_t)expected_ms;
        pthread_mutex_unlock(&j->mig->lock);
        if (expected_ms <= (double)j->params.downtime_limit ||
            j->mig->ops->runstate(j->mig->vm) != MR_RUN_RUNNING)
            break;
        if (cancelled(j))
            return j->err.code;
    }
    return 0;
}

/* pause-before-switchover: wait for migrate-continue (or a cancel). */
static int enter_device_state(struct save_job *j)
{
    struct mr_migration *mig = j->mig;

    if (!j->caps.on[MR_CAP_PAUSE_BEFORE_SWITCHOVER])
        return mr_mig_state_cas(&mig->out, MR_MIG_ACTIVE, MR_MIG_DEVICE) ? 0 :
               mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
    if (!mr_mig_state_cas(&mig->out, MR_MIG_ACTIVE, MR_MIG_PRE_SWITCHOVER))
        return mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
    pthread_mutex_lock(&mig->lock);
    while (!mig->continue_req && !atomic_load(&mig->cancel_req))
        pthread_cond_wait(&mig->cond, &mig->lock);
    mig->continue_req = false;
    pthread_mutex_unlock(&mig->lock);
    if (!mr_mig_state_cas(&mig->out, MR_MIG_PRE_SWITCHOVER, MR_MIG_DEVICE))
        return mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
    return 0;
}

static int sync_main(struct save_job *j)
{
    return j->ch.ops->sync_main(&j->ch, &j->err);
}

/*
 * Durable completion: everything the stream refers to is made durable
 * first, then the checksum trailer and its footer are appended and synced.
 * The footer is the last write, so a file cut short at any earlier point
 * has none, and the loader refuses it (the VMDESC announces the trailer).
 */
static int write_trailer(struct save_job *j)
{
    uint8_t footer[MR_CKSUM_FOOTER_BYTES];
    uint64_t off = mr_sw_pos(&j->w);
    size_t len;
    uint8_t *t;
    int rc;

    if ((rc = sync_main(j)))
        return rc;
    j->ck.stream_offset = j->ch.addr.offset;
    if ((rc = j->fmt->stream_crc(j, off)))
        return rc;
    t = mr_cksum_encode(&j->ck, &len);
    if (!t)
        return mr_error_set(&j->err, -ENOMEM, "out of memory");
    mr_cksum_footer_encode(footer, off, len);
    rc = j->ch.ops->write_main(&j->ch, t, len, off, &j->err);
    free(t);
    if (!rc)
        rc = j->ch.ops->write_main(&j->ch, footer, sizeof(footer), off + len,
                                   &j->err);
    return rc ? rc : sync_main(j);
}

/* VMDESCRIPTION; in a file it announces the checksum trailer. */
static void put_vmdesc(struct save_job *j, json_t *devs)
{
    uint32_t psize = j->mig->nblocks ? save_blk(j, 0)->page_size :
                     MR_TARGET_PAGE_SIZE;
    json_t *desc = json_pack("{s:i,s:O}", "page_size", (int)psize,
                             "devices", devs);

    if (j->ch.ops->seekable)
        json_object_set_new(desc, MR_CKSUM_VMDESC_KEY, json_pack(
            "{s:s,s:I}", "algorithm", "crc32c", "extent-size",
            (json_int_t)MR_CKSUM_EXTENT_BYTES));
    mr_sw_vmdesc(&j->w, desc);
    json_decref(desc);
}

static void put_device(struct save_job *j, json_t *devs, uint32_t sid,
                       const char *idstr, uint32_t inst, uint32_t ver,
                       const void *data, uint32_t size)
{
    mr_sw_section_header(&j->w, QEMU_VM_SECTION_FULL, sid, idstr, inst, ver);
    mr_sw_put_be32(&j->w, size);
    mr_sw_put_bytes(&j->w, data, size);
    mr_sw_section_footer(&j->w, sid);
    json_array_append_new(devs, json_pack(
        "{s:s,s:i,s:s,s:i,s:[{s:s,s:s,s:i},{s:s,s:s,s:i}]}",
        "name", idstr, "instance_id", (int)inst, "vmsd_name", idstr,
        "version", (int)ver, "fields",
        "name", "size", "type", "uint32", "size", 4,
        "name", "data", "type", "buffer", "size", (int)size));
}

/* FULL sections: the embedder's devices, then globalstate (docs/stream-format.md, "Order of a file migration", step 4). */
static int save_devices(struct save_job *j, json_t *devs)
{
    struct mr_device_state *st = NULL;
    size_t n = 0;
    char gs[MIG_GLOBALSTATE_BYTES] = { 0 };
    uint32_t sid = MIG_RAM_SECTION_ID + 1;

    if (j->mig->ops->save_devices &&
        j->mig->ops->save_devices(j->mig->vm, &st, &n, &j->err))
        return j->err.code;
    for (size_t i = 0; i < n; i++) {
        if (st[i].size > MIG_DEVICE_MAX_BYTES) {
            mr_device_state_free_array(st, n);
            return mr_error_set(&j->err, -EFBIG, "device %s state is too "
                                "large (%zu bytes)", st[i].idstr, st[i].size);
        }
        put_device(j, devs, sid++, st[i].idstr, st[i].instance_id,
                   st[i].version_id, st[i].data, (uint32_t)st[i].size);
    }
    mr_device_state_free_array(st, n);
    snprintf(gs, sizeof(gs), "%s", mr_runstate_name(j->prev_run));
    put_device(j, devs, sid, MIG_GLOBALSTATE_IDSTR, 0, 1, gs, sizeof(gs));
    return 0;
}

/* Stop, SWITCHOVER_START, END with the final pass and the bitmaps,
 * devices, EOF, VMDESC (docs/stream-format.md, "Order of a file migration", steps 4-5). */
static int save_complete(struct save_job *j)
{
    json_t *devs = json_array();
    int rc;

    j->prev_run = j->mig->ops->runstate(j->mig->vm);
    j->downtime_start_ms = mig_now_ms();
    publish_stats(j);
    j->downtime_start_bytes = j->mig->out_stats.transferred;
    if ((rc = j->mig->ops->stop(j->mig->vm, MR_RUN_FINISH_MIGRATE, &j->err)))
        goto out;
    j->stopped_vm = true;
    if ((rc = enter_device_state(j)))
        goto out;
    mr_sw_command(&j->w, MIG_CMD_SWITCHOVER_START, NULL, 0);
    mr_sw_section_short(&j->w, QEMU_VM_SECTION_END, MIG_RAM_SECTION_ID);
    if ((rc = sync_dirty(j)) || (rc = send_pass(j)))
        goto out;
    if ((rc = j->fmt->finish(j)))
        goto out;
    mr_sw_ram_eos(&j->w);
    mr_sw_section_footer(&j->w, MIG_RAM_SECTION_ID);
    j->mig->ops->dirty_log_stop(j->mig->vm);
    j->dirty_log_on = false;
    if ((rc = save_devices(j, devs)))
        goto out;
    mr_sw_eof(&j->w);
    put_vmdesc(j, devs);
    mr_sw_flush(&j->w);
    rc = mr_error_propagate(&j->err, &j->w.err);
    /* A socket has no end to append to: the trailer is a file's. */
    if (!rc && j->ch.ops->seekable)
        rc = write_trailer(j);
out:
    json_decref(devs);
    return rc;
}

static void release(struct save_job *j)
{
    j->fmt->release(j);
    if (j->dirty_log_on)
        j->mig->ops->dirty_log_stop(j->mig->vm);
    j->dirty_log_on = false;
    j->ch.ops->close(&j->ch);
}

static void free_job(struct save_job *j)
{
    j->fmt->free(j);
    for (size_t b = 0; j->dirty && b < j->mig->nblocks; b++)
        free(j->dirty[b]);
    free(j->dirty);
    free(j->mblocks);
    free(j->swb);
    mr_cksum_free(&j->ck);
    if (j->w_ready)
        mr_sw_destroy(&j->w);
    mr_params_release(&j->params);
    free(j);
}

/* Failure or cancel: restart what we stopped, record, end the state. */
static void save_failed(struct save_job *j)
{
    struct mr_migration *mig = j->mig;
    static const enum mr_mig_status from[] = {
        MR_MIG_SETUP, MR_MIG_ACTIVE, MR_MIG_PRE_SWITCHOVER, MR_MIG_DEVICE };
    struct mr_error ignored = MR_ERROR_INIT;

    if (j->stopped_vm) {
        if (j->prev_run == MR_RUN_RUNNING)
            mig->ops->start(mig->vm, &ignored);
        else
            mig->ops->set_runstate(mig->vm, j->prev_run);
    }
    if (mr_mig_state_cas(&mig->out, MR_MIG_CANCELLING, MR_MIG_CANCELLED))
        return;
    mig_set_out_error(mig, &j->err);
    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++)
        if (mr_mig_state_cas(&mig->out, from[i], MR_MIG_FAILED))
            break;
}

static void *save_thread(void *arg)
{
    struct save_job *j = arg;
    struct mr_migration *mig = j->mig;
    int rc = save_setup(j);

    if (!rc) {
        pthread_mutex_lock(&mig->lock);
        mig->out_stats.setup_time_ms = mig_now_ms() - mig->out_start_ms;
        pthread_mutex_unlock(&mig->lock);
        if (!mr_mig_state_cas(&mig->out, MR_MIG_SETUP, MR_MIG_ACTIVE))
            rc = mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
    }
    if (!rc)
        rc = save_iterate(j);
    if (!rc)
        rc = save_complete(j);
    publish_stats(j);
    release(j);
    if (!rc) {
        int64_t now = mig_now_ms();

        mig->ops->set_runstate(mig->vm, MR_RUN_POSTMIGRATE);
        pthread_mutex_lock(&mig->lock);
        mig->out_stats.total_time_ms = now - mig->out_start_ms;
        mig->out_stats.downtime_ms = now - j->downtime_start_ms;
        pthread_mutex_unlock(&mig->lock);
        if (!mr_mig_state_cas(&mig->out, MR_MIG_DEVICE, MR_MIG_COMPLETED)) {
            /* a cancel won the race after the last byte: honour it */
            mr_error_set(&j->err, -ECANCELED, "Migration cancelled");
            rc = j->err.code;
        }
    }
    if (rc)
        save_failed(j);
    free_job(j);
    return NULL;
}

int mig_save_start(struct mr_migration *mig, const struct mr_mig_addr *a,
                   const struct mig_transport_ops *tr, struct mr_error *err)
{
    struct save_job *j = calloc(1, sizeof(*j));
    bool started = false;

    if (!j)
        return mr_error_set(err, -ENOMEM, "out of memory");
    j->mig = mig;
    mig_snapshot(mig, &j->caps, &j->params);
    j->fmt = mig_ram_save_format(&j->caps);
    mig_chan_init(&j->ch, tr, mig->fdsets, a,
                  j->fmt->nchannels(&j->caps, &j->params),
                  mr_direct_io_effective(&j->caps, &j->params), false);
    if (!tr->open_save(&j->ch, &j->err)) {
        /* Recorded before the thread runs, as for the load thread. */
        pthread_mutex_lock(&mig->lock);
        started = pthread_create(&mig->save_thread, NULL, save_thread, j) == 0;
        mig->save_thread_live = started;
        pthread_mutex_unlock(&mig->lock);
    }
    if (!started) {
        if (!j->err.code)
            mr_error_set(&j->err, -EAGAIN, "cannot start the migration thread");
        tr->close(&j->ch);
        mig_set_out_error(mig, &j->err);
        mr_mig_state_cas(&mig->out, MR_MIG_SETUP, MR_MIG_FAILED);
        mr_error_propagate(err, &j->err);
        free_job(j);
        return err ? err->code : -EIO;
    }
    return 0;
}
