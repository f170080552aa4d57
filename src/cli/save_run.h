/*
 * The state of one `mapram save` (cmd_save.c), shared with the socket
 * path (save_socket.c): options, the VM's state before, the file.
 */
#ifndef MAPRAM_CLI_SAVE_RUN_H
#define MAPRAM_CLI_SAVE_RUN_H

#include <limits.h>
#include <stdbool.h>

#include "save_common.h"
#include "mapram/format.h"

/* --transport; AUTO: socket against QEMU, file against mapram-vm */
enum save_transport { SAVE_TRANSPORT_AUTO, SAVE_TRANSPORT_SOCKET,
                      SAVE_TRANSPORT_FILE };

enum dio_choice { DIO_AUTO, DIO_ON, DIO_OFF };

struct save_opts {
    const char *socket_path;
    const char *path;
    unsigned channels;
    enum dio_choice dio;
    const char *io_engine;     /* NULL: the VM's own setting */
    bool live;
    bool force;
    bool json;
    int timeout_ms;            /* --timeout: the monitor's greeting */
    enum save_transport transport;
};

struct save_run {
    struct save_opts o;
    struct mr_qmp_client *qmp;
    struct mgmt_vm_status before;
    struct mr_file_header hdr;
    json_t *meta;
    struct mr_launch_meta launch;  /* launch_config.c */
    int fd_main;
    int fd_direct;             /* O_DIRECT, or a second plain open */
    char work_path[PATH_MAX];  /* the file written: FILE, or a temp name
                                  beside it renamed over FILE at the end */
    bool created;              /* work_path is ours: remove it on failure */
    bool direct_io;            /* effective */
    bool stopped_by_us;        /* our `stop` paused a running VM */
    bool migration_started;    /* our `migrate` was accepted */
    int64_t fdset_id;
};


/* cmd_save.c */
int save_write_header(struct save_run *r, struct mr_error *err);
void save_fill_header(struct save_run *r);
int save_pause_vm(struct save_run *r, struct mr_error *err);
int save_publish(struct save_run *r, struct mr_error *err);

/* save_socket.c: QEMU migrates over multifd sockets to the tool, which
 * writes the file (docs/peer-save.md); replaces start, follow, finish. */
int save_socket_run(struct save_run *r, struct mr_error *err);
/* The default: sockets for a QEMU that tells its UUID (query-uuid, which
 * every handshake carries); the file path for mapram-vm and others. */
bool save_socket_usable(struct save_run *r);

#endif
