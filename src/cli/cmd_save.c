/*
 * `mapram save`: save a VM's memory to a file through its QMP monitor.
 *
 * The tool owns the file: it opens it twice (a plain O_WRONLY descriptor
 * for the main stream, and an independent O_WRONLY|O_DIRECT one for the
 * multifd channels when direct-io is on), writes mapram's header marked
 * PART at offset 0, hands both descriptors to the VM in a fresh fdset and
 * asks it to migrate to file:/dev/fdset/N,offset=<header size>.  Only when
 * the VM reported "completed", the fdset is gone and the data is durable
 * does the header flip to DONE, as the very last write.  A failure undoes
 * only what this run did (roll_back()); path rules in docs/save-restore.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "launch_config.h"
#include "progress.h"
#include "save_common.h"
#include "save_run.h"
#include "mapram/crc32c.h"
#include "mapram/format.h"

/* Room for the ROM blocks, their 1 MiB alignment and the device state
 * beyond guest RAM (a q35 guest has about six more blocks). */
#define SAVE_SLACK_BYTES (16ull << 20)

static void save_usage(FILE *out)
{
    fprintf(out,
            "usage: mapram save --qmp SOCKET FILE [--channels N]\n"
            "                   [--direct-io|--no-direct-io] [--io-engine NAME]\n"
            "                   [--live] [--force] [--timeout SECONDS] [--json]\n"
            "                   [--transport socket|file]\n"
            "Save the VM's memory to FILE (mapped-ram format behind a mapram header).\n"
            "The VM is paused first unless --live, and stays paused after success.\n"
            "--channels defaults to one per online CPU, from %u to %u (here %u).\n"
            "--io-engine (auto, psync, io_uring) sets mapram-vm's x-io-engine.\n"
            "--transport socket (default with QEMU): the VM sends over multifd\n"
            "sockets and mapram writes the file; file (default with mapram-vm):\n"
            "the VM writes the file itself.\n",
            MGMT_MIN_DEFAULT_CHANNELS, MGMT_MAX_DEFAULT_CHANNELS,
            mgmt_default_channels());
}

static int parse_save_args(int argc, char **argv, struct save_opts *o)
{
    static const struct option longopts[] = {
        { "qmp", required_argument, NULL, 'q' },
        { "channels", required_argument, NULL, 'c' },
        { "direct-io", no_argument, NULL, 'D' },
        { "no-direct-io", no_argument, NULL, 'N' },
        { "io-engine", required_argument, NULL, 'e' },
        { "live", no_argument, NULL, 'l' },
        { "force", no_argument, NULL, 'f' },
        { "json", no_argument, NULL, 'j' },
        { "timeout", required_argument, NULL, 't' },
        { "transport", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;

    memset(o, 0, sizeof(*o));
    o->timeout_ms = MGMT_QMP_TIMEOUT_MS;
    o->channels = mgmt_default_channels();
    optind = 1;
    while ((opt = getopt_long(argc, argv, "q:c:fhj", longopts, NULL)) != -1) {
        switch (opt) {
        case 'q': o->socket_path = optarg; break;
        case 'c':
            if (mgmt_parse_channels("save", optarg, &o->channels) < 0)
                return 2;
            break;
        case 'D': o->dio = DIO_ON; break;
        case 'N': o->dio = DIO_OFF; break;
        case 'e':
            if (mgmt_parse_io_engine("save", optarg, &o->io_engine) < 0)
                return 2;
            break;
        case 'l': o->live = true; break;
        case 'f': o->force = true; break;
        case 'j': o->json = true; break;
        case 't':
            if (mgmt_parse_timeout("save", optarg, &o->timeout_ms) < 0)
                return 2;
            break;
        case 'T':
            if (!strcmp(optarg, "socket")) {
                o->transport = SAVE_TRANSPORT_SOCKET;
            } else if (!strcmp(optarg, "file")) {
                o->transport = SAVE_TRANSPORT_FILE;
            } else {
                fprintf(stderr, "mapram save: --transport expects socket or "
                        "file, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': save_usage(stdout); return 0;
        default: save_usage(stderr); return 2;
        }
    }
    if (!o->socket_path || optind != argc - 1) {
        save_usage(stderr);
        return 2;
    }
    o->path = argv[optind];
    return -1;
}

static int refuse_existing(struct save_run *r, struct mr_error *err)
{
    return mr_error_set(err, -EEXIST, "'%s' exists; use --force to overwrite it",
                        r->o.path);
}

/* What --force may replace: a regular file, not what a symlink points
 * to, nor a device, FIFO or directory. */
static int check_replaceable(struct save_run *r, struct mr_error *err)
{
    struct stat st;

    if (lstat(r->o.path, &st) < 0)
        return errno == ENOENT ? 0 :
               mr_error_set(err, -errno, "cannot access '%s': %s",
                            r->o.path, strerror(errno));
    if (!r->o.force)
        return refuse_existing(r, err);
    if (!S_ISREG(st.st_mode))
        return mr_error_set(err, -EINVAL,
                            "'%s' is not a regular file (it is %s)",
                            r->o.path, cli_file_kind(st.st_mode));
    return 1;
}

/* An early answer before the VM is contacted; open_file() decides. */
static int check_target(struct save_run *r, struct mr_error *err)
{
    return check_replaceable(r, err) < 0 ? err->code : 0;
}

static int check_space(struct save_run *r, struct mr_error *err)
{
    char *copy = strdup(r->o.path);
    struct statvfs vfs;
    uint64_t avail, need;
    int rc;

    if (!copy)
        return mr_error_set(err, -ENOMEM, "out of memory");
    rc = statvfs(dirname(copy), &vfs);
    if (rc < 0) {
        rc = mr_error_set(err, -errno, "cannot check free space for '%s': %s",
                          r->o.path, strerror(errno));
        free(copy);
        return rc;
    }
    free(copy);
    if (vfs.f_blocks == 0)
        return 0; /* no space accounting (ramfs): nothing to check */
    avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    need = MR_FILE_HEADER_SIZE_DEFAULT + r->hdr.ram_size + SAVE_SLACK_BYTES;
    if (avail < need)
        return mr_error_set(err, -ENOSPC,
                            "not enough free space for '%s': need %" PRIu64
                            " MiB (VM RAM %" PRIu64 " MiB + overhead), %" PRIu64
                            " MiB available", r->o.path, (need + (1 << 20) - 1) >> 20,
                            r->hdr.ram_size >> 20, avail >> 20);
    return 0;
}

/* Ask the VM everything the header and the checks need. */
static int inspect_vm(struct save_run *r, struct mr_error *err)
{
    char mig[32];

    if (mgmt_query_status(r->qmp, &r->before, err) < 0)
        return err->code;
    if (mgmt_query_migrate_status(r->qmp, mig, sizeof(mig), err) < 0)
        return err->code;
    if (mgmt_migration_is_running(mig))
        return mr_error_set(err, -EBUSY,
                            "There's a migration process in progress");
    if (!strcmp(r->before.status, "inmigrate"))
        return mr_error_set(err, -EINVAL,
                            "Guest is waiting for an incoming migration");
    if (!strcmp(r->before.status, "postmigrate"))
        return mr_error_set(err, -EINVAL,
                            "Can't migrate the vm that was paused due to previous migration");
    if (mgmt_query_ram_size(r->qmp, &r->hdr.ram_size, err) < 0)
        return err->code;
    mgmt_query_version(r->qmp, r->hdr.vm_version, sizeof(r->hdr.vm_version));
    mgmt_query_name(r->qmp, r->hdr.vm_name, sizeof(r->hdr.vm_name));
    return launch_config_collect(r->qmp, r->hdr.vm_version, r->hdr.ram_size,
                                 true, &r->launch, err);
}

static int open_direct(struct save_run *r, struct mr_error *err)
{
    struct mr_error ignore = MR_ERROR_INIT;

    r->fd_direct = cli_reopen(r->fd_main, r->work_path, O_WRONLY | O_DIRECT,
                              &ignore);
    if (r->fd_direct == -ESTALE)
        return mr_error_set(err, -ESTALE, "'%s': %s", r->work_path, ignore.msg);
    if (r->fd_direct >= 0 &&
        mgmt_probe_direct_write(r->fd_direct, 1 << 20) &&
        ftruncate(r->fd_main, 0) == 0) {
        r->direct_io = true;
        return 0;
    }
    if (r->fd_direct >= 0)
        close(r->fd_direct);
    r->fd_direct = -1;
    if (r->o.dio == DIO_ON)
        return mr_error_set(err, -EINVAL,
                            "Could not open '%s': filesystem does not support O_DIRECT",
                            r->o.path);
    fprintf(stderr, "mapram save: note: the filesystem of '%s' does not "
            "support O_DIRECT; saving without direct-io\n", r->o.path);
    return 0;
}

static int create_exclusive(struct save_run *r)
{
    r->fd_main = open(r->work_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                      O_CLOEXEC, 0600);
    if (r->fd_main >= 0) {
        r->created = true;
        return 0;
    }
    return -errno;
}

/*
 * Create the file we write, exclusively: the name is claimed here, before
 * the VM is paused, so of two saves to one FILE exactly one goes on.  An
 * existing FILE (--force only) is replaced at the very end, by renaming a
 * sibling over it, so a failed save never destroys the previous one.
 */
static int create_work_file(struct save_run *r, struct mr_error *err)
{
    int rc = -EEXIST, replace = 0, n;

    snprintf(r->work_path, sizeof(r->work_path), "%s", r->o.path);
    /* FILE there: refuse, or (--force) write a sibling; FILE gone again
     * in between: try to claim it once more */
    for (int tries = 0; tries < 3 && rc == -EEXIST && !replace; tries++) {
        rc = create_exclusive(r);
        if (rc == -EEXIST && (replace = check_replaceable(r, err)) < 0)
            return err->code;
    }
    if (rc != -EEXIST)
        return rc < 0 ? mr_error_set(err, rc, "Could not create '%s': %s",
                                     r->o.path, strerror(-rc)) : 0;
    if (!replace)
        return refuse_existing(r, err);
    n = snprintf(r->work_path, sizeof(r->work_path), "%s.mapram-partial.%d",
                 r->o.path, (int)getpid());
    if (n < 0 || n >= (int)sizeof(r->work_path))
        return mr_error_set(err, -ENAMETOOLONG, "'%s': path too long",
                            r->o.path);
    rc = create_exclusive(r);
    return rc < 0 ? mr_error_set(err, rc, "Could not create '%s': %s",
                                 r->work_path, strerror(-rc)) : 0;
}

static int open_file(struct save_run *r, struct mr_error *err)
{
    struct mr_error local = MR_ERROR_INIT;

    if (create_work_file(r, err) < 0)
        return err->code;
    if (r->o.dio != DIO_OFF && open_direct(r, err) < 0)
        return err->code;
    if (r->fd_direct < 0) {
        /* QEMU asks for two independent opens whenever multifd is on. */
        r->fd_direct = cli_reopen(r->fd_main, r->work_path, O_WRONLY, &local);
        if (r->fd_direct < 0)
            return mr_error_set(err, local.code, "Could not open '%s': %s",
                                r->work_path, local.msg);
    }
    return 0;
}

/* Put the finished file in place and make the rename durable.  Only
 * --force gets here with a sibling: replacing FILE is what it asked for. */
int save_publish(struct save_run *r, struct mr_error *err)
{
    char *copy;
    int dfd;

    if (!strcmp(r->work_path, r->o.path))
        return 0;
    if (rename(r->work_path, r->o.path) < 0)
        return mr_error_set(err, -errno, "cannot rename '%s' to '%s': %s",
                            r->work_path, r->o.path, strerror(errno));
    r->created = false;
    copy = strdup(r->o.path);
    if (!copy)
        return 0;
    dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* The reserved area: sector, JSON metadata, launch metadata (its CRC in
 * the sector); header_size grows in 4 KiB steps when they need it. */
int save_write_header(struct save_run *r, struct mr_error *err)
{
    char *meta = r->meta ? json_dumps(r->meta, JSON_COMPACT) : NULL;
    size_t meta_len = meta ? strlen(meta) : 0, launch_len = 0, need;
    uint8_t *launch = NULL, *buf;
    ssize_t n, want;

    if (r->launch.count &&
        launch_config_encode(&r->launch, &launch, &launch_len, err) < 0) {
        free(meta);
        return err->code;
    }
    need = MR_FILE_HEADER_SECTOR + meta_len + launch_len;
    if (r->hdr.state == MR_FILE_STATE_PART)
        r->hdr.header_size = r->hdr.stream_offset =
            (need + MR_FILE_HEADER_SIZE_DEFAULT - 1) /
            MR_FILE_HEADER_SIZE_DEFAULT * MR_FILE_HEADER_SIZE_DEFAULT;
    buf = calloc(1, r->hdr.header_size);
    if (!buf) {
        free(meta);
        free(launch);
        return mr_error_set(err, -ENOMEM, "out of memory");
    }
    r->hdr.meta_len = (uint32_t)meta_len;
    r->hdr.launch_len = (uint32_t)launch_len;
    r->hdr.launch_crc = launch_len ? mr_crc32c(0, launch, launch_len) : 0;
    mr_file_header_encode(&r->hdr, buf);
    if (meta_len)
        memcpy(buf + MR_FILE_HEADER_SECTOR, meta, meta_len);
    if (launch_len)
        memcpy(buf + MR_FILE_HEADER_SECTOR + meta_len, launch, launch_len);
    free(meta);
    free(launch);
    /* a PART header rewrites the whole reserved area, a DONE header only
     * the first sector (docs/file-header.md) */
    want = r->hdr.state == MR_FILE_STATE_DONE ?
           (ssize_t)MR_FILE_HEADER_SECTOR : (ssize_t)r->hdr.header_size;
    n = pwrite(r->fd_main, buf, (size_t)want, 0);
    free(buf);
    if (n < 0)
        return mr_error_set(err, -errno, "cannot write the header of '%s': %s",
                            r->o.path, strerror(errno));
    if (n != want)
        return mr_error_set(err, -ENOSPC, "short write of the header of '%s'",
                            r->o.path);
    return 0;
}

void save_fill_header(struct save_run *r)
{
    r->hdr.version = MR_FILE_HEADER_VERSION;
    r->hdr.state = MR_FILE_STATE_PART;
    r->hdr.header_size = MR_FILE_HEADER_SIZE_DEFAULT;
    r->hdr.stream_offset = MR_FILE_HEADER_SIZE_DEFAULT;
    r->hdr.created = (uint64_t)time(NULL);
    r->hdr.channels = r->o.channels;
    r->hdr.flags = MR_FILE_FLAG_MULTIFD | MR_FILE_FLAG_MAPPED_RAM |
                   (r->before.running ? MR_FILE_FLAG_WAS_RUNNING : 0) |
                   (r->o.live ? MR_FILE_FLAG_LIVE : 0) |
                   (r->direct_io ? MR_FILE_FLAG_DIRECT_IO : 0);
    snprintf(r->hdr.tool_version, sizeof(r->hdr.tool_version), "mapram %s",
             MAPRAM_VERSION);
}

/* Look again right before `stop`: another client may have started a
 * migration or paused the VM since inspect_vm(); only a VM we pause
 * ourselves is ours to resume. */
int save_pause_vm(struct save_run *r, struct mr_error *err)
{
    struct mgmt_vm_status now;
    char mig[32];

    if (mgmt_query_migrate_status(r->qmp, mig, sizeof(mig), err) < 0 ||
        mgmt_query_status(r->qmp, &now, err) < 0)
        return err->code;
    if (mgmt_migration_is_running(mig))
        return mr_error_set(err, -EBUSY,
                            "There's a migration process in progress");
    if (!now.running)
        return 0;
    if (mgmt_exec(r->qmp, "stop", NULL, err) < 0)
        return mr_error_prefix(err, "cannot pause the VM: ");
    r->stopped_by_us = true;
    return 0;
}

static int start_migration(struct save_run *r, struct mr_error *err)
{
    int fds[2] = { r->fd_main, r->fd_direct };
    char uri[64];

    if (mgmt_configure_migration(r->qmp, r->o.channels, r->direct_io,
                                 r->o.io_engine,
                                 &r->meta, err) < 0)
        return err->code;
    save_fill_header(r);
    if (save_write_header(r, err) < 0)
        return err->code;
    if (!r->o.live && save_pause_vm(r, err) < 0)
        return err->code;
    if (mgmt_add_fds(r->qmp, fds, 2, &r->fdset_id, err) < 0)
        return err->code;
    snprintf(uri, sizeof(uri), "file:/dev/fdset/%" PRId64 ",offset=%" PRIu64,
             r->fdset_id, r->hdr.stream_offset);
    if (mgmt_exec(r->qmp, "migrate", json_pack("{s:s}", "uri", uri), err) < 0)
        return err->code;
    r->migration_started = true;
    return 0;
}

/* After "completed": drop the fdset, make the data durable, flip to DONE. */
static int finish_file(struct save_run *r, struct mr_error *err)
{
    struct stat st;

    if (mgmt_remove_fdset(r->qmp, r->fdset_id, err) < 0)
        return err->code;
    r->fdset_id = -1;
    if (fdatasync(r->fd_main) < 0 || fstat(r->fd_main, &st) < 0)
        return mr_error_set(err, -errno, "cannot sync '%s': %s", r->o.path,
                            strerror(errno));
    if ((uint64_t)st.st_size <= r->hdr.stream_offset)
        return mr_error_set(err, -EIO, "the VM wrote no stream to '%s'",
                            r->o.path);
    r->hdr.stream_size = (uint64_t)st.st_size - r->hdr.stream_offset;
    r->hdr.state = MR_FILE_STATE_DONE;
    if (save_write_header(r, err) < 0)
        return err->code;
    if (fdatasync(r->fd_main) < 0)
        return mr_error_set(err, -errno, "cannot sync '%s': %s", r->o.path,
                            strerror(errno));
    return save_publish(r, err);
}

/* Undo what this failed save changed on the VM, and nothing else: cancel
 * only the migration it started, resume only a VM it paused (by `stop`,
 * or by its migration's switchover with --live); keep the first error. */
static void roll_back(struct save_run *r)
{
    struct mr_error ignore = MR_ERROR_INIT;
    struct mgmt_vm_status now;
    bool paused_by_us = r->stopped_by_us ||
                        (r->migration_started && r->before.running);
    char mig[32];

    if (!r->qmp)
        return;
    if (r->migration_started &&
        mgmt_query_migrate_status(r->qmp, mig, sizeof(mig), &ignore) == 0 &&
        mgmt_migration_is_running(mig)) {
        mgmt_exec(r->qmp, "migrate_cancel", NULL, &ignore);
        for (int i = 0; i < 500; i++) {
            if (mgmt_query_migrate_status(r->qmp, mig, sizeof(mig), &ignore) < 0 ||
                !mgmt_migration_is_running(mig))
                break;
            usleep(20000);
        }
    }
    mgmt_remove_fdset(r->qmp, r->fdset_id, &ignore);
    if (paused_by_us &&
        mgmt_query_status(r->qmp, &now, &ignore) == 0 && !now.running)
        mgmt_exec(r->qmp, "cont", NULL, &ignore);
}

static void report_done(struct save_run *r)
{
    char size[32];

    progress_humanise_bytes(size, sizeof(size), r->hdr.stream_size);
    if (r->o.json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:b,s:i,s:s}", "event", "done",
                              "op", "save", "file", r->o.path,
                              "stream_offset", (json_int_t)r->hdr.stream_offset,
                              "stream_size", (json_int_t)r->hdr.stream_size,
                              "direct_io", r->direct_io,
                              "channels", (int)r->o.channels,
                              "vm_state", "paused");
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(o);
        return;
    }
    printf("saved %s of VM state to %s (stream at offset %" PRIu64 ", %u channels%s); "
           "the VM is paused\n", size, r->o.path, r->hdr.stream_offset,
           r->o.channels, r->direct_io ? ", direct-io" : "");
}

static int run_save(struct save_run *r, struct mr_error *err)
{
    struct progress prog;

    if (check_target(r, err) < 0 ||
        mgmt_connect(r->o.socket_path, r->o.timeout_ms, &r->qmp, err) < 0 ||
        inspect_vm(r, err) < 0 || check_space(r, err) < 0 ||
        open_file(r, err) < 0)
        return err->code;
    if (r->o.transport == SAVE_TRANSPORT_AUTO)
        r->o.transport = save_socket_usable(r) ? SAVE_TRANSPORT_SOCKET
                                               : SAVE_TRANSPORT_FILE;
    if (r->o.transport == SAVE_TRANSPORT_SOCKET)
        return save_socket_run(r, err);
    if (start_migration(r, err) < 0)
        return err->code;
    progress_init(&prog, mgmt_progress_mode(r->o.json),
                  r->o.json ? stdout : stderr);
    if (mgmt_follow_migration(r->qmp, &prog, "save", true, err) < 0)
        return err->code;
    return finish_file(r, err);
}

static void print_error(const struct save_opts *o, const struct mr_error *err)
{
    if (o->json) {
        json_t *e = json_pack("{s:s,s:s,s:s}", "event", "error", "op", "save",
                              "message", err->msg);
        char *text = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);

        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(e);
    }
    fprintf(stderr, "mapram save: %s\n", err->msg);
}

int cmd_save(int argc, char **argv)
{
    struct save_run r = { .fd_main = -1, .fd_direct = -1, .fdset_id = -1 };
    struct mr_error err = MR_ERROR_INIT;
    int rc = parse_save_args(argc, argv, &r.o);

    if (rc >= 0)
        return rc;
    mgmt_signals_install();
    rc = run_save(&r, &err);
    if (rc < 0)
        roll_back(&r);
    else
        report_done(&r);
    /* a file put at our name since we created it is not ours to remove */
    if (rc < 0 && r.created)
        cli_unlink_if_ours(AT_FDCWD, r.work_path, r.fd_main);
    if (r.fd_direct >= 0)
        close(r.fd_direct);
    if (r.fd_main >= 0)
        close(r.fd_main);
    if (r.qmp)
        mr_qmp_client_close(r.qmp);
    json_decref(r.meta);
    mr_launch_meta_free(&r.launch);
    if (rc < 0) {
        print_error(&r.o, &err);
        return 1;
    }
    return 0;
}
