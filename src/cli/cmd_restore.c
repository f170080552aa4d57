/*
 * `mapram restore`: load a save file into a VM waiting with
 * `-incoming defer`, through its QMP monitor.
 *
 * Everything that can be checked before the guest is touched is checked
 * first: the header (complete, version, CRC, the file holds the whole
 * stream) and the VM's RAM size against the one recorded.  Then the file
 * is opened read-only twice (the second with O_DIRECT for --direct-io),
 * both descriptors go into a fresh fdset, and the VM loads from
 * file:/dev/fdset/N,offset=<stream_offset>.  The guest runs afterwards
 * unless --paused; the fdset is removed in every case.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "restore_image.h"
#include "restore_socket.h"
#include "save_common.h"
#include "mapram/format.h"
#include "launch_config.h"
#include "spawn_vm.h"

struct restore_opts {
    const char *socket_path;
    const char *path;
    unsigned channels;         /* 0 = as recorded in the header */
    bool direct_io;
    const char *io_engine;     /* NULL: the VM's own setting */
    bool paused;
    bool running;              /* libvirt/QEMU files: over was_running */
    int64_t offset;            /* bare QEMU saves: -1 = detect */
    bool spawn;
    bool json;
    bool force_config;         /* skip launch_config_check() */
    int timeout_ms;            /* --timeout: the monitor's greeting */
    bool lazy;                 /* postcopy-ram: run first, memory follows */
    enum { TRANSPORT_AUTO, TRANSPORT_SOCKET, TRANSPORT_FILE } transport;
    uint64_t granule;          /* --granule: x-lazy-granule, 0 = the VM's */
    bool no_working_set;       /* --no-working-set: x-lazy-working-set off */
};

struct restore_run {
    struct restore_opts o;
    struct mr_qmp_client *qmp;
    struct mr_file_header hdr;
    struct spawned_vm vm;
    struct mr_launch_meta launch;  /* as saved (launch_config.c) */
    int fd_main;
    int fd_second;
    int64_t fdset_id;
    struct restore_socket sk;      /* sk.peer: the file can go over sockets */
    bool used_socket;
};

static void restore_usage(FILE *out)
{
    fprintf(out,
            "usage: mapram restore (--qmp SOCKET | --spawn) FILE [--channels N]\n"
            "                      [--direct-io] [--io-engine NAME] [--paused | --running]\n"
            "                      [--offset N] [--timeout SECONDS] [--force-config]\n"
            "                      [--lazy [--granule SIZE] [--no-working-set]]\n"
            "                      [--transport socket|file] [--json]\n"
            "Load FILE (a mapram save, a libvirt image or a bare QEMU save) into a VM\n"
            "started with -incoming defer; --spawn starts the saved QEMU command line\n"
            "again, else a mapram-vm of the right size.  A mapram save's RAM size and\n"
            "launch configuration (target, machine type, devices) must match unless\n"
            "--force-config.  --offset N: the QEMU stream starts at byte N.\n"
            "--channels defaults to the count the file was saved with, else one per\n"
            "online CPU, from %u to %u (here %u).\n"
            "--io-engine (auto, psync, io_uring) sets mapram-vm's x-io-engine.\n"
            "--lazy resumes the guest at once and pages its memory in behind it\n"
            "(postcopy-ram with mapped-ram; needs userfaultfd); --granule (64K to 2M,\n"
            "a power of two) sets what one fault reads, --no-working-set neither uses\n"
            "nor records FILE.wset, the order of the last lazy restore's faults.\n"
            "--transport socket: mapram reads the file (O_DIRECT), verifies every\n"
            "extent and sends it to QEMU over multifd UNIX sockets; file: the VM\n"
            "reads the file itself.  Default: socket for a QEMU and a mapped-ram\n"
            "file, else file.\n",
            MGMT_MIN_DEFAULT_CHANNELS, MGMT_MAX_DEFAULT_CHANNELS,
            mgmt_default_channels());
}

static int parse_restore_args(int argc, char **argv, struct restore_opts *o)
{
    static const struct option longopts[] = {
        { "qmp", required_argument, NULL, 'q' },
        { "channels", required_argument, NULL, 'c' },
        { "direct-io", no_argument, NULL, 'D' },
        { "io-engine", required_argument, NULL, 'e' },
        { "paused", no_argument, NULL, 'p' },
        { "running", no_argument, NULL, 'r' },
        { "offset", required_argument, NULL, 'o' },
        { "spawn", no_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "timeout", required_argument, NULL, 't' },
        { "force-config", no_argument, NULL, 'F' },
        { "lazy", no_argument, NULL, 'L' },
        { "transport", required_argument, NULL, 'T' },
        { "granule", required_argument, NULL, 'G' },
        { "no-working-set", no_argument, NULL, 'W' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;

    memset(o, 0, sizeof(*o));
    o->offset = -1;
    o->timeout_ms = MGMT_QMP_TIMEOUT_MS;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "q:c:hj", longopts, NULL)) != -1) {
        switch (opt) {
        case 'q': o->socket_path = optarg; break;
        case 'c':
            if (mgmt_parse_channels("restore", optarg, &o->channels) < 0)
                return 2;
            break;
        case 'D': o->direct_io = true; break;
        case 'e':
            if (mgmt_parse_io_engine("restore", optarg, &o->io_engine) < 0)
                return 2;
            break;
        case 'p': o->paused = true; break;
        case 'r': o->running = true; break;
        case 'o': {
            uint64_t v;

            if (!cli_parse_u64(optarg, &v) || v > INT64_MAX) {
                fprintf(stderr, "mapram restore: bad --offset '%s'\n", optarg);
                return 2;
            }
            o->offset = (int64_t)v;
            break;
        }
        case 'F': o->force_config = true; break;
        case 'L': o->lazy = true; break;
        case 'G':
            if (!cli_parse_u64(optarg, &o->granule) || o->granule == 0) {
                fprintf(stderr, "mapram restore: bad --granule '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'W': o->no_working_set = true; break;
        case 's': o->spawn = true; break;
        case 'T':
            if (!strcmp(optarg, "socket")) {
                o->transport = TRANSPORT_SOCKET;
            } else if (!strcmp(optarg, "file")) {
                o->transport = TRANSPORT_FILE;
            } else {
                fprintf(stderr, "mapram restore: --transport must be socket "
                        "or file, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'j': o->json = true; break;
        case 't':
            if (mgmt_parse_timeout("restore", optarg, &o->timeout_ms) < 0)
                return 2;
            break;
        case 'h': restore_usage(stdout); return 0;
        default: restore_usage(stderr); return 2;
        }
    }
    if (!o->socket_path == !o->spawn || optind != argc - 1 ||
        (o->paused && o->running) ||
        (o->lazy && o->transport == TRANSPORT_SOCKET) ||
        ((o->granule || o->no_working_set) && !o->lazy)) {
        restore_usage(stderr);
        return 2;
    }
    o->path = argv[optind];
    return -1;
}

/* Open and validate the file; nothing touches the VM before this passed. */
static int read_header(struct restore_run *r, struct mr_error *err)
{
    uint8_t sector[MR_FILE_HEADER_SECTOR];
    struct stat st;
    ssize_t n;

    r->fd_main = cli_open_regular(r->o.path, O_RDONLY, err);
    if (r->fd_main < 0)
        return mr_error_prefix(err, "Could not open '%s': ", r->o.path);
    if (fstat(r->fd_main, &st) < 0)
        return mr_error_set(err, -errno, "cannot stat '%s': %s", r->o.path,
                            strerror(errno));
    n = pread(r->fd_main, sector, sizeof(sector), 0);
    if (n < 0)
        return mr_error_set(err, -errno, "cannot read '%s': %s", r->o.path,
                            strerror(errno));
    if (n < (ssize_t)sizeof(sector))
        return mr_error_set(err, -EINVAL,
                            "not a mapram save file (only %zd bytes)", n);
    if (!mr_file_header_probe(sector, sizeof(sector)))
        return mr_error_set(err, -EINVAL,
                            "%s: not a mapram save file (no MAPRAMSV header)",
                            r->o.path);
    if (mr_file_header_decode(sector, &r->hdr, err) < 0)
        return mr_error_prefix(err, "%s: ", r->o.path);
    if (!mr_file_header_is_complete(&r->hdr))
        return mr_error_set(err, -EINVAL,
                            "%s: incomplete save file: the save did not finish",
                            r->o.path);
    if (mr_file_header_check_size(&r->hdr, (uint64_t)st.st_size, err) < 0)
        return mr_error_prefix(err, "%s: ", r->o.path);
    if (r->hdr.stream_size == 0)
        return mr_error_set(err, -EINVAL, "%s: the header records an empty stream",
                            r->o.path);
    if (!(r->hdr.flags & MR_FILE_FLAG_MAPPED_RAM))
        return mr_error_set(err, -EINVAL,
                            "%s: the stream is not in mapped-ram format",
                            r->o.path);
    return 0;
}

static int check_vm(struct restore_run *r, struct mr_error *err)
{
    struct mgmt_vm_status st;
    uint64_t ram;

    if (mgmt_query_status(r->qmp, &st, err) < 0)
        return err->code;
    if (strcmp(st.status, "inmigrate"))
        return mr_error_set(err, -EINVAL,
                            "'-incoming' was not specified on the command line");
    if (mgmt_query_ram_size(r->qmp, &ram, err) < 0)
        return err->code;
    if (ram != r->hdr.ram_size)
        return mr_error_set(err, -EINVAL,
                            "RAM size mismatch: the file holds %" PRIu64
                            " MiB of RAM, the VM has %" PRIu64 " MiB",
                            r->hdr.ram_size >> 20, ram >> 20);
    return 0;
}

/* The second descriptor is of the file already checked, never of
 * whatever the name points to by now (cli_reopen). */
static int open_second(struct restore_run *r, struct mr_error *err)
{
    int flags = O_RDONLY | (r->o.direct_io ? O_DIRECT : 0);

    r->fd_second = cli_reopen(r->fd_main, r->o.path, flags, err);
    if (r->fd_second >= 0 &&
        (!r->o.direct_io || mgmt_probe_direct_read(r->fd_second)))
        return 0;
    if (r->o.direct_io && (r->fd_second >= 0 || err->code == -EINVAL)) {
        mr_error_clear(err);
        return mr_error_set(err, -EINVAL,
                            "Could not open '%s': filesystem does not support O_DIRECT",
                            r->o.path);
    }
    return mr_error_prefix(err, "Could not open '%s': ", r->o.path);
}

static int start_incoming(struct restore_run *r, struct mr_error *err)
{
    int fds[2] = { r->fd_main, r->fd_second };
    unsigned channels = r->o.channels ? r->o.channels :
                        r->hdr.channels ? r->hdr.channels : mgmt_default_channels();
    char uri[64];
    json_t *args;

    if (mgmt_configure_migration(r->qmp, channels, r->o.direct_io,
                                 r->o.io_engine, NULL,
                                 err) < 0)
        return err->code;
    if (r->o.lazy &&
        mgmt_exec(r->qmp, "migrate-set-capabilities",
                  json_pack("{s:[{s:s,s:b}]}", "capabilities", "capability",
                            "postcopy-ram", "state", 1), err) < 0)
        return err->code;
    if (r->o.granule &&
        mgmt_exec(r->qmp, "migrate-set-parameters",
                  json_pack("{s:I}", "x-lazy-granule",
                            (json_int_t)r->o.granule), err) < 0)
        return err->code;
    if (r->o.no_working_set &&
        mgmt_exec(r->qmp, "migrate-set-parameters",
                  json_pack("{s:b}", "x-lazy-working-set", 0), err) < 0)
        return err->code;
    /* in "inmigrate", stop only clears autostart: the guest stays paused */
    if (r->o.paused && mgmt_exec(r->qmp, "stop", NULL, err) < 0)
        return err->code;
    if (mgmt_add_fds(r->qmp, fds, 2, &r->fdset_id, err) < 0)
        return err->code;
    snprintf(uri, sizeof(uri), "file:/dev/fdset/%" PRId64 ",offset=%" PRIu64,
             r->fdset_id, r->hdr.stream_offset);
    /* keep the VM alive on a bad stream so the error can be read back */
    args = json_pack("{s:s,s:b}", "uri", uri, "exit-on-error", 0);
    if (mgmt_exec(r->qmp, "migrate-incoming", args, err) == 0)
        return 0;
    if (!strstr(err->msg, "exit-on-error"))
        return err->code;
    mr_error_clear(err);
    return mgmt_exec(r->qmp, "migrate-incoming",
                     json_pack("{s:s}", "uri", uri), err);
}

static int finish_restore(struct restore_run *r, struct mr_error *err)
{
    struct mgmt_vm_status st;

    if (mgmt_remove_fdset(r->qmp, r->fdset_id, err) < 0)
        return err->code;
    r->fdset_id = -1;
    if (mgmt_query_status(r->qmp, &st, err) < 0)
        return err->code;
    if (!r->o.paused && !st.running)
        return mgmt_exec(r->qmp, "cont", NULL, err);
    return 0;
}

/* Not mapram's own file: restore_image.c. */
static int run_restore_image(struct restore_run *r, struct mr_error *err)
{
    struct restore_image_opts io = {
        .socket_path = r->o.socket_path, .path = r->o.path,
        .offset = r->o.offset, .paused = r->o.paused,
        .running = r->o.running, .json = r->o.json,
        .timeout_ms = r->o.timeout_ms,
    };
    bool running = false;
    int rc;

    if (r->o.channels || r->o.direct_io || r->o.io_engine || r->o.lazy)
        return mr_error_set(err, -EINVAL, "%s: --channels, --direct-io, "
                            "--io-engine and --lazy apply to mapram save "
                            "files only", r->o.path);
    rc = restore_image(&io, &running, err);
    r->o.paused = !running;
    return rc;
}

/* Open and check the file for the socket path unless --transport file
 * or --lazy.  With the default, a file that cannot go over sockets
 * (legacy, compressed) or is broken takes the file path, which names the
 * problem in its own words; a checksum mismatch is never loaded. */
static int prepare_socket(struct restore_run *r, struct mr_error *err)
{
    if (r->o.transport == TRANSPORT_FILE || r->o.lazy)
        return 0;
    if (restore_socket_prepare(&r->sk, r->o.path, r->o.offset, err) == 0)
        return 0;
    restore_socket_done(&r->sk);
    if (r->o.transport == TRANSPORT_SOCKET || err->code == -EBADMSG)
        return err->code;
    mr_error_clear(err);
    return 0;
}

/* Sockets only to a QEMU unless asked for (mapram-vm loads files). */
static bool use_socket(struct restore_run *r)
{
    return r->sk.peer && (r->o.transport == TRANSPORT_SOCKET ||
                          restore_socket_is_qemu(r->qmp));
}

static int run_socket(struct restore_run *r, unsigned channels,
                      struct mr_error *err)
{
    struct restore_socket_opts so = {
        .path = r->o.path, .channels = channels, .paused = r->o.paused,
        .running = r->o.running, .json = r->o.json,
    };
    bool running = false;
    int rc = restore_socket_run(&r->sk, r->qmp, &so, &running, err);

    r->used_socket = true;
    r->o.paused = !running;
    return rc;
}

/* A libvirt image or bare save: over sockets, or restore_image.c. */
static int run_image(struct restore_run *r, struct mr_error *err)
{
    if (r->sk.peer) {
        if (mgmt_connect(r->o.socket_path, r->o.timeout_ms, &r->qmp, err) < 0)
            return err->code;
        if (use_socket(r))
            return run_socket(r, r->o.channels, err);
        mr_qmp_client_close(r->qmp);
        r->qmp = NULL;
    }
    return run_restore_image(r, err);
}

static int run_restore(struct restore_run *r, struct mr_error *err)
{
    struct progress prog;
    const char *sock = r->o.socket_path;

    if (prepare_socket(r, err) < 0)
        return err->code;
    if (!r->o.spawn && restore_image_wanted(r->o.path, r->o.offset))
        return run_image(r, err);
    if (read_header(r, err) < 0 || open_second(r, err) < 0 ||
        launch_config_read(r->fd_main, &r->hdr, &r->launch, err) < 0)
        return err->code;
    if (r->o.spawn) {
        if ((launch_config_can_spawn(&r->launch) ?
             launch_config_spawn(&r->vm, &r->launch, err) :
             spawn_vm_start(&r->vm, r->hdr.ram_size, err)) < 0)
            return err->code;
        sock = r->vm.socket_path;
    }
    if (mgmt_connect(sock, r->o.timeout_ms, &r->qmp, err) < 0 ||
        check_vm(r, err) < 0 ||
        (!r->o.force_config &&
         launch_config_check(r->qmp, &r->launch, err) < 0))
        return err->code;
    if (use_socket(r))
        return run_socket(r, r->o.channels ? r->o.channels : r->hdr.channels,
                          err);
    if (start_incoming(r, err) < 0)
        return err->code;
    progress_init(&prog, mgmt_progress_mode(r->o.json),
                  r->o.json ? stdout : stderr);
    if (mgmt_follow_migration(r->qmp, &prog, "restore", false, err) < 0)
        return err->code;
    return finish_restore(r, err);
}

static void report(const struct restore_run *r, const struct mr_error *err)
{
    const char *state = r->o.paused ? "paused" : "running";

    if (r->o.json) {
        json_t *o = err ?
            json_pack("{s:s,s:s,s:s}", "event", "error", "op", "restore",
                      "message", err->msg) :
            json_pack("{s:s,s:s,s:s,s:s,s:s,s:s*}", "event", "done", "op",
                      "restore", "file", r->o.path, "vm_state", state,
                      "transport", r->used_socket ? "socket" : "file", "qmp",
                      r->o.spawn ? r->vm.socket_path : NULL);
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(o);
    }
    if (err) {
        fprintf(stderr, "mapram restore: %s\n", err->msg);
        return;
    }
    if (!r->o.json)
        printf("restored %s; the VM is %s\n", r->o.path, state);
    if (r->o.spawn)
        printf("%s (pid %d) is reachable at %s\n", r->vm.name,
               (int)r->vm.pid, r->vm.socket_path);
}

int cmd_restore(int argc, char **argv)
{
    struct restore_run r = { .fd_main = -1, .fd_second = -1, .fdset_id = -1,
                             .sk = { .fd = -1, .fd_direct = -1 } };
    struct mr_error err = MR_ERROR_INIT;
    struct mr_error ignore = MR_ERROR_INIT;
    int rc = parse_restore_args(argc, argv, &r.o);

    if (rc >= 0)
        return rc;
    spawn_vm_init(&r.vm);
    mgmt_signals_install();
    rc = run_restore(&r, &err);
    if (rc < 0 && r.qmp)
        mgmt_remove_fdset(r.qmp, r.fdset_id, &ignore);
    if (r.fd_second >= 0)
        close(r.fd_second);
    if (r.fd_main >= 0)
        close(r.fd_main);
    if (r.qmp)
        mr_qmp_client_close(r.qmp);
    restore_socket_done(&r.sk);
    if (rc < 0)
        spawn_vm_kill(&r.vm);
    report(&r, rc < 0 ? &err : NULL);
    mr_launch_meta_free(&r.launch);
    return rc < 0 ? 1 : 0;
}
