/*
 * The guest's architectural progress in accelerator-neutral form.
 *
 * The guest program (guest/guest.S) is fully described, at each of its
 * three safe points, by: the phase (which safe point), the next page
 * address, the number of completed passes and the test range.  Both
 * accelerators park the vCPU only at a safe point, so this struct is the
 * whole device state: the KVM vCPU maps its registers to and from it, the
 * thread vCPU runs on it directly.  It is saved as the device section
 * "guest-loop" (big endian, like QEMU's vmstate) with a VMDESC entry.
 *
 * Pure: no KVM, no threads.
 */
#ifndef MAPRAM_VM_GUEST_STATE_H
#define MAPRAM_VM_GUEST_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mapram/error.h"

enum guest_phase {
    GUEST_PHASE_BOOT = 0,   /* about to print 'A' */
    GUEST_PHASE_CLEAR = 1,  /* next: clear the page at next_addr */
    GUEST_PHASE_INC = 2,    /* next: increment the page at next_addr */
};

struct guest_state {
    uint32_t phase;
    uint64_t next_addr;     /* guest physical, page aligned */
    uint64_t passes;        /* completed increment passes */
    uint64_t range_start;   /* test range [start, end) */
    uint64_t range_end;
};

/* Offsets of the safe points in the guest image (from its header). */
struct guest_layout {
    uint64_t code_gpa;
    uint32_t off_entry, off_clear, off_inc;
};

/* The registers the guest program uses. */
struct guest_regs {
    uint64_t rip, rsi, rdi, rbx, rdx, r8;
};

#define GUEST_STATE_IDSTR "guest-loop"
#define GUEST_STATE_VERSION 1
#define GUEST_STATE_BYTES 36

/* Read the safe-point offsets from an image's header. */
int guest_layout_from_image(const uint8_t *image, size_t size,
                            uint64_t code_gpa, struct guest_layout *out,
                            struct mr_error *err);

/* The initial state for a test range: boot, no passes. */
void guest_state_reset(struct guest_state *st, uint64_t start, uint64_t end);

/* Is `rip` one of the safe points? */
bool guest_rip_is_safe(const struct guest_layout *layout, uint64_t rip);
int guest_state_from_regs(const struct guest_layout *layout,
                          const struct guest_regs *regs,
                          struct guest_state *out, struct mr_error *err);
void guest_state_to_regs(const struct guest_layout *layout,
                         const struct guest_state *st, struct guest_regs *out);

/* Check a state against a RAM size (after a load, before running it). */
int guest_state_validate(const struct guest_state *st, uint64_t ram_bytes,
                         struct mr_error *err);

void guest_state_encode(const struct guest_state *st,
                        uint8_t out[GUEST_STATE_BYTES]);
int guest_state_decode(const uint8_t *data, size_t size,
                       struct guest_state *out, struct mr_error *err);
/* This device's VMDESC entry (new reference). */
json_t *guest_state_vmdesc(void);

#endif
