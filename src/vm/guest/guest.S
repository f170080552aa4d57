/*
 * The guest program: QEMU's migration test workload ("A-B" boot block,
 * docs/test-guest.md, "QEMU's A-B guest") in 64-bit long mode.  The host enters at
 * guest_entry with the test range in r8 (start) and rdi (end, exclusive),
 * rbx = 0 and rdx = the serial port.
 *
 * All of the program's progress lives in registers, and it has exactly
 * three "safe points" (the labels in the header) where rip + rsi + rbx +
 * r8 + rdi describe it completely; the host parks the vCPU only there,
 * which makes the state accelerator-neutral (guest_state.c).  To park,
 * the host sets the stop flag; the loops check it at their safe point and
 * report with an OUT to the park port (the phase in al); the host then
 * puts rip back on the safe point.  Interrupting KVM_RUN at an arbitrary
 * instruction would need single-stepping, which not every KVM offers.
 *
 * It runs at CPL 3 with IOPL 3: on KVM implementations that emulate
 * supervisor code (e.g. PVM) user code runs natively.
 *
 * Only the first byte of each 4 KiB page in the range is touched.
 */
#include "layout.h"

    .code64
    .text
    .globl guest_header
guest_header:
    .long GUEST_IMAGE_MAGIC
    .long guest_entry - guest_header
    .long guest_clear_top - guest_header
    .long guest_inc_top - guest_header

guest_entry:                        /* safe point: phase "boot" */
    mov $'A', %al
    out %al, %dx
    mov %r8, %rsi
guest_clear_top:                    /* safe point: phase "clear" */
    cmpb $0, GUEST_STOP_GPA
    jne park_clear
    movb $0, (%rsi)
    add $GUEST_PAGE_BYTES, %rsi
    cmp %rdi, %rsi
    jb guest_clear_top
    mov %r8, %rsi
guest_inc_top:                      /* safe point: phase "increment" */
    cmpb $0, GUEST_STOP_GPA
    jne park_inc
    incb (%rsi)
    add $GUEST_PAGE_BYTES, %rsi
    cmp %rdi, %rsi
    jb guest_inc_top
    /* end of a pass: count it, publish the count, 'B' every 64 passes */
    inc %rbx
    mov %rbx, GUEST_COUNTER_GPA
    mov %r8, %rsi
    test $63, %bl
    jnz guest_inc_top
    mov $'B', %al
    out %al, %dx
    jmp guest_inc_top

park_clear:
    mov $GUEST_PHASE_CODE_CLEAR, %al
    out %al, $GUEST_PARK_PORT
    jmp guest_clear_top
park_inc:
    mov $GUEST_PHASE_CODE_INC, %al
    out %al, $GUEST_PARK_PORT
    jmp guest_inc_top
