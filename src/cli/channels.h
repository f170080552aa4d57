/*
 * The default multifd channel count of `mapram save` / `mapram restore`:
 * one channel per online CPU, between MGMT_MIN_DEFAULT_CHANNELS and
 * MGMT_MAX_DEFAULT_CHANNELS.  Kept apart from the monitor code so the rule
 * is unit-tested alone; docs/save-restore.md gives the measurements.
 */
#ifndef MAPRAM_CLI_CHANNELS_H
#define MAPRAM_CLI_CHANNELS_H

/* Used when the CPU count is unknown (sysconf failed). */
#define MGMT_FALLBACK_CHANNELS 4
/* Two channels let one wait on the disk while the other checksums. */
#define MGMT_MIN_DEFAULT_CHANNELS 2
/* Past a few channels the device, not the CPUs, is the limit. */
#define MGMT_MAX_DEFAULT_CHANNELS 8

/* Pure rule: channels for `online_cpus` (<= 0 means unknown). */
unsigned mgmt_channels_for_cpus(long online_cpus);

/* The rule applied to sysconf(_SC_NPROCESSORS_ONLN). */
unsigned mgmt_default_channels(void);

#endif
