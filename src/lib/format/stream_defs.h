/*
 * Constants of QEMU's migration stream (docs/stream-format.md), shared by
 * the reader, the writer, inspect and verify.  Names follow QEMU's where it
 * has one.
 */
#ifndef MAPRAM_FORMAT_STREAM_DEFS_H
#define MAPRAM_FORMAT_STREAM_DEFS_H

#include "mapram/format.h"

#define QEMU_VM_FILE_MAGIC        0x5145564dU /* "QEVM" */
#define QEMU_VM_FILE_VERSION_COMPAT 0x00000002U
#define QEMU_VM_FILE_VERSION      0x00000003U

/* Section type bytes (docs/stream-format.md, "Type bytes"). */
#define QEMU_VM_EOF               0x00
#define QEMU_VM_SECTION_START     MR_SECTION_START
#define QEMU_VM_SECTION_PART      MR_SECTION_PART
#define QEMU_VM_SECTION_END       MR_SECTION_END
#define QEMU_VM_SECTION_FULL      MR_SECTION_FULL
#define QEMU_VM_SUBSECTION        0x05
#define QEMU_VM_VMDESCRIPTION     0x06
#define QEMU_VM_CONFIGURATION     0x07
#define QEMU_VM_COMMAND           0x08
#define QEMU_VM_SECTION_FOOTER    0x7e

/* COMMAND record numbers (docs/stream-format.md, "Command records"). */
#define MIG_CMD_INVALID           0
#define MIG_CMD_OPEN_RETURN_PATH  1
#define MIG_CMD_PING              2
#define MIG_CMD_POSTCOPY_ADVISE   3
#define MIG_CMD_POSTCOPY_LISTEN   4
#define MIG_CMD_POSTCOPY_RUN      5
#define MIG_CMD_POSTCOPY_RAM_DISCARD 6
#define MIG_CMD_PACKAGED          7
#define MIG_CMD_ENABLE_COLO       8
#define MIG_CMD_POSTCOPY_RESUME   9
#define MIG_CMD_RECV_BITMAP       10
#define MIG_CMD_SWITCHOVER_START  11
#define MIG_CMD_MAX               12

/* RAM record flags, low bits of each be64 (docs/stream-format.md, "RAM record flags"). */
#define RAM_SAVE_FLAG_FULL        0x001 /* retired */
#define RAM_SAVE_FLAG_ZERO        0x002
#define RAM_SAVE_FLAG_MEM_SIZE    0x004
#define RAM_SAVE_FLAG_PAGE        0x008
#define RAM_SAVE_FLAG_EOS         0x010
#define RAM_SAVE_FLAG_CONTINUE    0x020
#define RAM_SAVE_FLAG_XBZRLE      0x040
#define RAM_SAVE_FLAG_HOOK        0x080
#define RAM_SAVE_FLAG_COMPRESS_PAGE 0x100 /* retired */
#define RAM_SAVE_FLAG_MULTIFD_FLUSH 0x200
/* Flags that must not appear in a mapped-ram stream (docs/stream-format.md, "Loading a mapped-ram stream"). */
#define RAM_SAVE_FLAG_MAPPED_RAM_FORBIDDEN 0x2ca

#define RAM_SECTION_IDSTR         "ram"
#define RAM_SECTION_VERSION       4

/* Mapped-ram per-block header (docs/stream-format.md, "Mapped-ram block header"). */
#define MAPPED_RAM_HDR_VERSION    1
#define MAPPED_RAM_HDR_SIZE       28
#define MAPPED_RAM_FILE_OFFSET_ALIGNMENT 0x100000ULL
/* Pieces the loader hands to channels (docs/multifd.md, "Load"). */
#define MAPPED_RAM_LOAD_BUF_SIZE  0x100000ULL

/* Configuration subsections (docs/stream-format.md, "Configuration section"). */
#define CONFIG_SUBSECTION_PAGE_BITS    "configuration/target-page-bits"
#define CONFIG_SUBSECTION_CAPABILITIES "configuration/capabilities"
#define CONFIG_SUBSECTION_UUID         "configuration/uuid"

/* Target page size on x86_64. */
#define MR_TARGET_PAGE_SIZE       MR_STREAM_PAGE_SIZE
#define MR_TARGET_PAGE_BITS       12

/* multifd batch: MULTIFD_PACKET_SIZE / page size (docs/multifd.md, "Batches"). */
#define MULTIFD_PACKET_SIZE       0x80000ULL

#endif
