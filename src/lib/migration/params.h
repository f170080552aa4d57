/*
 * Migration capabilities and parameters: names, QEMU 10.0 defaults, and the
 * validation rules of docs/qmp.md, "Capabilities" and "Parameters", all pure so they are unit-tested
 * alone.  The rules sit in two functions, like QEMU's migrate_caps_check
 * and migrate_params_check: callers build "current overlaid with the
 * request", check it, and apply only on success.
 */
#ifndef MAPRAM_MIGRATION_PARAMS_H
#define MAPRAM_MIGRATION_PARAMS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mapram/error.h"

/* QEMU's MigrationCapability, enum order. */
enum mr_mig_cap {
    MR_CAP_XBZRLE,
    MR_CAP_RDMA_PIN_ALL,
    MR_CAP_AUTO_CONVERGE,
    MR_CAP_ZERO_BLOCKS,
    MR_CAP_EVENTS,
    MR_CAP_POSTCOPY_RAM,
    MR_CAP_X_COLO,
    MR_CAP_RELEASE_RAM,
    MR_CAP_RETURN_PATH,
    MR_CAP_PAUSE_BEFORE_SWITCHOVER,
    MR_CAP_MULTIFD,
    MR_CAP_DIRTY_BITMAPS,
    MR_CAP_POSTCOPY_BLOCKTIME,
    MR_CAP_LATE_BLOCK_ACTIVATE,
    MR_CAP_X_IGNORE_SHARED,
    MR_CAP_VALIDATE_UUID,
    MR_CAP_BACKGROUND_SNAPSHOT,
    MR_CAP_ZERO_COPY_SEND,
    MR_CAP_POSTCOPY_PREEMPT,
    MR_CAP_SWITCHOVER_ACK,
    MR_CAP_DIRTY_LIMIT,
    MR_CAP_MAPPED_RAM,
    MR_CAP__MAX
};

struct mr_caps {
    bool on[MR_CAP__MAX];
};

const char *mr_cap_name(enum mr_mig_cap cap);
/* -1 for an unknown name. */
int mr_cap_from_name(const char *name);

enum mr_compression { MR_COMP_NONE, MR_COMP_ZLIB, MR_COMP_ZSTD, MR_COMP__MAX };
enum mr_mig_mode { MR_MODE_NORMAL, MR_MODE_CPR_REBOOT, MR_MODE_CPR_TRANSFER,
                   MR_MODE__MAX };
enum mr_zpd { MR_ZPD_NONE, MR_ZPD_LEGACY, MR_ZPD_MULTIFD, MR_ZPD__MAX };
/* x-io-engine, mapram's own parameter (QEMU has none): how the page
 * channels move data.  "auto" lets the pool pick per descriptor. */
enum mr_io_engine_param { MR_IOENG_AUTO, MR_IOENG_PSYNC, MR_IOENG_URING,
                          MR_IOENG__MAX };

#define MR_PARAM_STR_MAX 256

struct mr_params {
    uint64_t announce_initial, announce_max, announce_rounds, announce_step;
    uint8_t throttle_trigger_threshold, cpu_throttle_initial;
    uint8_t cpu_throttle_increment;
    bool cpu_throttle_tailslow;
    char tls_creds[MR_PARAM_STR_MAX], tls_hostname[MR_PARAM_STR_MAX];
    char tls_authz[MR_PARAM_STR_MAX];
    uint64_t max_bandwidth, avail_switchover_bandwidth, downtime_limit;
    uint32_t x_checkpoint_delay;
    uint8_t multifd_channels;
    uint64_t xbzrle_cache_size, max_postcopy_bandwidth;
    uint8_t max_cpu_throttle;
    int multifd_compression; /* enum mr_compression */
    uint8_t multifd_zlib_level, multifd_qatzip_level, multifd_zstd_level;
    json_t *block_bitmap_mapping; /* NULL until set (owned) */
    uint64_t x_vcpu_dirty_limit_period, vcpu_dirty_limit;
    int mode;                /* enum mr_mig_mode */
    int zero_page_detection; /* enum mr_zpd */
    bool direct_io;
    int io_engine;           /* enum mr_io_engine_param */
    /* mapram's lazy load (docs/lazy-load.md): the demand-fault granule in
     * bytes, and the background fill's cap in MB/s (0: none). */
    uint64_t x_lazy_granule, x_lazy_fill_cap;
    bool x_lazy_working_set;     /* read and write FILE.wset */
};

#define MR_LAZY_GRANULE_MIN (64ULL << 10)
#define MR_LAZY_GRANULE_MAX (2ULL << 20)
/* Defaults, from the measurements in docs/lazy-load.md. */
#define MR_LAZY_GRANULE_DEFAULT (1ULL << 20)
#define MR_LAZY_FILL_CAP_DEFAULT 0

void mr_params_init(struct mr_params *p);
/* Deep copy (block_bitmap_mapping is reference-counted) / release. */
void mr_params_copy(struct mr_params *dst, const struct mr_params *src);
void mr_params_release(struct mr_params *p);

/* migrate_caps_check: `old` = applied capabilities, `new_caps` = merged
 * request.  `running` = an outgoing migration is in progress; `incoming` =
 * the VM waits in inmigrate. */
int mr_caps_check(const struct mr_caps *old, const struct mr_caps *new_caps,
                  const struct mr_params *params, bool running, bool incoming,
                  struct mr_error *err);

/* migrate_params_check on merged values `new_p`; check 19 deliberately
 * looks at the applied `old` values, as QEMU 10.0 does. */
int mr_params_check(const struct mr_params *old, const struct mr_params *new_p,
                    const struct mr_caps *caps, struct mr_error *err);

/* Overlay the members of a migrate-set-parameters object on `p`.  JSON
 * types are assumed checked by the QMP layer, except for enum values,
 * nested shapes and what QMP cannot express. */
int mr_params_apply_json(struct mr_params *p, json_t *members,
                         struct mr_error *err);
json_t *mr_params_to_json(const struct mr_params *p);
/* The QMP argument types of migrate-set-parameters (name -> type), for the
 * server's table; see migration.c. */

/* HMP migrate_set_parameter: parse `value` for parameter `name` into a
 * JSON member value.  Errors use QEMU's HMP messages. */
json_t *mr_params_hmp_value(const char *name, const char *value,
                            struct mr_error *err);
/* HMP `info migrate_parameters`, exact QEMU format. */
void mr_params_print(const struct mr_params *p, FILE *out);

/* Direct I/O is used only with direct-io, mapped-ram and multifd all on. */
bool mr_direct_io_effective(const struct mr_caps *caps,
                            const struct mr_params *p);

/* Size parsing with qemu_strtosz() rules: decimal with an optional
 * B/K/M/G/T/P/E suffix (powers of 1024, fractions allowed with a suffix),
 * or hex without suffix.  `default_unit` multiplies suffix-less values.
 * Returns 0, -EINVAL or -ERANGE. */
int mr_parse_size(const char *text, uint64_t default_unit, uint64_t *out);

const char *mr_compression_name(int c);
const char *mr_mode_name(int m);
const char *mr_zpd_name(int z);
/* The I/O engine name the multifd pool takes ("auto", "psync", ...). */
const char *mr_io_engine_param_name(int e);

#endif
