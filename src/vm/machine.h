/*
 * The machine: guest RAM blocks, the serial port and the boot image.
 *
 * Blocks are ordered as QEMU orders them (largest first): pc.ram (the -m
 * size, from the chosen memory backend), pc.bios (256 KiB) and pc.rom
 * (128 KiB).  pc.ram is guest-physical [0, size); the two small blocks
 * hold a fixed pattern so files have several blocks of different sizes,
 * and are not mapped into the guest.  Accelerator independent.
 */
#ifndef MAPRAM_VM_MACHINE_H
#define MAPRAM_VM_MACHINE_H

#include <stdint.h>

#include "guest_state.h"
#include "mapram/error.h"
#include "mapram/vm.h"
#include "options.h"

#define MACHINE_NR_BLOCKS 3
#define MACHINE_BIOS_BYTES (256u << 10)
#define MACHINE_ROM_BYTES (128u << 10)

struct machine {
    struct mr_ram_block blocks[MACHINE_NR_BLOCKS]; /* [0] is pc.ram */
    uint8_t *ram;            /* = blocks[0].host */
    uint64_t ram_bytes;
    int serial_fd;           /* -1: output discarded */
    struct guest_layout layout;
    struct guest_state boot_state; /* the state at power-on */
    /* Called from the vCPU thread, with the vCPU parked, when the guest
     * cannot go on (a KVM error); the VM enters internal-error. */
    void (*on_vcpu_fatal)(void *opaque, const struct mr_error *err);
    void *fatal_opaque;
};

/* Map the blocks, write the boot image (page tables, GDT, program) and
 * open the serial file. */
int machine_init(struct machine *m, const struct vm_config *cfg,
                 struct mr_error *err);
void machine_destroy(struct machine *m);

/* The expected content of pc.bios / pc.rom at `offset` (tests use it). */
uint8_t machine_fixed_pattern(unsigned block, uint64_t offset);

/* Write the guest's serial output (one byte). */
void machine_serial_out(struct machine *m, uint8_t byte);

#endif
