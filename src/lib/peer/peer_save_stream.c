/*
 * The main-stream transcoder of `mr_peer_save`: QEMU 10's multifd socket
 * stream in, the mapped-ram file stream out (docs/multifd.md, "Socket
 * stream and mapped-ram file"; docs/peer-save.md).  Every item is
 * validated with QEMU's messages where QEMU has one.  Reads never ask for
 * more bytes than the next item needs, so the parser never waits for bytes
 * the source will only send after we answered or synced.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/stream_defs.h"
#include "peer/peer_save_internal.h"

#define IN_BUF_BYTES (64u << 10)
#define RAM_FLAGS_MASK 0xfffu

struct in {
    const struct peer_stream_ops *ops;
    uint8_t buf[IN_BUF_BYTES];
    size_t off, len;
    uint64_t pos;               /* bytes consumed */
    struct mr_error *err;
};

struct xc {
    struct in in;
    struct mr_stream_writer *w;
    struct peer_stream_result *res;
    struct peer_block *blocks;
    size_t nblocks;
    bool have_ram, ram_ended, ignore_shared;
    uint32_t ram_sid;
    /* legacy ZERO records: the block of the last named record */
    size_t last_block;
    bool have_last;
};

/* ---- input ---- */

static int in_fill(struct in *in, size_t n)
{
    if (mr_error_is_set(in->err))
        return in->err->code;
    if (in->len - in->off >= n)
        return 0;
    memmove(in->buf, in->buf + in->off, in->len - in->off);
    in->len -= in->off;
    in->off = 0;
    while (in->len < n) {
        ssize_t got = in->ops->read(in->ops->opaque, in->buf + in->len,
                                    sizeof(in->buf) - in->len);

        if (got < 0)
            return mr_error_set(in->err, (int)got, "reading the VM's "
                                "migration stream: %s", strerror((int)-got));
        if (got == 0)
            return mr_error_set(in->err, -EPIPE, "the VM's migration stream "
                                "ended early, at byte %" PRIu64 " (no EOF "
                                "record)", in->pos + in->len - in->off);
        in->len += (size_t)got;
    }
    return 0;
}

static const uint8_t *in_take(struct in *in, size_t n)
{
    const uint8_t *p;

    if (in_fill(in, n) < 0)
        return NULL;
    p = in->buf + in->off;
    in->off += n;
    in->pos += n;
    return p;
}

static uint8_t in_u8(struct in *in)
{
    const uint8_t *p = in_take(in, 1);

    return p ? p[0] : 0;
}

static uint16_t in_be16(struct in *in)
{
    const uint8_t *p = in_take(in, 2);

    return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

static uint32_t in_be32(struct in *in)
{
    const uint8_t *p = in_take(in, 4);

    return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
               (uint32_t)p[2] << 8 | p[3] : 0;
}

static uint64_t in_be64(struct in *in)
{
    uint64_t hi = in_be32(in);

    return hi << 32 | in_be32(in);
}

static bool in_bytes(struct in *in, void *out, size_t n)
{
    const uint8_t *p = in_take(in, n);

    if (p)
        memcpy(out, p, n);
    return p != NULL;
}

/* A counted string; an embedded NUL is refused. */
static bool in_string(struct in *in, char out[256], const char *what)
{
    uint8_t n = in_u8(in);

    out[0] = '\0';
    if (!in_bytes(in, out, n))
        return false;
    out[n] = '\0';
    if (strlen(out) != n) {
        mr_error_set(in->err, -EINVAL, "%s at byte %" PRIu64 " holds a NUL",
                     what, in->pos - n);
        return false;
    }
    return true;
}

static bool ok(const struct xc *x)
{
    return !mr_error_is_set(x->in.err);
}

static int fail(struct xc *x, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct xc *x, int code, const char *fmt, ...)
{
    char msg[MR_ERROR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return mr_error_set(x->in.err, code, "%s", msg);
}

/* ---- header and configuration ---- */

static int read_header(struct xc *x)
{
    uint32_t magic = in_be32(&x->in), version = in_be32(&x->in);

    if (!ok(x))
        return x->in.err->code;
    if (magic != QEMU_VM_FILE_MAGIC)
        return fail(x, -EINVAL, "Not a migration stream: found magic 0x%08x "
                    "on the main socket", magic);
    if (version == QEMU_VM_FILE_VERSION_COMPAT)
        return fail(x, -ENOTSUP, "SaveVM v2 format is obsolete and don't "
                    "work anymore");
    if (version != QEMU_VM_FILE_VERSION)
        return fail(x, -ENOTSUP, "Unsupported migration stream version: %u",
                    version);
    mr_sw_header(x->w);
    return 0;
}

struct config {
    bool page_bits, uuid;
    uint32_t bits;
    uint8_t uuid_bytes[16];
    uint32_t ncaps;
    char caps[MR_STREAM_MAX_CAPS][256];
};

static int read_caps(struct xc *x, struct config *c)
{
    c->ncaps = in_be32(&x->in);
    if (ok(x) && c->ncaps > MR_STREAM_MAX_CAPS)
        return fail(x, -EINVAL, "configuration: %u capabilities (at most 16)",
                    c->ncaps);
    for (uint32_t i = 0; i < c->ncaps && ok(x); i++) {
        in_string(&x->in, c->caps[i], "capability name");
        if (!strcmp(c->caps[i], "mapped-ram"))
            return fail(x, -EINVAL, "Migration requires seekable transport "
                        "(e.g. file): the socket stream has mapped-ram on");
        if (!strcmp(c->caps[i], "x-ignore-shared"))
            x->ignore_shared = true;
        else if (ok(x))
            return fail(x, -EINVAL, "configuration: unknown capability '%s'",
                        c->caps[i]);
    }
    return ok(x) ? 0 : x->in.err->code;
}

static int read_subsection(struct xc *x, struct config *c)
{
    char name[256];

    in_u8(&x->in);
    in_string(&x->in, name, "subsection name");
    if (ok(x) && in_be32(&x->in) != 1 && ok(x))
        return fail(x, -EINVAL, "configuration: subsection '%s' is not "
                    "version 1", name);
    if (!ok(x))
        return x->in.err->code;
    if (!strcmp(name, CONFIG_SUBSECTION_PAGE_BITS)) {
        c->page_bits = true;
        c->bits = in_be32(&x->in);
        if (ok(x) && c->bits != MR_TARGET_PAGE_BITS)
            return fail(x, -EINVAL, "configuration: target page bits %u "
                        "(mapram needs 12)", c->bits);
    } else if (!strcmp(name, CONFIG_SUBSECTION_CAPABILITIES)) {
        return read_caps(x, c);
    } else if (!strcmp(name, CONFIG_SUBSECTION_UUID)) {
        c->uuid = in_bytes(&x->in, c->uuid_bytes, 16);
    } else {
        return fail(x, -EINVAL, "unknown configuration subsection '%s'", name);
    }
    return ok(x) ? 0 : x->in.err->code;
}

/* The file's configuration: the socket's plus the mapped-ram capability. */
static void write_config(struct xc *x, const struct config *c)
{
    const char *caps[2];
    size_t n = 0, len = strlen(x->res->machine);

    mr_sw_put_u8(x->w, QEMU_VM_CONFIGURATION);
    mr_sw_put_be32(x->w, (uint32_t)len);
    mr_sw_put_bytes(x->w, x->res->machine, len);
    if (c->page_bits) {
        mr_sw_put_u8(x->w, QEMU_VM_SUBSECTION);
        mr_sw_put_counted(x->w, CONFIG_SUBSECTION_PAGE_BITS);
        mr_sw_put_be32(x->w, 1);
        mr_sw_put_be32(x->w, c->bits);
    }
    if (x->ignore_shared)
        caps[n++] = "x-ignore-shared";
    caps[n++] = "mapped-ram";
    mr_sw_put_u8(x->w, QEMU_VM_SUBSECTION);
    mr_sw_put_counted(x->w, CONFIG_SUBSECTION_CAPABILITIES);
    mr_sw_put_be32(x->w, 1);
    mr_sw_put_be32(x->w, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        mr_sw_put_counted(x->w, caps[i]);
    if (c->uuid) {
        mr_sw_put_u8(x->w, QEMU_VM_SUBSECTION);
        mr_sw_put_counted(x->w, CONFIG_SUBSECTION_UUID);
        mr_sw_put_be32(x->w, 1);
        mr_sw_put_bytes(x->w, c->uuid_bytes, 16);
    }
}

static int read_config(struct xc *x)
{
    struct config c;
    uint8_t type = in_u8(&x->in);
    uint32_t len;

    memset(&c, 0, sizeof(c));
    if (ok(x) && type != QEMU_VM_CONFIGURATION)
        return fail(x, -EINVAL, "Configuration section missing: found 0x%02x",
                    type);
    len = in_be32(&x->in);
    if (ok(x) && len > 255)
        return fail(x, -EINVAL, "configuration: a machine type of %u bytes",
                    len);
    if (!in_bytes(&x->in, x->res->machine, len))
        return x->in.err->code;
    x->res->machine[len] = '\0';
    if (strlen(x->res->machine) != len || !len)
        return fail(x, -EINVAL, "configuration: a bad machine type name");
    /* Subsections follow until the first command or section. */
    while (in_fill(&x->in, 1) == 0 &&
           x->in.buf[x->in.off] == QEMU_VM_SUBSECTION)
        if (read_subsection(x, &c) < 0)
            return x->in.err->code;
    if (!ok(x))
        return x->in.err->code;
    write_config(x, &c);
    return 0;
}

/* ---- commands ---- */

static int pong(struct xc *x, uint32_t v)
{
    uint8_t msg[8] = { 0, 2, 0, 4, (uint8_t)(v >> 24), (uint8_t)(v >> 16),
                       (uint8_t)(v >> 8), (uint8_t)v };

    return x->in.ops->reply(x->in.ops->opaque, msg, sizeof(msg), x->in.err);
}

static int read_command(struct xc *x)
{
    uint16_t cmd = in_be16(&x->in), len = in_be16(&x->in);
    const char *name = mr_stream_command_name(cmd);
    int want = cmd == MIG_CMD_PING ? 4 : 0;

    if (!ok(x))
        return x->in.err->code;
    if (cmd != MIG_CMD_OPEN_RETURN_PATH && cmd != MIG_CMD_PING &&
        cmd != MIG_CMD_SWITCHOVER_START)
        return name ? fail(x, -ENOTSUP, "command %s is not supported on a "
                           "socket save", name)
                    : fail(x, -EINVAL, "MIG_CMD 0x%x unknown (len 0x%x)", cmd,
                           len);
    if (len != want)
        return fail(x, -EINVAL, "%s received with bad length - expecting %d, "
                    "got %u", name, want, len);
    if (cmd == MIG_CMD_OPEN_RETURN_PATH) {
        x->res->return_path = true;
    } else if (cmd == MIG_CMD_PING) {
        uint32_t v = in_be32(&x->in);

        if (!ok(x))
            return x->in.err->code;
        if (!x->res->return_path)
            return fail(x, -EINVAL, "CMD_PING (0x%x) received with no "
                        "return path", v);
        return pong(x, v);
    } else {
        mr_sw_command(x->w, cmd, NULL, 0);
    }
    return 0;
}

/* ---- the RAM section ---- */

static int find_block(struct xc *x, const char *name)
{
    for (size_t i = 0; i < x->nblocks; i++)
        if (!strcmp(x->blocks[i].name, name))
            return (int)i;
    return -1;
}

static int read_block(struct xc *x, uint64_t *left)
{
    struct peer_block *b;

    if (x->nblocks == PEER_MAX_BLOCKS)
        return fail(x, -EINVAL, "more than %d RAM blocks", PEER_MAX_BLOCKS);
    b = &x->blocks[x->nblocks];
    memset(b, 0, sizeof(*b));
    in_string(&x->in, b->name, "RAM block name");
    b->used_length = in_be64(&x->in);
    if (x->ignore_shared)
        b->gpa = in_be64(&x->in);
    if (!ok(x))
        return x->in.err->code;
    if (!b->name[0])
        return fail(x, -EINVAL, "RAM block with an empty name");
    if (find_block(x, b->name) >= 0)
        return fail(x, -EINVAL, "RAM block '%s' listed twice", b->name);
    if (!b->used_length || b->used_length % PEER_PAGE_SIZE ||
        b->used_length > (1ULL << 46))
        return fail(x, -EINVAL, "RAM block '%s': bad length 0x%" PRIx64,
                    b->name, b->used_length);
    if (b->used_length > *left)
        return fail(x, -EINVAL, "RAM blocks add up to more than the total "
                    "0x%" PRIx64 " announced", *left);
    *left -= b->used_length;
    x->nblocks++;
    return 0;
}

/* MEM_SIZE and the block list; then the blocks are laid out in the file. */
static int ram_setup(struct xc *x)
{
    uint64_t v = in_be64(&x->in), left = v & ~(uint64_t)RAM_FLAGS_MASK;
    struct mr_sw_ram_block sw[PEER_MAX_BLOCKS];

    if (!ok(x))
        return x->in.err->code;
    if ((v & RAM_FLAGS_MASK) != RAM_SAVE_FLAG_MEM_SIZE)
        return fail(x, -EINVAL, "Unknown combination of migration flags: "
                    "0x%x (expected MEM_SIZE)", (unsigned)(v & RAM_FLAGS_MASK));
    if (!left)
        return fail(x, -EINVAL, "the RAM section lists no memory");
    x->blocks = calloc(PEER_MAX_BLOCKS, sizeof(*x->blocks));
    if (!x->blocks)
        return fail(x, -ENOMEM, "out of memory");
    while (left && read_block(x, &left) == 0)
        ;
    if (!ok(x))
        return x->in.err->code;
    for (size_t i = 0; i < x->nblocks; i++)
        sw[i] = (struct mr_sw_ram_block){ .name = x->blocks[i].name,
            .used_length = x->blocks[i].used_length,
            .page_size = PEER_PAGE_SIZE, .gpa = x->blocks[i].gpa };
    mr_sw_ram_setup(x->w, sw, x->nblocks, true, x->ignore_shared);
    if (mr_sw_flush(x->w) < 0)
        return mr_error_propagate(x->in.err, &x->w->err);
    for (size_t i = 0; i < x->nblocks; i++) {
        x->blocks[i].bitmap_offset = sw[i].bitmap_offset;
        x->blocks[i].pages_offset = sw[i].pages_offset;
    }
    return x->in.ops->blocks(x->in.ops->opaque, x->blocks, x->nblocks,
                             x->in.err);
}

static int ram_zero(struct xc *x, uint64_t v)
{
    uint64_t addr = v & ~(uint64_t)RAM_FLAGS_MASK;
    char name[256];
    uint8_t fill;
    int b;

    if (!(v & RAM_SAVE_FLAG_CONTINUE)) {
        if (!in_string(&x->in, name, "RAM block name"))
            return x->in.err->code;
        if ((b = find_block(x, name)) < 0)
            return fail(x, -EINVAL, "Unknown ramblock \"%s\", cannot accept "
                        "migration", name);
        x->last_block = (size_t)b;
        x->have_last = true;
    } else if (!x->have_last) {
        return fail(x, -EINVAL, "Ack, bad migration stream! (a CONTINUE "
                    "record with no block before it)");
    }
    fill = in_u8(&x->in);
    if (!ok(x))
        return x->in.err->code;
    if (fill)
        return fail(x, -EINVAL, "a ZERO record with fill byte 0x%02x cannot "
                    "be kept in a mapped-ram file", fill);
    if (addr >= x->blocks[x->last_block].used_length)
        return fail(x, -EINVAL, "Illegal RAM offset %" PRIx64, addr);
    return x->in.ops->zero(x->in.ops->opaque, x->last_block, addr, x->in.err);
}

static int do_sync(struct xc *x)
{
    x->res->syncs++;
    return x->in.ops->sync(x->in.ops->opaque, x->in.err);
}

/* Records up to the EOS that ends a RAM payload; *flushes counted. */
static int ram_records(struct xc *x, unsigned *flushes)
{
    for (;;) {
        uint64_t v = in_be64(&x->in);
        unsigned flags = (unsigned)(v & RAM_FLAGS_MASK);

        if (!ok(x))
            return x->in.err->code;
        if (flags == RAM_SAVE_FLAG_EOS && !(v & ~(uint64_t)RAM_FLAGS_MASK))
            return 0;
        if (flags == RAM_SAVE_FLAG_MULTIFD_FLUSH &&
            !(v & ~(uint64_t)RAM_FLAGS_MASK)) {
            (*flushes)++;
            if (do_sync(x) < 0)
                return x->in.err->code;
            continue;
        }
        if ((flags & ~RAM_SAVE_FLAG_CONTINUE) == RAM_SAVE_FLAG_ZERO) {
            if (ram_zero(x, v) < 0)
                return x->in.err->code;
            continue;
        }
        return fail(x, -EINVAL, "Unknown combination of migration flags: "
                    "0x%x", flags);
    }
}

static int read_footer(struct xc *x, uint32_t sid, const char *idstr)
{
    uint8_t t = in_u8(&x->in);
    uint32_t id = in_be32(&x->in);

    if (!ok(x))
        return x->in.err->code;
    if (t != QEMU_VM_SECTION_FOOTER)
        return fail(x, -EINVAL, "Missing section footer for %s", idstr);
    if (id != sid)
        return fail(x, -EINVAL, "Mismatched section id in footer for %s - "
                    "read 0x%x expected 0x%x", idstr, id, sid);
    return 0;
}

/* The rest of a ram payload and its footer, written as EOS + footer. */
static int ram_payload(struct xc *x, bool setup)
{
    unsigned flushes = 0;

    if (ram_records(x, &flushes) < 0 ||
        read_footer(x, x->ram_sid, RAM_SECTION_IDSTR) < 0)
        return x->in.err->code;
    if (setup && !flushes)
        x->res->per_section = true;
    if (x->res->per_section && do_sync(x) < 0)
        return x->in.err->code;
    mr_sw_ram_eos(x->w);
    mr_sw_section_footer(x->w, x->ram_sid);
    return 0;
}

static int section_start(struct xc *x)
{
    uint32_t sid = in_be32(&x->in), inst, ver;
    char idstr[256];

    in_string(&x->in, idstr, "section name");
    inst = in_be32(&x->in);
    ver = in_be32(&x->in);
    if (!ok(x))
        return x->in.err->code;
    if (strcmp(idstr, RAM_SECTION_IDSTR))
        return fail(x, -ENOTSUP, "section '%s' (START) is not supported on a "
                    "socket save: only RAM may be iterated", idstr);
    if (x->have_ram)
        return fail(x, -EINVAL, "a second START of section 'ram'");
    if (ver != RAM_SECTION_VERSION || inst != 0)
        return fail(x, -EINVAL, "savevm: unsupported version %u for 'ram' v4",
                    ver);
    x->have_ram = true;
    x->ram_sid = sid;
    mr_sw_section_header(x->w, QEMU_VM_SECTION_START, sid, idstr, inst, ver);
    if (ram_setup(x) < 0)
        return x->in.err->code;
    return ram_payload(x, true);
}

static int section_part(struct xc *x, uint8_t type)
{
    uint32_t sid = in_be32(&x->in);

    if (!ok(x))
        return x->in.err->code;
    if (!x->have_ram || sid != x->ram_sid || x->ram_ended)
        return fail(x, -EINVAL, "Unknown savevm section %u", sid);
    mr_sw_section_short(x->w, type, sid);
    if (type == QEMU_VM_SECTION_END)
        x->ram_ended = true;
    return ram_payload(x, false);
}

/* ---- after the RAM: device state copied to the end ---- */

struct tail {
    uint8_t *buf;
    size_t len, cap, scanned;
    /* candidate ends: where a VMDESCRIPTION that starts at an EOF byte
     * right after a section footer would end */
    size_t *cand;
    size_t *cand_at;
    size_t ncand, capcand;
};

static int tail_add(struct xc *x, struct tail *t, const uint8_t *p, size_t n)
{
    if (t->len + n > PEER_TAIL_MAX_BYTES)
        return fail(x, -EFBIG, "the VM's device state exceeds %u MiB",
                    PEER_TAIL_MAX_BYTES >> 20);
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 1 << 16;
        uint8_t *b;

        while (cap < t->len + n)
            cap *= 2;
        b = realloc(t->buf, cap);
        if (!b)
            return fail(x, -ENOMEM, "out of memory");
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
    mr_sw_put_bytes(x->w, p, n);
    return 0;
}

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Look for new EOF + VMDESCRIPTION starts in the bytes added. */
static int tail_scan(struct xc *x, struct tail *t)
{
    for (size_t i = t->scanned; i + 6 <= t->len; i++, t->scanned = i) {
        size_t end;

        if (t->buf[i] != QEMU_VM_EOF || t->buf[i + 1] != QEMU_VM_VMDESCRIPTION)
            continue;
        if (i && (i < 5 || t->buf[i - 5] != QEMU_VM_SECTION_FOOTER))
            continue;
        end = i + 6 + be32_at(t->buf + i + 2);
        if (t->ncand == t->capcand) {
            size_t cap = t->capcand ? t->capcand * 2 : 16;
            size_t *c = realloc(t->cand, cap * sizeof(*c));
            size_t *a = c ? realloc(t->cand_at, cap * sizeof(*a)) : NULL;

            if (c)
                t->cand = c;
            if (!a)
                return fail(x, -ENOMEM, "out of memory");
            t->cand_at = a;
            t->capcand = cap;
        }
        t->cand[t->ncand] = end;
        t->cand_at[t->ncand++] = i;
    }
    return 0;
}

/* Does the tail end exactly with a VMDESCRIPTION whose JSON parses? */
static bool tail_complete(struct tail *t)
{
    for (size_t k = 0; k < t->ncand; k++) {
        json_t *j;
        bool obj;

        if (t->cand[k] != t->len)
            continue;
        j = json_loadb((const char *)t->buf + t->cand_at[k] + 6,
                       t->len - t->cand_at[k] - 6, 0, NULL);
        obj = json_is_object(j);
        json_decref(j);
        if (obj)
            return true;
    }
    return false;
}

static int copy_tail(struct xc *x)
{
    struct tail t;
    int rc = 0;

    memset(&t, 0, sizeof(t));
    for (;;) {
        size_t have = x->in.len - x->in.off;
        ssize_t got;

        if (have) {
            if (tail_add(x, &t, x->in.buf + x->in.off, have) < 0 ||
                tail_scan(x, &t) < 0)
                break;
            x->in.off += have;
            x->in.pos += have;
            if (tail_complete(&t))
                break;
            continue;
        }
        x->in.off = x->in.len = 0;
        got = x->in.ops->read(x->in.ops->opaque, x->in.buf, sizeof(x->in.buf));
        if (got < 0) {
            fail(x, (int)got, "reading the VM's migration stream: %s",
                 strerror((int)-got));
            break;
        }
        if (got == 0) {
            /* no return path: the source closes after its last byte */
            if (!t.len || t.buf[t.len - 1] != QEMU_VM_EOF)
                fail(x, -EPIPE, "the VM's migration stream ended without "
                     "its EOF record (%zu bytes of device state)", t.len);
            break;
        }
        x->in.len = (size_t)got;
    }
    rc = ok(x) ? 0 : x->in.err->code;
    free(t.buf);
    free(t.cand);
    free(t.cand_at);
    return rc;
}

/* ---- the loop ---- */

static int item(struct xc *x, bool *done)
{
    uint8_t type;

    if (in_fill(&x->in, 1) < 0)
        return x->in.err->code;
    type = x->in.buf[x->in.off];
    if ((type == QEMU_VM_SECTION_FULL || type == QEMU_VM_EOF) &&
        x->ram_ended) {
        *done = true;
        return copy_tail(x);
    }
    in_u8(&x->in);
    switch (type) {
    case QEMU_VM_COMMAND:
        return read_command(x);
    case QEMU_VM_SECTION_START:
        return section_start(x);
    case QEMU_VM_SECTION_PART:
    case QEMU_VM_SECTION_END:
        return section_part(x, type);
    case QEMU_VM_SECTION_FULL:
    case QEMU_VM_EOF:
        return fail(x, -EINVAL, "%s before the end of the RAM section",
                    type ? "device state" : "EOF");
    default:
        return fail(x, -EINVAL, "Unknown savevm section type %u", type);
    }
}

int peer_stream_transcode(const struct peer_stream_ops *ops,
                          struct mr_stream_writer *w,
                          struct peer_block **blocks, size_t *nblocks,
                          struct peer_stream_result *res,
                          struct mr_error *err)
{
    struct xc *x = calloc(1, sizeof(*x));
    bool done = false;
    int rc;

    if (!x)
        return mr_error_set(err, -ENOMEM, "out of memory");
    memset(res, 0, sizeof(*res));
    x->in.ops = ops;
    x->in.err = err;
    x->w = w;
    x->res = res;
    if (read_header(x) == 0 && read_config(x) == 0)
        while (!done && item(x, &done) == 0)
            ;
    if (ok(x) && mr_sw_flush(w) < 0)
        mr_error_propagate(err, &w->err);
    res->main_bytes = x->in.pos;
    rc = ok(x) ? 0 : err->code;
    *blocks = x->blocks;
    *nblocks = x->nblocks;
    free(x);
    return rc;
}
