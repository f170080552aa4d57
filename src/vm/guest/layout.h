/*
 * Guest-physical layout of the mapram-vm machine, shared by the host (C)
 * and the guest program (assembly): macros only.
 */
#ifndef MAPRAM_VM_GUEST_LAYOUT_H
#define MAPRAM_VM_GUEST_LAYOUT_H

/*
 *   0x1000  GDT (null, code64, data)
 *   0x2000  PML4          0x3000  PDPT
 *   0x4000  guest program (header + code)
 *   0x5000  pass counter (u64, little endian), written by the guest
 *   0x5008  stop flag (u8), written by the host to park a KVM vCPU
 *   0x10000 page directories, 2 MiB pages, 64 of them = 64 GiB
 *   1 MiB.. the test range (default up to the end of pc.ram)
 */

#define GUEST_GDT_GPA 0x1000
#define GUEST_PML4_GPA 0x2000
#define GUEST_PDPT_GPA 0x3000
#define GUEST_CODE_GPA 0x4000
#define GUEST_COUNTER_GPA 0x5000
#define GUEST_STOP_GPA 0x5008
#define GUEST_PD_GPA 0x10000
#define GUEST_PD_COUNT 64
#define GUEST_BOOT_AREA_BYTES 0x100000 /* all of the above lies below 1 MiB */
#define GUEST_SERIAL_PORT 0x3f8
#define GUEST_PARK_PORT 0xf5
#define GUEST_PAGE_BYTES 4096
#define GUEST_IMAGE_MAGIC 0x4d52474c /* "LGRM" little endian */
/* the program runs at CPL 3 with IOPL 3 (see guest.S) */
#define GUEST_SELECTOR_CODE 0x0b
#define GUEST_SELECTOR_DATA 0x13
#define GUEST_PHASE_CODE_CLEAR 1 /* = enum guest_phase */
#define GUEST_PHASE_CODE_INC 2

#endif
