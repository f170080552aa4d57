/*
 * The load thread: parses and checks the whole main stream with the
 * reader's decoders (format/stream_parse.h), leaving RAM records to the
 * job's RAM format (ram_format.h) and the remaining pages to its load mode
 * (load_mode.h); then devices and the run state.  The monitor stays
 * responsive and query-migrate reports progress (QEMU blocks instead).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/stream_defs.h"
#include "format/vmdesc.h"
#include "migration/load.h"
#include "migration/load_job.h"
#include "migration/load_mode.h"
#include "migration/publish.h"
#include "migration/ram_format.h"

static int find_block(struct load_job *j, const char *name)
{
    for (size_t i = 0; i < j->mig->nblocks; i++)
        if (strcmp(j->mig->blocks[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* docs/stream-format.md, "Configuration section": every capability mismatch is reported. */
static int check_caps(struct load_job *j, const struct mr_stream_config *cfg)
{
    static const enum mr_mig_cap validated[] = { MR_CAP_X_IGNORE_SHARED,
                                                 MR_CAP_MAPPED_RAM };
    bool received[2] = { cfg->x_ignore_shared, cfg->mapped_ram };
    char first[MR_ERROR_MSG_MAX] = "";

    for (uint32_t i = 0; i < cfg->nr_caps; i++)
        if (strcmp(cfg->caps[i], "x-ignore-shared") &&
            strcmp(cfg->caps[i], "mapped-ram"))
            return mr_cursor_fail(&j->c, -EINVAL, "Received unknown "
                                  "capability %s", cfg->caps[i]);
    for (int i = 0; i < 2; i++) {
        bool local = j->caps.on[validated[i]];
        char msg[MR_ERROR_MSG_MAX];

        if (local == received[i])
            continue;
        snprintf(msg, sizeof(msg), "Capability %s is %s, but received "
                 "capability is %s", mr_cap_name(validated[i]),
                 local ? "on" : "off", received[i] ? "on" : "off");
        if (first[0])
            fprintf(stderr, "%s\n", msg);
        else
            memcpy(first, msg, sizeof(first));
    }
    if (first[0])
        return mr_cursor_fail(&j->c, -EINVAL, "%s", first);
    return 0;
}

static int check_config(struct load_job *j, const struct mr_stream_config *cfg)
{
    const char *local = j->mig->ops->machine_type;

    /* QEMU compares over the received length only. */
    if (strncmp(cfg->machine, local, strlen(cfg->machine)) != 0)
        return mr_cursor_fail(&j->c, -EINVAL, "Machine type received is '%s' "
                              "and local is '%s'", cfg->machine, local);
    if (cfg->has_page_bits && cfg->target_page_bits != MR_TARGET_PAGE_BITS)
        return mr_cursor_fail(&j->c, -EINVAL, "Received TARGET_PAGE_BITS is %u "
                              "but local is %d", cfg->target_page_bits,
                              MR_TARGET_PAGE_BITS);
    return check_caps(j, cfg);
}

/* The MEM_SIZE block list of the START payload (docs/stream-format.md, "Block list (setup payload)"; "Loading a mapped-ram stream", step 3). */
static int read_block_list(struct load_job *j)
{
    uint64_t remaining;
    int rc = mr_ram_read_mem_size(&j->c, j->fmt->wire_mapped, &remaining);

    if (!rc)
        j->fmt->mem_size(j, remaining);
    while (!rc && remaining) {
        struct mr_ram_block_entry e;
        int b;

        rc = mr_ram_read_block_entry(&j->c, j->fmt->wire_mapped,
                                     j->caps.on[MR_CAP_X_IGNORE_SHARED], &e);
        if (rc)
            break;
        b = find_block(j, e.idstr);
        if (b < 0)
            return mr_cursor_fail(&j->c, -EINVAL, "Unknown ramblock \"%s\", "
                                  "cannot accept migration", e.idstr);
        if (e.used_length != j->mig->blocks[b].used_length)
            return LOAD_FAIL(j, -EINVAL, "Length mismatch: %s: 0x%llx in != "
                             "0x%llx", e.idstr, ULL(e.used_length),
                             ULL(j->mig->blocks[b].used_length));
        if (e.used_length > remaining)
            return LOAD_FAIL(j, -EINVAL, "RAM block %s (0x%llx bytes) exceeds "
                             "the announced total (0x%llx bytes left)", e.idstr,
                             ULL(e.used_length), ULL(remaining));
        remaining -= e.used_length;
        rc = j->fmt->block(j, b, &e);
    }
    if (!rc)
        j->fmt->blocks_done(j);
    return rc;
}

/* Where a device section's state goes: the entry of an earlier section
 * of the same device (the later one wins, as when QEMU loads both), else
 * a new one; the array grows geometrically. */
static struct mr_device_state *device_slot(struct load_job *j,
                                           const struct mr_section_header *h,
                                           uint32_t len)
{
    struct mr_device_state *d = NULL;

    for (size_t i = 0; i < j->ndevs && !d; i++)
        if (j->devs[i].instance_id == h->instance_id &&
            strcmp(j->devs[i].idstr, h->idstr) == 0)
            d = &j->devs[i];
    if (!d && j->ndevs == j->devs_cap) {
        size_t cap = j->devs_cap ? j->devs_cap * 2 : 8;

        d = realloc(j->devs, cap * sizeof(*d));
        if (!d)
            goto oom;
        j->devs = d;
        j->devs_cap = cap;
        d = NULL;
    }
    if (!d) {
        d = &j->devs[j->ndevs];
        memset(d, 0, sizeof(*d));
        d->instance_id = h->instance_id;
        d->idstr = strdup(h->idstr);
        j->ndevs++;
        if (!d->idstr)
            goto oom;
    }
    if (!d->data || d->size != len) {
        uint8_t *data = realloc(d->data, len ? len : 1);

        if (!data)
            goto oom;
        d->data = data;
        d->size = len;
    }
    return d;
oom:
    mr_cursor_fail(&j->c, -ENOMEM, "out of memory");
    return NULL;
}

/* QEMU's words for a section this VM does not have. */
static int unknown_section(struct load_job *j,
                           const struct mr_section_header *h)
{
    return mr_cursor_fail(&j->c, -EINVAL, "Unknown savevm section or "
                          "instance '%s' %u. Make sure that your current "
                          "VM setup matches your saved VM setup, including "
                          "any hotplugged devices", h->idstr, h->instance_id);
}

static int read_device(struct load_job *j, const struct mr_section_header *h)
{
    struct mr_device_state *d;
    uint32_t len = mr_cursor_be32(&j->c, "device state length");

    if (!mr_cursor_ok(&j->c))
        return j->c.err.code;
    if (strcmp(h->idstr, MIG_GLOBALSTATE_IDSTR) == 0) {
        if (len != MIG_GLOBALSTATE_BYTES)
            return LOAD_FAIL(j, -EINVAL, "%s: state of %u bytes, expected %d",
                             h->idstr, len, MIG_GLOBALSTATE_BYTES);
        mr_cursor_bytes(&j->c, j->src_run, MIG_GLOBALSTATE_BYTES, "globalstate");
        j->src_run[MIG_GLOBALSTATE_BYTES] = '\0';
        j->have_globalstate = true;
        return mr_cursor_ok(&j->c) ? 0 : j->c.err.code;
    }
    /* refused when seen, not kept until the VM refuses it */
    if (j->mig->ops->has_device &&
        !j->mig->ops->has_device(j->mig->vm, h->idstr, h->instance_id))
        return unknown_section(j, h);
    if (len > MIG_DEVICE_MAX_BYTES || len > j->src.size - j->c.pos)
        return LOAD_FAIL(j, -EINVAL, "device %s: state length %u is larger "
                         "than the file or the %u-byte limit", h->idstr, len,
                         MIG_DEVICE_MAX_BYTES);
    if (!(d = device_slot(j, h, len)))
        return j->c.err.code;
    d->version_id = h->version_id;
    mr_cursor_bytes(&j->c, d->data, len, "device state");
    return mr_cursor_ok(&j->c) ? 0 : j->c.err.code;
}

static int read_full_or_start(struct load_job *j, uint8_t type, uint64_t off)
{
    struct mr_section_header h;
    int rc = mr_stream_read_section_header(&j->c, type, off, &h);

    if (rc)
        return rc;
    if (type == QEMU_VM_SECTION_START && !j->have_ram &&
        strcmp(h.idstr, RAM_SECTION_IDSTR) == 0) {
        if (h.version_id != RAM_SECTION_VERSION)
            return LOAD_FAIL(j, -EINVAL, "ram: section version %u, expected "
                             "%d", h.version_id, RAM_SECTION_VERSION);
        j->have_ram = true;
        j->ram_sid = h.section_id;
        rc = read_block_list(j);
        if (!rc)
            rc = j->fmt->payload(j);
    } else if (type == QEMU_VM_SECTION_FULL) {
        rc = read_device(j, &h);
    } else {
        return unknown_section(j, &h);
    }
    return rc ? rc : mr_stream_read_footer(&j->c, h.section_id, h.idstr);
}

static int read_part_or_end(struct load_job *j, uint8_t type, uint64_t off)
{
    struct mr_section_header h;
    int rc = mr_stream_read_section_header(&j->c, type, off, &h);

    if (rc)
        return rc;
    if (!j->have_ram || h.section_id != j->ram_sid)
        return mr_cursor_fail(&j->c, -EINVAL, "Unknown savevm section %u",
                              h.section_id);
    rc = j->fmt->payload(j);
    return rc ? rc : mr_stream_read_footer(&j->c, h.section_id, "ram");
}

/* A file whose VMDESCRIPTION announces a checksum trailer but that has
 * none was cut short before the save's last write: refuse it. */
static int check_trailer_announced(struct load_job *j, bool present,
                                   uint64_t json_off, uint32_t json_len)
{
    struct mr_vmdesc desc;
    bool announced;

    if (j->have_ck || !present || j->src.stream)
        return 0;  /* a stream has no trailer: nothing to announce */
    if (mr_vmdesc_open(&j->src, json_off, json_len, &desc, &j->c.err))
        return j->c.err.code;
    announced = mr_vmdesc_has_key(&desc, MR_CKSUM_VMDESC_KEY);
    mr_vmdesc_close(&desc);
    if (announced)
        return LOAD_FAIL(j, -EINVAL, "incomplete file: its VMDESCRIPTION "
                         "announces a checksum trailer, but the file ends "
                         "without one (the save did not finish)");
    return 0;
}

/* Everything but the pages, checked before a byte of it is parsed. */
static int check_stream_crc(struct load_job *j)
{
    if (!j->have_ck)
        return 0;
    return mr_cksum_check_stream(&j->src, &j->ck, j->ch.addr.offset,
                                 j->src.size, &j->c.err);
}

/* Phase 1: the whole main stream. */
static int parse_stream(struct load_job *j)
{
    struct mr_stream_config cfg;
    uint32_t version;
    int rc;

    mr_cursor_init(&j->c, &j->src, j->ch.addr.offset);
    /* The trailer first: the stream then ends where it starts.  A socket
     * has no end to look at, and carries no trailer. */
    if (!j->src.stream &&
        (mr_cksum_open(&j->src, &j->ck, &j->have_ck, &j->c.err) ||
         check_stream_crc(j)))
        return j->c.err.code;
    mr_cursor_init(&j->c, &j->src, j->ch.addr.offset);
    if ((rc = j->fmt->begin(j)) ||
        (rc = mr_stream_read_header(&j->c, &version)) ||
        (rc = mr_stream_read_config(&j->c, &cfg)) ||
        (rc = check_config(j, &cfg)))
        return rc;
    for (;;) {
        uint64_t off = j->c.pos;
        uint8_t type;
        struct mr_stream_command cmd;
        bool present;
        uint64_t json_off;
        uint32_t json_len;

        if ((rc = mr_stream_read_type(&j->c, &type)))
            return rc;
        switch (type) {
        case QEMU_VM_SECTION_START:
        case QEMU_VM_SECTION_FULL:
            rc = read_full_or_start(j, type, off);
            break;
        case QEMU_VM_SECTION_PART:
        case QEMU_VM_SECTION_END:
            rc = read_part_or_end(j, type, off);
            break;
        case QEMU_VM_COMMAND:
            rc = mr_stream_read_command(&j->c, off, &cmd);
            break;
        case QEMU_VM_EOF:
            rc = mr_stream_read_vmdesc(&j->c, &present, &json_off, &json_len);
            return rc ? rc : check_trailer_announced(j, present, json_off,
                                                     json_len);
        default:
            return mr_cursor_fail(&j->c, -EINVAL, "Unknown savevm section "
                                  "type %d", type);
        }
        if (rc)
            return rc;
    }
}

static enum mr_runstate runstate_from_name(const char *name)
{
    for (int i = 0; i < MR_RUN__MAX; i++)
        if (strcmp(mr_runstate_name((enum mr_runstate)i), name) == 0)
            return (enum mr_runstate)i;
    return MR_RUN_RUNNING;
}

/* docs/qmp.md, "Run states": resume a live source unless -S/stop, else its state. */
static int set_final_runstate(struct load_job *j)
{
    struct mr_migration *mig = j->mig;
    enum mr_runstate src = j->have_globalstate ?
                           runstate_from_name(j->src_run) : MR_RUN_RUNNING;

    if (!mr_runstate_is_live(src)) {
        mig->ops->set_runstate(mig->vm, src);
        return 0;
    }
    if (!(mig->autostart_fn ? mig->autostart_fn(mig->autostart_opaque)
                            : atomic_load(&mig->autostart))) {
        mig->ops->set_runstate(mig->vm, MR_RUN_PAUSED);
        return 0;
    }
    return mig->ops->start(mig->vm, &j->err);
}

static void release(struct load_job *j)
{
    j->fmt->release(j);
    j->ch.ops->close(&j->ch);
    mr_device_state_free_array(j->devs, j->ndevs);
    mr_cksum_free(&j->ck);
    j->devs = NULL;
    j->ndevs = j->devs_cap = 0;
}

static bool load_cancel_asked(void *opaque)
{
    return load_cancelled(opaque);
}

/* Load thread: a socket's peer connects (the state stays setup until
 * then, as QEMU's), then the main stream's source. */
static int finish_inputs(struct load_job *j)
{
    const struct mig_transport_ops *t = j->ch.ops;
    int rc = t->open_load_finish ?
             t->open_load_finish(&j->ch, load_cancel_asked, j, &j->c.err) : 0;

    return rc ? rc : t->source(&j->ch, &j->src, &j->c.err);
}

static void *load_thread(void *arg)
{
    struct load_job *j = arg;
    struct mr_migration *mig = j->mig;
    int rc;

    rc = finish_inputs(j);
    mr_mig_state_cas(&mig->in, MR_MIG_SETUP, MR_MIG_ACTIVE);
    if (!rc)
        rc = parse_stream(j);
    if (rc)
        mr_error_propagate(&j->err, &j->c.err);
    if (!rc)
        rc = j->mode->ram(j);
    if (!rc && mig->ops->load_devices)
        rc = mig->ops->load_devices(mig->vm, j->devs, j->ndevs, &j->err);
    load_publish(j);
    release(j);
    if (!rc)
        rc = set_final_runstate(j);
    if (!rc) {
        j->mode->resumed(j);
    } else {
        if (!j->err.code)
            mr_error_set(&j->err, rc, "load of migration failed: %s",
                         strerror(-rc));
        mig_set_in_error(mig, &j->err);
        mr_mig_state_cas(&mig->in, MR_MIG_ACTIVE, MR_MIG_FAILED);
        /* Not when the VM is going away: it is on its way out already. */
        if (mig->load_failed_fn && !load_cancelled(j))
            mig->load_failed_fn(mig->load_failed_opaque, j->exit_on_error,
                                &j->err);
    }
    free(j);
    return NULL;
}

static int open_inputs(struct load_job *j, struct mr_error *err)
{
    int rc = j->ch.ops->check(j->mig->fdsets, &j->ch.addr, false,
                              j->caps.on[MR_CAP_MULTIFD], j->ch.dio, err);

    return rc ? rc : j->ch.ops->open_load(&j->ch, err);
}

int mig_load_start(struct mr_migration *mig, const struct mr_mig_addr *a,
                   const struct mig_transport_ops *tr, bool exit_on_error,
                   struct mr_error *err)
{
    struct load_job *j = calloc(1, sizeof(*j));
    struct mr_params p = { 0 };
    int rc;

    if (!j)
        return mr_error_set(err, -ENOMEM, "out of memory");
    mig_snapshot(mig, &j->caps, &p);
    j->mig = mig;
    j->exit_on_error = exit_on_error;
    j->fmt = mig_ram_load_format(&j->caps);
    j->mode = mig_load_mode_for(&j->caps);
    j->io_engine = mr_io_engine_param_name(p.io_engine);
    j->lazy_granule = p.x_lazy_granule;
    j->lazy_fill_cap = p.x_lazy_fill_cap;
    j->lazy_wset = p.x_lazy_working_set;
    mig_chan_init(&j->ch, tr, mig->fdsets, a, j->fmt->nchannels(&j->caps, &p),
                  mr_direct_io_effective(&j->caps, &p), true);
    mr_params_release(&p);
    if (j->fmt->accept) {
        j->ch.accept = j->fmt->accept;
        j->ch.accept_opaque = j;
    }
    rc = open_inputs(j, err);
    if (!rc) {
        /* Record the thread before it can run: a load that fails at once
         * may make the embedder free `mig` (exit-on-error), and the free
         * must find a thread to join, not race with this function. */
        pthread_mutex_lock(&mig->lock);
        if (pthread_create(&mig->load_thread, NULL, load_thread, j))
            rc = mr_error_set(err, -EAGAIN, "cannot start the load thread");
        else
            mig->load_thread_live = true;
        pthread_mutex_unlock(&mig->lock);
    }
    if (rc) {
        /* QEMU 10.0 leaves the incoming state in setup here. */
        release(j);
        free(j);
        return rc;
    }
    return 0;
}
