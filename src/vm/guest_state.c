/*
 * Accelerator-neutral guest state: register mapping, validation and the
 * "guest-loop" section encoding (see guest_state.h).
 */
#include <errno.h>
#include <string.h>

#include "guest/layout.h"
#include "guest_state.h"

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

int guest_layout_from_image(const uint8_t *image, size_t size,
                            uint64_t code_gpa, struct guest_layout *out,
                            struct mr_error *err)
{
    if (size < 16 || get_le32(image) != GUEST_IMAGE_MAGIC)
        return mr_error_set(err, -EINVAL, "guest image: bad header");
    out->code_gpa = code_gpa;
    out->off_entry = get_le32(image + 4);
    out->off_clear = get_le32(image + 8);
    out->off_inc = get_le32(image + 12);
    if (out->off_entry >= size || out->off_clear >= size ||
        out->off_inc >= size)
        return mr_error_set(err, -EINVAL, "guest image: safe point outside "
                            "the image");
    return 0;
}

void guest_state_reset(struct guest_state *st, uint64_t start, uint64_t end)
{
    memset(st, 0, sizeof(*st));
    st->phase = GUEST_PHASE_BOOT;
    st->next_addr = start;
    st->range_start = start;
    st->range_end = end;
}

bool guest_rip_is_safe(const struct guest_layout *layout, uint64_t rip)
{
    return rip == layout->code_gpa + layout->off_entry ||
           rip == layout->code_gpa + layout->off_clear ||
           rip == layout->code_gpa + layout->off_inc;
}

int guest_state_from_regs(const struct guest_layout *layout,
                          const struct guest_regs *regs,
                          struct guest_state *out, struct mr_error *err)
{
    uint64_t off = regs->rip - layout->code_gpa;

    if (!guest_rip_is_safe(layout, regs->rip))
        return mr_error_set(err, -EINVAL, "vCPU stopped outside a safe "
                            "point (rip 0x%llx)",
                            (unsigned long long)regs->rip);
    out->range_start = regs->r8;
    out->range_end = regs->rdi;
    out->passes = regs->rbx;
    if (off == layout->off_entry) {
        /* rsi is not yet loaded at entry: the next page is the start */
        out->phase = GUEST_PHASE_BOOT;
        out->next_addr = regs->r8;
    } else {
        out->phase = off == layout->off_clear ? GUEST_PHASE_CLEAR
                                              : GUEST_PHASE_INC;
        out->next_addr = regs->rsi;
    }
    return 0;
}

void guest_state_to_regs(const struct guest_layout *layout,
                         const struct guest_state *st, struct guest_regs *out)
{
    uint32_t off = st->phase == GUEST_PHASE_BOOT    ? layout->off_entry
                   : st->phase == GUEST_PHASE_CLEAR ? layout->off_clear
                                                    : layout->off_inc;

    out->rip = layout->code_gpa + off;
    out->rsi = st->next_addr;
    out->rdi = st->range_end;
    out->r8 = st->range_start;
    out->rbx = st->passes;
    out->rdx = GUEST_SERIAL_PORT;
}

int guest_state_validate(const struct guest_state *st, uint64_t ram_bytes,
                         struct mr_error *err)
{
    if (st->phase > GUEST_PHASE_INC)
        return mr_error_set(err, -EINVAL, "guest-loop: invalid phase %u",
                            st->phase);
    if (st->range_start % GUEST_PAGE_BYTES || st->range_end % GUEST_PAGE_BYTES ||
        st->next_addr % GUEST_PAGE_BYTES)
        return mr_error_set(err, -EINVAL, "guest-loop: addresses must be "
                            "page aligned");
    if (st->range_start < (1u << 20) || st->range_end <= st->range_start ||
        st->range_end > ram_bytes)
        return mr_error_set(err, -EINVAL, "guest-loop: test range "
                            "[0x%llx, 0x%llx) does not fit RAM of 0x%llx bytes",
                            (unsigned long long)st->range_start,
                            (unsigned long long)st->range_end,
                            (unsigned long long)ram_bytes);
    /* at a safe point the next page is inside the range, never at its end */
    if (st->next_addr < st->range_start || st->next_addr >= st->range_end)
        return mr_error_set(err, -EINVAL, "guest-loop: next address 0x%llx "
                            "outside the test range",
                            (unsigned long long)st->next_addr);
    return 0;
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;

    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* The field list drives the encoding, the decoding and VMDESC alike. */
struct field {
    const char *name;
    const char *type;
    int bytes;
    size_t offset;
};

#define F(name, type, bytes) \
    { #name, type, bytes, offsetof(struct guest_state, name) }
static const struct field fields[] = {
    F(phase, "uint32", 4),
    F(next_addr, "uint64", 8),
    F(passes, "uint64", 8),
    F(range_start, "uint64", 8),
    F(range_end, "uint64", 8),
};
#undef F
#define NR_FIELDS (sizeof(fields) / sizeof(fields[0]))

void guest_state_encode(const struct guest_state *st,
                        uint8_t out[GUEST_STATE_BYTES])
{
    const char *base = (const char *)st;

    for (size_t i = 0, pos = 0; i < NR_FIELDS; pos += fields[i].bytes, i++) {
        uint64_t v = fields[i].bytes == 4
                         ? *(const uint32_t *)(base + fields[i].offset)
                         : *(const uint64_t *)(base + fields[i].offset);
        put_be(out + pos, v, fields[i].bytes);
    }
}

int guest_state_decode(const uint8_t *data, size_t size,
                       struct guest_state *out, struct mr_error *err)
{
    char *base = (char *)out;

    if (size != GUEST_STATE_BYTES)
        return mr_error_set(err, -EINVAL, "guest-loop: expected %d bytes of "
                            "state, found %zu", GUEST_STATE_BYTES, size);
    for (size_t i = 0, pos = 0; i < NR_FIELDS; pos += fields[i].bytes, i++) {
        uint64_t v = get_be(data + pos, fields[i].bytes);

        if (fields[i].bytes == 4)
            *(uint32_t *)(base + fields[i].offset) = (uint32_t)v;
        else
            *(uint64_t *)(base + fields[i].offset) = v;
    }
    return 0;
}

json_t *guest_state_vmdesc(void)
{
    json_t *list = json_array();

    for (size_t i = 0; i < NR_FIELDS; i++)
        json_array_append_new(list, json_pack("{s:s, s:s, s:i}",
                                              "name", fields[i].name,
                                              "type", fields[i].type,
                                              "size", fields[i].bytes));
    return json_pack("{s:s, s:i, s:s, s:i, s:o}", "name", GUEST_STATE_IDSTR,
                     "instance_id", 0, "vmsd_name", GUEST_STATE_IDSTR,
                     "version", GUEST_STATE_VERSION, "fields", list);
}
