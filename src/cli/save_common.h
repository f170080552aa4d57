/*
 * What `mapram save` and `mapram restore` share: talking to the VM's
 * monitor (run state, RAM size, migration settings, fdsets), following a
 * migration to its end, the O_DIRECT probe, and Ctrl-C handling.  Every
 * function returns an error value; nothing here exits.
 */
#ifndef MAPRAM_CLI_SAVE_COMMON_H
#define MAPRAM_CLI_SAVE_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "mapram/error.h"
#include "mapram/qmp_client.h"
#include "channels.h"
#include "progress.h"

#define MGMT_QMP_TIMEOUT_MS 10000

/* Set by SIGINT/SIGTERM once mgmt_signals_install() ran. */
extern volatile sig_atomic_t mgmt_signal;

void mgmt_signals_install(void);
double mgmt_now_s(void);

struct mgmt_vm_status {
    char status[32];           /* RunState, e.g. "running", "inmigrate" */
    bool running;
};

/* Connect within `timeout_ms` (the greeting included); a monitor that
 * accepts but never greets gets the busy-monitor diagnosis. */
int mgmt_connect(const char *socket_path, int timeout_ms,
                 struct mr_qmp_client **out, struct mr_error *err);
/* --timeout SECONDS (0 < s <= 3600, fractions allowed).  Prints
 * "mapram CMD: ..." and returns -1 when invalid. */
int mgmt_parse_timeout(const char *cmd, const char *text, int *timeout_ms);
/* Run a command whose reply we do not need. */
int mgmt_exec(struct mr_qmp_client *c, const char *command, json_t *args,
              struct mr_error *err);
int mgmt_query_status(struct mr_qmp_client *c, struct mgmt_vm_status *st,
                      struct mr_error *err);
/* The VM waits for an incoming migration (runstate inmigrate), else
 * QEMU's "'-incoming' was not specified on the command line". */
int mgmt_check_incoming(struct mr_qmp_client *c, struct mr_error *err);
int mgmt_query_ram_size(struct mr_qmp_client *c, uint64_t *ram_bytes,
                        struct mr_error *err);
/* Migration status ("none" if nothing ever ran). */
int mgmt_query_migrate_status(struct mr_qmp_client *c, char *status,
                              size_t status_bytes, struct mr_error *err);
bool mgmt_migration_is_running(const char *status);
/* "QEMU 10.0.2" / "mapram-vm 0.1.0" style text, best effort. */
void mgmt_query_version(struct mr_qmp_client *c, char *buf, size_t buf_bytes);
void mgmt_query_name(struct mr_qmp_client *c, char *buf, size_t buf_bytes);

/* --channels N: 1 to 255 (multifd-channels is a uint8 >= 1).  Prints
 * "mapram CMD: ..." and returns -1 when out of range. */
int mgmt_parse_channels(const char *cmd, const char *text, unsigned *out);

/* --io-engine NAME: auto, psync or io_uring (mapram-vm's x-io-engine).
 * Prints "mapram CMD: ..." and returns -1 for anything else. */
int mgmt_parse_io_engine(const char *cmd, const char *text, const char **out);

/* Capabilities events+multifd+mapped-ram, then multifd-channels,
 * direct-io, max-bandwidth 0, and x-io-engine when `io_engine` is not
 * NULL.  Returns the settings as JSON metadata in *meta (may be NULL). */
int mgmt_configure_migration(struct mr_qmp_client *c, unsigned channels,
                             bool direct_io, const char *io_engine,
                             json_t **meta, struct mr_error *err);

/* add-fd every fd into one fresh fdset; *fdset_id is -1 until created. */
int mgmt_add_fds(struct mr_qmp_client *c, const int *fds, size_t nfds,
                 int64_t *fdset_id, struct mr_error *err);
/* remove-fd the whole set; then wait briefly until the VM dropped it. */
int mgmt_remove_fdset(struct mr_qmp_client *c, int64_t fdset_id,
                      struct mr_error *err);

/*
 * Follow a migration until completed/failed/cancelled, reporting progress.
 * With `cancel_on_signal` a SIGINT/SIGTERM sends migrate_cancel and keeps
 * waiting for the end.  0 only for "completed"; otherwise err says why.
 */
int mgmt_follow_migration(struct mr_qmp_client *c, struct progress *p,
                          const char *op, bool cancel_on_signal,
                          struct mr_error *err);

/* Can `fd` (opened with O_DIRECT) do an aligned write at `offset`?  The
 * probe block is left zeroed; the caller truncates it away. */
bool mgmt_probe_direct_write(int fd, uint64_t offset);
/* Can `fd` (O_DIRECT) read an aligned block at offset 0? */
bool mgmt_probe_direct_read(int fd);

enum progress_mode mgmt_progress_mode(bool json);

#endif
