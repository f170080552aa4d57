/*
 * The load: `migrate-incoming` opens the main file and the channels on the
 * monitor thread, then a load thread reads the stream with the reader's
 * decoders (format/stream_parse.h) so the monitor stays responsive and
 * query-migrate can report progress (QEMU blocks its monitor instead).
 *
 * Mapped-ram loads run in two phases: first the whole main stream is
 * parsed and checked (configuration, block list, bitmaps, device state,
 * EOF, VMDESC) without touching guest RAM; only then are the pages read by
 * the channels, in pieces of at most 1 MiB (spec/multifd-file.md §4).  A
 * truncated or mismatched file is therefore refused before RAM changes.
 * Legacy streams carry their pages inline and are loaded as they are
 * parsed.  The guest starts only after everything was loaded and checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/cksum.h"
#include "format/layout.h"
#include "format/mapped_ram.h"
#include "format/vmdesc.h"
#include "format/source.h"
#include "format/stream_parse.h"
#include "mapram/fdset.h"
#include "migration/fdset_rules.h"
#include "migration/migration_int.h"
#include "migration/populate.h"
#include "multifd/multifd.h"

struct load_plan {
    size_t block;
    uint64_t pages_offset, num_pages, page_size;
    uint8_t *bitmap;            /* on-disk LE-64 form */
};

struct load_job {
    struct mr_migration *mig;
    struct mr_caps caps;
    bool mapped, dio, exit_on_error;
    unsigned nchan;
    const char *io_engine;         /* x-io-engine */
    uint64_t offset;
    int main_fd;
    int chan_fds[256];
    struct mr_source src;
    struct mr_cursor c;
    uint8_t *readahead;            /* legacy streams: the cursor's buffer */
    struct mr_populate *legacy_pop; /* legacy streams: populate-ahead */
    struct load_plan *plans;
    size_t nplans;
    struct mr_layout layout;       /* the blocks' layout checked so far */
    struct mr_device_state *devs;
    size_t ndevs;
    char src_run[MIG_GLOBALSTATE_BYTES + 1];
    bool have_globalstate, have_ram;
    uint32_t ram_sid;
    struct mr_ram_page_ctx pctx;
    struct mr_multifd *mf;
    uint64_t total_bytes, done_bytes;
    struct mr_cksum ck;
    bool have_ck;
    struct mr_error err;
};

static void publish(struct load_job *j)
{
    struct mig_ram_stats *s = &j->mig->in_stats;

    pthread_mutex_lock(&j->mig->lock);
    s->total = j->total_bytes;
    s->transferred = j->done_bytes;
    /* a legacy live stream may carry a page more than once */
    s->remaining = j->done_bytes < j->total_bytes ?
                   j->total_bytes - j->done_bytes : 0;
    s->page_size = MR_TARGET_PAGE_SIZE;
    pthread_mutex_unlock(&j->mig->lock);
}

/* Record an error in the cursor's sticky error (first wins). */
#define LOAD_FAIL(j, code, ...) mr_error_set(&(j)->c.err, (code), __VA_ARGS__)
#define ULL(x) ((unsigned long long)(x))

/* The VM is going away (mr_migration_free): stop between pieces. */
static bool load_cancelled(struct load_job *j)
{
    return atomic_load(&j->mig->load_cancel);
}

static int find_block(struct load_job *j, const char *name)
{
    for (size_t i = 0; i < j->mig->nblocks; i++)
        if (strcmp(j->mig->blocks[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* spec/stream-format.md §3: every capability mismatch is reported. */
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

static int add_plan(struct load_job *j, int b,
                    const struct mr_ram_block_entry *e)
{
    const struct mr_ram_block *rb = &j->mig->blocks[b];
    struct load_plan *p;
    uint64_t bytes;

    if (e->page_size != rb->page_size)
        return LOAD_FAIL(j, -EINVAL, "RAM block %s: file page size 0x%llx, "
                         "local 0x%llx", rb->name, ULL(e->page_size),
                         ULL(rb->page_size));
    if (mr_layout_add(&j->layout, e, j->src.size, &j->c.err))
        return j->c.err.code;
    p = realloc(j->plans, (j->nplans + 1) * sizeof(*p));
    if (!p)
        return mr_cursor_fail(&j->c, -ENOMEM, "out of memory");
    j->plans = p;
    p = &j->plans[j->nplans];
    memset(p, 0, sizeof(*p));
    p->block = (size_t)b;
    p->pages_offset = e->pages_offset;
    p->page_size = e->page_size;
    p->num_pages = e->used_length / e->page_size;
    bytes = mr_mapped_ram_bitmap_size(p->num_pages);
    p->bitmap = malloc(bytes ? bytes : 1);
    if (!p->bitmap)
        return mr_cursor_fail(&j->c, -ENOMEM, "out of memory for a bitmap");
    j->nplans++;
    if (mr_source_read(&j->src, p->bitmap, bytes, e->bitmap_offset, NULL))
        return mr_cursor_fail(&j->c, -EIO, "Error reading dirty bitmap");
    j->total_bytes += mr_bitmap_le64_count(p->bitmap, p->num_pages) *
                      p->page_size;
    return 0;
}

/* The MEM_SIZE block list of the START payload (§6.2, §9 step 3). */
static int read_block_list(struct load_job *j)
{
    uint64_t remaining;
    int rc = mr_ram_read_mem_size(&j->c, j->mapped, &remaining);

    if (!rc && !j->mapped)
        j->total_bytes = remaining;
    while (!rc && remaining) {
        struct mr_ram_block_entry e;
        int b;

        rc = mr_ram_read_block_entry(&j->c, j->mapped,
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
        if (j->mapped)
            rc = add_plan(j, b, &e);
    }
    return rc;
}

static int load_legacy_page(struct load_job *j,
                            const struct mr_ram_page_record *r)
{
    int b = find_block(j, r->idstr);
    const struct mr_ram_block *rb;

    if (b < 0)
        return mr_cursor_fail(&j->c, -EINVAL, "Can't find block %s", r->idstr);
    rb = &j->mig->blocks[b];
    if (r->addr % rb->page_size || r->addr >= rb->used_length)
        return LOAD_FAIL(j, -EINVAL, "Illegal RAM offset 0x%llx in block %s "
                         "of 0x%llx bytes", ULL(r->addr), rb->name,
                         ULL(rb->used_length));
    if (r->flags & RAM_SAVE_FLAG_PAGE) {
        const uint8_t *data = mr_cursor_peek(&j->c, r->data_offset,
                                             (size_t)rb->page_size);

        if (data)
            memcpy(rb->host + r->addr, data, rb->page_size);
        else if (mr_source_read(&j->src, rb->host + r->addr, rb->page_size,
                                r->data_offset, &j->c.err))
            return j->c.err.code;
    } else if (r->flags & RAM_SAVE_FLAG_ZERO) {
        if (r->fill)
            return LOAD_FAIL(j, -EINVAL, "Found a zero page with value %u",
                             r->fill);
        memset(rb->host + r->addr, 0, rb->page_size);
    } else {
        return LOAD_FAIL(j, -ENOTSUP, "Unsupported RAM record flags 0x%x",
                         r->flags);
    }
    j->done_bytes += rb->page_size;
    if ((j->done_bytes / rb->page_size) % 1024 == 0)
        publish(j);
    return 0;
}

/* A RAM payload up to its EOS. */
static int read_ram_payload(struct load_job *j)
{
    struct mr_ram_page_record r;

    if (j->mapped)
        return mr_ram_read_eos(&j->c);
    for (;;) {
        int rc = mr_ram_read_page_record(&j->c, false, MR_TARGET_PAGE_SIZE,
                                         &j->pctx, &r);
        if (rc)
            return rc;
        if (r.flags & RAM_SAVE_FLAG_EOS)
            return 0;
        if (r.flags & RAM_SAVE_FLAG_MULTIFD_FLUSH)
            continue;
        if ((rc = load_legacy_page(j, &r)))
            return rc;
        if (load_cancelled(j))
            return LOAD_FAIL(j, -ECANCELED, "Migration cancelled");
    }
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
    if (len > MIG_DEVICE_MAX_BYTES || len > j->src.size - j->c.pos)
        return LOAD_FAIL(j, -EINVAL, "device %s: state length %u is larger "
                         "than the file or the %u-byte limit", h->idstr, len,
                         MIG_DEVICE_MAX_BYTES);
    d = realloc(j->devs, (j->ndevs + 1) * sizeof(*d));
    if (!d)
        return mr_cursor_fail(&j->c, -ENOMEM, "out of memory");
    j->devs = d;
    d = &j->devs[j->ndevs];
    memset(d, 0, sizeof(*d));
    d->idstr = strdup(h->idstr);
    d->data = malloc(len ? len : 1);
    j->ndevs++;
    if (!d->idstr || !d->data)
        return mr_cursor_fail(&j->c, -ENOMEM, "out of memory");
    d->instance_id = h->instance_id;
    d->version_id = h->version_id;
    d->size = len;
    mr_cursor_bytes(&j->c, d->data, len, "device state");
    return mr_cursor_ok(&j->c) ? 0 : j->c.err.code;
}

/* A legacy stream's first pass sends every page of every block in order
 * (data or zero record): fault the memory in ahead of the parser, on
 * another CPU, instead of inside each copy (migration/populate.h). */
static struct mr_populate *populate_all_blocks(struct load_job *j)
{
    struct mr_populate *pop = mr_populate_new();

    for (size_t i = 0; pop && i < j->mig->nblocks; i++)
        mr_populate_add(pop, j->mig->blocks[i].host,
                        j->mig->blocks[i].used_length);
    mr_populate_start(pop);
    return pop;
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
        if (!rc && !j->mapped)
            j->legacy_pop = populate_all_blocks(j);
        if (!rc)
            rc = read_ram_payload(j);
    } else if (type == QEMU_VM_SECTION_FULL) {
        rc = read_device(j, &h);
    } else {
        return mr_cursor_fail(&j->c, -EINVAL, "Unknown savevm section or "
                              "instance '%s' %u. Make sure that your current "
                              "VM setup matches your saved VM setup, including "
                              "any hotplugged devices", h.idstr, h.instance_id);
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
    rc = read_ram_payload(j);
    return rc ? rc : mr_stream_read_footer(&j->c, h.section_id, "ram");
}

/* A file whose VMDESCRIPTION announces a checksum trailer but that has
 * none was cut short before the save's last write: refuse it. */
static int check_trailer_announced(struct load_job *j, bool present,
                                   uint64_t json_off, uint32_t json_len)
{
    struct mr_vmdesc desc;
    bool announced;

    if (j->have_ck || !present)
        return 0;
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
    uint32_t crc;

    if (!j->have_ck || !(j->ck.flags & MR_CKSUM_F_STREAM_CRC))
        return 0;
    if (j->ck.stream_offset != j->offset)
        return LOAD_FAIL(j, -EINVAL, "checksum trailer: the stream starts at "
                         "0x%llx, but is loaded from 0x%llx",
                         ULL(j->ck.stream_offset), ULL(j->offset));
    if (mr_cksum_stream_crc(&j->src, &j->ck, j->src.size, &crc, &j->c.err))
        return j->c.err.code;
    if (crc != j->ck.stream_crc)
        return LOAD_FAIL(j, -EBADMSG, "stream checksum mismatch: the stream "
                         "records, bitmaps or device state differ from what "
                         "was saved (expected 0x%08x, computed 0x%08x)",
                         j->ck.stream_crc, crc);
    return 0;
}

#define LEGACY_READAHEAD_BYTES (1u << 20)

/* Phase 1: the whole main stream. */
static int parse_stream(struct load_job *j)
{
    struct mr_stream_config cfg;
    uint32_t version;
    int rc;

    mr_cursor_init(&j->c, &j->src, j->offset);
    /* The trailer first: the stream then ends where it starts. */
    if (mr_cksum_open(&j->src, &j->ck, &j->have_ck, &j->c.err) ||
        check_stream_crc(j))
        return j->c.err.code;
    mr_cursor_init(&j->c, &j->src, j->offset);
    /* A legacy stream is a page record after another: read it ahead in
     * large pieces and copy the pages out of them (4 KiB reads would cost
     * two reads per page). */
    if (!j->mapped) {
        j->readahead = malloc(LEGACY_READAHEAD_BYTES);
        mr_cursor_set_buffer(&j->c, j->readahead, LEGACY_READAHEAD_BYTES);
    }
    if ((rc = mr_stream_read_header(&j->c, &version)) ||
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

/* The ranges phase 2 will read, in its order, for the populate-ahead
 * thread (migration/populate.h). */
static struct mr_populate *populate_plan(struct load_job *j)
{
    struct mr_populate *pop = mr_populate_new();

    for (size_t i = 0; pop && i < j->nplans; i++) {
        const struct load_plan *p = &j->plans[i];
        const struct mr_ram_block *rb = &j->mig->blocks[p->block];
        uint64_t a, b;

        for (uint64_t from = 0;
             mr_bitmap_le64_next_run(p->bitmap, p->num_pages, from, &a, &b);
             from = b)
            if (b * p->page_size <= rb->used_length)
                mr_populate_add(pop, rb->host + a * p->page_size,
                                (b - a) * p->page_size);
    }
    mr_populate_start(pop);
    return pop;
}

/* The trailer's entry for a plan must describe the same block layout. */
static const struct mr_cksum_block *ck_block(struct load_job *j,
                                             const struct load_plan *p)
{
    const char *name = j->mig->blocks[p->block].name;
    const struct mr_cksum_block *cb = mr_cksum_find(&j->ck, name);

    if (!cb)
        mr_error_set(&j->err, -EINVAL, "checksum trailer has no entry for "
                     "RAM block %s", name);
    else if (cb->page_size != p->page_size ||
             cb->pages_offset != p->pages_offset ||
             cb->used_length != p->num_pages * p->page_size)
        mr_error_set(&j->err, -EINVAL, "checksum trailer: RAM block %s "
                     "layout differs from the stream's", name);
    else
        return cb;
    return NULL;
}

static uint64_t extent_present(const struct load_plan *p, uint64_t e)
{
    uint64_t per = mr_cksum_extent_pages(p->page_size), n = 0;
    uint64_t end = (e + 1) * per < p->num_pages ? (e + 1) * per : p->num_pages;

    for (uint64_t q = e * per; q < end; q++)
        n += mr_bitmap_le64_test(p->bitmap, q);
    return n;
}

/* Phase 2 with a trailer: every extent is read and verified by a channel. */
static int load_pages_verified(struct load_job *j)
{
    int rc = 0;

    for (size_t i = 0; i < j->nplans && !rc; i++) {
        const struct load_plan *p = &j->plans[i];
        const struct mr_cksum_block *cb = ck_block(j, p);
        struct mr_multifd_extent x = { 0 };

        if (!cb)
            return j->err.code;
        x.block = cb->name;
        x.host = j->mig->blocks[p->block].host;
        x.page_size = p->page_size;
        x.num_pages = p->num_pages;
        x.pages_offset = p->pages_offset;
        x.bitmap = p->bitmap;
        for (uint64_t e = 0; !rc && e < cb->nr_extents; e++) {
            if (load_cancelled(j))
                return mr_error_set(&j->err, -ECANCELED,
                                    "Migration cancelled");
            x.extent = e;
            x.crc = cb->crc[e];
            rc = mr_multifd_queue_extent(j->mf, &x, &j->err);
            j->done_bytes += extent_present(p, e) * p->page_size;
            publish(j);
        }
    }
    return rc ? rc : mr_multifd_sync(j->mf, &j->err);
}

/* Phase 2: runs of set bits, cut into <= 1 MiB pieces, to the channels. */
static int load_pages(struct load_job *j)
{
    struct mr_multifd_config cfg = { 0 };
    struct mr_populate *pop;
    int rc = 0;

    cfg.nchannels = j->nchan;
    cfg.fds = j->chan_fds;
    cfg.sync_fd = j->main_fd;
    cfg.direct_io = j->dio;
    cfg.engine = j->io_engine;
    j->mf = mr_multifd_new(&cfg, &j->err);
    if (!j->mf)
        return j->err.code;
    pop = populate_plan(j);
    if (j->have_ck) {
        rc = load_pages_verified(j);
        mr_populate_free(pop);
        return rc;
    }
    for (size_t i = 0; i < j->nplans && !rc; i++) {
        const struct load_plan *p = &j->plans[i];
        const struct mr_ram_block *rb = &j->mig->blocks[p->block];
        uint64_t a, b;

        for (uint64_t from = 0; !rc &&
             mr_bitmap_le64_next_run(p->bitmap, p->num_pages, from, &a, &b);
             from = b) {
            for (uint64_t off = a * p->page_size; !rc && off < b * p->page_size;
                 off += MAPPED_RAM_LOAD_BUF_SIZE) {
                uint64_t len = b * p->page_size - off;

                if (len > MAPPED_RAM_LOAD_BUF_SIZE)
                    len = MAPPED_RAM_LOAD_BUF_SIZE;
                if (load_cancelled(j))
                    rc = mr_error_set(&j->err, -ECANCELED,
                                      "Migration cancelled");
                else if (off >= rb->used_length)
                    rc = mr_error_set(&j->err, -EINVAL, "page outside of "
                                      "ramblock %s range", rb->name);
                if (rc)
                    break;
                rc = mr_multifd_queue_read(j->mf, rb->host + off, len,
                                           p->pages_offset + off, &j->err);
                j->done_bytes += len;
                publish(j);
            }
        }
    }
    if (!rc)
        rc = mr_multifd_sync(j->mf, &j->err);
    mr_populate_free(pop);
    return rc;
}

static enum mr_runstate runstate_from_name(const char *name)
{
    for (int i = 0; i < MR_RUN__MAX; i++)
        if (strcmp(mr_runstate_name((enum mr_runstate)i), name) == 0)
            return (enum mr_runstate)i;
    return MR_RUN_RUNNING;
}

/* spec/qmp.md §2: resume a live source unless -S/stop, else its state. */
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
    if (j->mf) {
        if (j->err.code)
            mr_multifd_cancel(j->mf);
        mr_multifd_free(j->mf);
        j->mf = NULL;
    }
    for (unsigned i = 0; i < j->nchan; i++)
        mig_close_fd(j->mig, j->chan_fds[i]);
    /* direct-io means "leave the page cache alone": drop what the buffered
     * main stream (headers, bitmaps, device state, trailer) pulled in */
    if (j->dio && j->main_fd >= 0)
        (void)posix_fadvise(j->main_fd, 0, 0, POSIX_FADV_DONTNEED);
    mig_close_fd(j->mig, j->main_fd);
    j->nchan = 0;
    j->main_fd = -1;
    for (size_t i = 0; i < j->nplans; i++)
        free(j->plans[i].bitmap);
    free(j->plans);
    j->plans = NULL;
    j->nplans = 0;
    mr_layout_free(&j->layout);
    mr_device_state_free_array(j->devs, j->ndevs);
    mr_cksum_free(&j->ck);
    mr_cursor_set_buffer(&j->c, NULL, 0);
    free(j->readahead);
    j->readahead = NULL;
    mr_populate_free(j->legacy_pop);
    j->legacy_pop = NULL;
    j->devs = NULL;
    j->ndevs = 0;
}

static void *load_thread(void *arg)
{
    struct load_job *j = arg;
    struct mr_migration *mig = j->mig;
    int rc;

    mr_mig_state_cas(&mig->in, MR_MIG_SETUP, MR_MIG_ACTIVE);
    rc = parse_stream(j);
    if (rc)
        mr_error_propagate(&j->err, &j->c.err);
    if (!rc && j->mapped)
        rc = load_pages(j);
    if (!rc && mig->ops->load_devices)
        rc = mig->ops->load_devices(mig->vm, j->devs, j->ndevs, &j->err);
    publish(j);
    release(j);
    if (!rc)
        rc = set_final_runstate(j);
    if (!rc) {
        mr_mig_state_cas(&mig->in, MR_MIG_ACTIVE, MR_MIG_COMPLETED);
    } else {
        if (!j->err.code)
            mr_error_set(&j->err, rc, "load of migration failed: %s",
                         strerror(-rc));
        mig_set_in_error(mig, &j->err);
        mr_mig_state_cas(&mig->in, MR_MIG_ACTIVE, MR_MIG_FAILED);
        if (mig->load_failed_fn)
            mig->load_failed_fn(mig->load_failed_opaque, j->exit_on_error,
                                &j->err);
    }
    free(j);
    return NULL;
}

static int open_inputs(struct load_job *j, const struct mr_mig_addr *a,
                       struct mr_error *err)
{
    int flags = O_RDONLY | (j->dio ? O_DIRECT : 0);
    int rc;

    if (mr_fdset_path_is_fdset(a->path) &&
        (rc = mr_fdset_rules_probe(j->mig->fdsets, a->path, false,
                                   j->caps.on[MR_CAP_MULTIFD], j->dio, err)))
        return rc;
    j->main_fd = mig_open(j->mig, a->path, O_RDONLY, err);
    if (j->main_fd < 0)
        return j->main_fd;
    for (unsigned i = 0; i < j->nchan; i++) {
        j->chan_fds[i] = mig_open(j->mig, a->path, flags, err);
        if (j->chan_fds[i] < 0) {
            rc = j->chan_fds[i];
            j->nchan = i;
            return rc;
        }
    }
    return mr_source_init_fd(&j->src, j->main_fd, err);
}

int mig_start_incoming(struct mr_migration *mig, const struct mr_mig_addr *a,
                       bool exit_on_error, struct mr_error *err)
{
    struct load_job *j = calloc(1, sizeof(*j));
    struct mr_params p = { 0 };
    int rc;

    if (!j)
        return mr_error_set(err, -ENOMEM, "out of memory");
    mig_snapshot(mig, &j->caps, &p);
    j->mig = mig;
    j->offset = a->offset;
    j->exit_on_error = exit_on_error;
    j->mapped = j->caps.on[MR_CAP_MAPPED_RAM];
    j->dio = mr_direct_io_effective(&j->caps, &p);
    j->io_engine = mr_io_engine_param_name(p.io_engine);
    j->nchan = (j->mapped && j->caps.on[MR_CAP_MULTIFD]) ?
               p.multifd_channels : 0;
    j->main_fd = -1;
    for (size_t i = 0; i < sizeof(j->chan_fds) / sizeof(j->chan_fds[0]); i++)
        j->chan_fds[i] = -1;
    mr_params_release(&p);
    pthread_mutex_lock(&mig->lock);
    memset(&mig->in_stats, 0, sizeof(mig->in_stats));
    mr_error_clear(&mig->in_err);
    pthread_mutex_unlock(&mig->lock);
    mr_mig_state_cas(&mig->in, MR_MIG_NONE, MR_MIG_SETUP);
    rc = open_inputs(j, a, err);
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
