/*
 * `mapram restore` as QEMU's sender on the multifd socket wire
 * (docs/peer-restore.md): check the file whole before anything goes out,
 * then turn its mapped-ram stream into the socket form - configuration
 * without the capabilities subsection, the plain block list, the setup
 * sync, the pages (peer_restore_pages.c), the final sync and marker, then
 * everything after the RAM as it is in the file.  Any failure before the
 * final marker cuts every socket: no device state, so no guest start.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "format/cksum.h"
#include "format/stream_defs.h"
#include "format/stream_write.h"
#include "image/verify.h"
#include "peer/peer_restore_internal.h"
#include "util/sock.h"

#define COPY_BYTES (1u << 20)

/* ---- checks before anything is sent ---- */

static int check_walk(const struct mr_walk *w, struct mr_error *err)
{
    if (w->loc.incomplete)
        return mr_error_set(err, -EINVAL, "incomplete save file: the save "
                            "did not finish");
    if (!w->mapped_ram)
        return mr_error_set(err, -ENOTSUP, "the stream is not in mapped-ram "
                            "format (use --transport file)");
    if (w->config.x_ignore_shared)
        return mr_error_set(err, -ENOTSUP, "x-ignore-shared streams cannot "
                            "be sent over sockets");
    if (!w->have_ram || !w->ram_complete || !w->eof_seen ||
        !w->vmdesc_present)
        return mr_error_set(err, -EINVAL, "incomplete stream: no complete "
                            "RAM section, EOF and VMDESCRIPTION");
    if (w->unlisted.count || w->nr_sections == 0)
        return mr_error_set(err, -ENOTSUP, "the stream has %zu sections "
                            "(more than mapram sends)", w->nr_sections);
    if (w->in && mr_vmdesc_has_key(&w->in->vmdesc, MR_CKSUM_VMDESC_KEY) &&
        !w->have_cksum)
        return mr_error_set(err, -EINVAL, "incomplete file: its "
                            "VMDESCRIPTION announces a checksum trailer, but "
                            "the file ends without one (the save did not "
                            "finish)");
    return 0;
}

/* The device state, records and bitmaps against the trailer's stream CRC:
 * they go out only after the pages, but are checked before the first. */
static int check_stream_crc(const struct mr_peer_restore *r,
                            struct mr_error *err)
{
    if (!r->w.have_cksum)
        return 0;
    return mr_cksum_check_stream(&r->src, &r->w.cksum,
                                 r->w.loc.stream_offset, r->w.cksum_offset,
                                 err);
}

/* Every block travels in 4 KiB pages and, in a sealed file, has its
 * extents in the trailer with the stream's layout: refused here, before
 * any socket exists, rather than in the middle of the pages. */
static int check_blocks(const struct mr_walk *w, struct mr_error *err)
{
    for (size_t i = 0; i < w->nr_blocks; i++) {
        const struct mr_ram_block_entry *e = &w->blocks[i].entry;
        const struct mr_cksum_block *cb;

        if (e->page_size != MR_MFD_PAGE_SIZE)
            return mr_error_set(err, -ENOTSUP, "RAM block %s: page size %"
                                PRIu64 " (multifd sockets carry 4 KiB "
                                "pages)", e->idstr, e->page_size);
        if (!w->have_cksum)
            continue;
        cb = mr_cksum_find(&w->cksum, e->idstr);
        if (!cb)
            return mr_error_set(err, -EINVAL, "checksum trailer has no "
                                "entry for RAM block %s", e->idstr);
        if (cb->page_size != e->page_size ||
            cb->pages_offset != e->pages_offset ||
            cb->used_length != e->used_length)
            return mr_error_set(err, -EINVAL, "checksum trailer: RAM block "
                                "%s layout differs from the stream's",
                                cb->name);
    }
    return 0;
}

/* "pc-q35-8.0" and older sync per section (docs/multifd.md). */
static bool machine_per_section(const char *m)
{
    const char *dash = strrchr(m, '-');
    unsigned major = 0, minor = 0;

    if (!dash || sscanf(dash + 1, "%u.%u", &major, &minor) != 2)
        return false;
    return major < 8 || (major == 8 && minor == 0);
}

static void fill_info(struct mr_peer_restore *r)
{
    struct mr_peer_restore_info *in = &r->info;
    const struct mr_walk *w = &r->w;

    in->kind = w->loc.kind;
    in->checksums = w->have_cksum;
    in->per_section = machine_per_section(w->config.machine);
    if (w->loc.kind == MR_CONTAINER_LIBVIRT) {
        in->was_running_known = true;
        in->was_running = w->loc.libvirt.was_running != 0;
    }
    for (size_t i = 0; i < w->nr_blocks; i++) {
        in->ram_size += w->blocks[i].entry.used_length;
        in->data_bytes += w->blocks[i].pages_present *
                          w->blocks[i].entry.page_size;
    }
    in->blocks = (uint32_t)w->nr_blocks;
    snprintf(in->machine, sizeof(in->machine), "%s", w->config.machine);
    r->config_end = w->sections[0].start;
    if (w->nr_commands && w->commands[0].offset < r->config_end)
        r->config_end = w->commands[0].offset;
}

int mr_peer_restore_open(int fd, int fd_direct, int64_t offset,
                         struct mr_peer_restore **out, struct mr_error *err)
{
    struct mr_peer_restore *r = calloc(1, sizeof(*r));
    int rc;

    *out = r;
    if (!r)
        return mr_error_set(err, -ENOMEM, "out of memory");
    r->fd = fd;
    r->fd_direct = fd_direct;
    r->main_fd = -1;
    rc = mr_source_init_fd(&r->src, fd, err);
    if (rc == 0)
        rc = mr_walk_file(&r->src, offset, &r->w, err);
    if (rc == 0)
        rc = check_walk(&r->w, err);
    if (rc == 0)
        rc = mr_verify_layout(&r->src, &r->w, err);
    if (rc == 0)
        rc = check_blocks(&r->w, err);
    if (rc == 0)
        rc = check_stream_crc(r, err);
    if (rc == 0)
        fill_info(r);
    return rc;
}

const struct mr_peer_restore_info *
mr_peer_restore_info(const struct mr_peer_restore *r)
{
    return &r->info;
}

/* ---- the main socket ---- */

static int main_write(void *opaque, const void *buf, size_t len,
                      uint64_t off, struct mr_error *err)
{
    struct mr_peer_restore *r = opaque;

    (void)off;
    if (mr_sock_write_full(r->main_fd, buf, len, err) < 0) {
        if (err->code == -EPIPE || err->code == -ECONNRESET) {
            mr_error_clear(err);
            return mr_error_set(err, -EPIPE, "the destination closed the "
                                "main migration channel early");
        }
        return err->code;
    }
    r->main_bytes += len;
    return 0;
}

static int flushed(struct mr_stream_writer *sw, struct mr_error *err)
{
    if (mr_sw_flush(sw) < 0 || mr_sw_error(sw)) {
        *err = sw->err;
        return err->code ? err->code : -EIO;
    }
    return 0;
}

/* File bytes [a, b) as they are. */
static int copy_range(struct mr_peer_restore *r, struct mr_stream_writer *sw,
                      uint64_t a, uint64_t b, struct mr_error *err)
{
    uint8_t *buf;
    int rc = flushed(sw, err);

    if (rc || a >= b)
        return rc;
    buf = malloc(COPY_BYTES);
    if (!buf)
        return mr_error_set(err, -ENOMEM, "out of memory");
    while (!rc && a < b) {
        size_t n = b - a < COPY_BYTES ? (size_t)(b - a) : COPY_BYTES;

        rc = mr_source_read(&r->src, buf, n, a, err);
        if (!rc)
            rc = main_write(r, buf, n, 0, err);
        a += n;
    }
    free(buf);
    return rc;
}

static void put_config(struct mr_peer_restore *r, struct mr_stream_writer *sw)
{
    const struct mr_stream_config *c = &r->w.config;

    mr_sw_configuration(sw, c->machine, NULL, 0);
    if (c->has_page_bits) {
        mr_sw_put_u8(sw, QEMU_VM_SUBSECTION);
        mr_sw_put_counted(sw, CONFIG_SUBSECTION_PAGE_BITS);
        mr_sw_put_be32(sw, 1);
        mr_sw_put_be32(sw, c->target_page_bits);
    }
    if (c->has_uuid) {
        mr_sw_put_u8(sw, QEMU_VM_SUBSECTION);
        mr_sw_put_counted(sw, CONFIG_SUBSECTION_UUID);
        mr_sw_put_be32(sw, 1);
        mr_sw_put_bytes(sw, c->uuid, 16);
    }
}

/* Does the file's section end with a footer? */
static bool has_footer(const struct mr_peer_restore *r,
                       const struct mr_walk_section *s)
{
    uint8_t f[5];
    struct mr_error ignore = MR_ERROR_INIT;

    return s->end >= s->start + 5 &&
           mr_source_read(&r->src, f, 5, s->end - 5, &ignore) == 0 &&
           f[0] == QEMU_VM_SECTION_FOOTER &&
           ((uint32_t)f[1] << 24 | f[2] << 16 | f[3] << 8 | f[4]) ==
           s->section_id;
}

/* The marker of a sync point, then EOS and the footer. */
static void put_ram_tail(struct mr_peer_restore *r,
                         struct mr_stream_writer *sw,
                         const struct mr_walk_section *s)
{
    if (!r->info.per_section)
        mr_sw_put_be64(sw, RAM_SAVE_FLAG_MULTIFD_FLUSH);
    mr_sw_ram_eos(sw);
    if (has_footer(r, s))
        mr_sw_section_footer(sw, s->section_id);
}

static int put_ram_start(struct mr_peer_restore *r,
                         struct mr_stream_writer *sw,
                         const struct mr_walk_section *s,
                         struct mr_error *err)
{
    struct mr_sw_ram_block *b = calloc(r->w.nr_blocks + 1, sizeof(*b));

    if (!b)
        return mr_error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < r->w.nr_blocks; i++) {
        b[i].name = r->w.blocks[i].entry.idstr;
        b[i].used_length = r->w.blocks[i].entry.used_length;
        b[i].page_size = r->w.blocks[i].entry.page_size;
    }
    mr_sw_section_header(sw, QEMU_VM_SECTION_START, s->section_id, "ram",
                         s->instance_id, s->version_id);
    mr_sw_ram_setup(sw, b, r->w.nr_blocks, false, false);
    put_ram_tail(r, sw, s);
    free(b);
    return flushed(sw, err);
}

/* Every page, the final sync, then END with its marker. */
static int put_ram_end(struct mr_peer_restore *r, struct mr_stream_writer *sw,
                       const struct mr_walk_section *s, struct mr_error *err)
{
    if (mr_peer_send_pages(r, err) < 0)
        return err->code;
    mr_sw_section_short(sw, QEMU_VM_SECTION_END, s->section_id);
    put_ram_tail(r, sw, s);
    return flushed(sw, err);
}

/* The file's items after the configuration, 'ram' rewritten. */
static int send_items(struct mr_peer_restore *r, struct mr_stream_writer *sw,
                      struct mr_error *err)
{
    uint64_t cur = r->config_end;
    int rc = 0;

    for (size_t i = 0; !rc && i < r->w.nr_sections; i++) {
        const struct mr_walk_section *s = &r->w.sections[i];

        if (s->section_id != r->w.ram_section_id ||
            s->type == QEMU_VM_SECTION_FULL)
            continue;
        rc = copy_range(r, sw, cur, s->start, err);
        if (!rc && s->type == QEMU_VM_SECTION_START)
            rc = put_ram_start(r, sw, s, err);
        else if (!rc && s->type == QEMU_VM_SECTION_END)
            rc = put_ram_end(r, sw, s, err);
        cur = s->end;   /* PART: only EOS in a file; dropped */
        if (!rc)
            rc = mr_peer_cancelled(r, err);
    }
    return rc ? rc : copy_range(r, sw, cur, r->w.stream_end, err);
}

/* ---- connecting ---- */

static int connect_checked(struct mr_peer_restore *r, const char *what,
                           struct mr_error *err)
{
    int fd = mr_sock_connect_unix(r->link->path, err);
    int pid;

    if (fd < 0)
        return mr_error_prefix(err, "%s: ", what);
    pid = mr_sock_peer_pid(fd);
    if (pid != r->link->peer_pid) {
        close(fd);
        return mr_error_set(err, -EPERM, "%s: the peer of '%s' is pid %d, "
                            "not the VM (pid %d): refused", what,
                            r->link->path, pid, r->link->peer_pid);
    }
    return fd;
}

static int connect_chan(void *opaque, unsigned id, struct mr_error *err)
{
    char what[48];

    snprintf(what, sizeof(what), "multifd channel %u", id);
    return connect_checked(opaque, what, err);
}

static void cut(struct mr_peer_restore *r)
{
    mr_sock_send_abort(r->chans);
    if (r->main_fd >= 0)
        shutdown(r->main_fd, SHUT_RDWR);
}

static int run_send(struct mr_peer_restore *r, struct mr_stream_writer *sw,
                    struct mr_error *err)
{
    r->main_fd = connect_checked(r, "main migration channel", err);
    if (r->main_fd < 0)
        return r->main_fd;
    /* the destination's main loop waits for these bytes: send at once */
    mr_sw_header(sw);
    if (flushed(sw, err) < 0 ||
        mr_sock_send_open(r->link->channels, r->link->uuid, connect_chan, r,
                          &r->chans, err) < 0)
        return err->code;
    if (r->link->cancel)
        mr_sock_send_watch(r->chans, r->link->cancel);
    if (mr_sock_send_sync(r->chans, err) < 0)
        return err->code;
    put_config(r, sw);
    return send_items(r, sw, err);
}

int mr_peer_restore_send(struct mr_peer_restore *r,
                         const struct mr_peer_restore_link *l,
                         struct mr_error *err)
{
    struct mr_stream_sink sink = { main_write, r };
    struct mr_stream_writer sw;
    int rc;

    r->link = l;
    r->main_bytes = r->data_done = 0;
    if (mr_sw_init(&sw, &sink, 0, err) < 0)
        return err->code;
    rc = run_send(r, &sw, err);
    if (rc == -ECANCELED && l->cancel && *l->cancel) {
        /* the channels saw the signal first: say it the peer's way */
        mr_error_clear(err);
        rc = mr_peer_cancelled(r, err);
    }
    if (rc)
        cut(r);
    mr_peer_progress(r);
    mr_sock_send_close(r->chans);
    r->chans = NULL;
    if (r->main_fd >= 0)
        close(r->main_fd);
    r->main_fd = -1;
    mr_sw_destroy(&sw);
    return rc;
}

uint64_t mr_peer_restore_sent(const struct mr_peer_restore *r)
{
    return r->main_bytes;
}

void mr_peer_progress(struct mr_peer_restore *r)
{
    const struct mr_peer_restore_link *l = r->link;
    uint64_t wire = r->main_bytes + (r->chans ? mr_sock_send_bytes(r->chans)
                                              : 0);

    if (l && l->progress)
        l->progress(l->opaque, r->data_done, r->info.data_bytes, wire);
}

int mr_peer_cancelled(const struct mr_peer_restore *r, struct mr_error *err)
{
    if (r->link && r->link->cancel && *r->link->cancel)
        return mr_error_set(err, -ECANCELED, "interrupted: the restore was "
                            "cut before any device state was sent");
    return 0;
}

void mr_peer_restore_free(struct mr_peer_restore *r)
{
    if (!r)
        return;
    mr_walk_free(&r->w);
    free(r);
}

int mr_peer_restore_dir(char *out, size_t cap, struct mr_error *err)
{
    return mr_sock_private_dir(NULL, out, cap, err);
}

void mr_peer_restore_dir_remove(const char *dir)
{
    mr_sock_private_dir_remove(dir);
}
