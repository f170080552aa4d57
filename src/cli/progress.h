/*
 * Progress reporting for save and restore: a redrawn bar on a TTY, plain
 * periodic lines otherwise, one JSON object per line with --json.  The
 * formatting is pure (unit-tested); progress_report() only decides when
 * to print and where.
 */
#ifndef MAPRAM_CLI_PROGRESS_H
#define MAPRAM_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum progress_mode {
    PROGRESS_TTY,
    PROGRESS_PLAIN,
    PROGRESS_JSON,
};

/* One observation of a running migration.  total_bytes 0 = unknown
 * (a destination only reports its status). */
struct progress_sample {
    const char *op;            /* "save" or "restore" */
    const char *status;        /* QEMU's MigrationStatus */
    uint64_t total_bytes;      /* RAM to process */
    uint64_t remaining_bytes;  /* RAM not processed yet */
    uint64_t written_bytes;    /* bytes that went to the file */
    double elapsed_s;
};

struct progress {
    enum progress_mode mode;
    FILE *out;
    double last_print_s;       /* elapsed_s of the last plain/json line */
    double interval_s;         /* minimum gap between plain/json lines */
    bool drew_bar;             /* a bar is on screen without a newline */
};

/* "0 B", "812 B", "4.0 KiB", "1.50 GiB" */
void progress_humanise_bytes(char *buf, size_t buf_bytes, uint64_t bytes);
/* "0:07", "1:02:03"; "?" when unknown (negative). */
void progress_format_eta(char *buf, size_t buf_bytes, double seconds);

/* Percent done in [0, 100], or -1 when the total is unknown. */
int progress_percent(const struct progress_sample *s);
/* Bytes per second written so far (0 before any time passed). */
double progress_rate(const struct progress_sample *s);
/* Seconds left at the average rate so far, or -1 when unknown. */
double progress_eta_s(const struct progress_sample *s);

/* The three renderings, each without a trailing newline. */
void progress_format_bar(char *buf, size_t buf_bytes,
                         const struct progress_sample *s, int bar_width);
void progress_format_plain(char *buf, size_t buf_bytes,
                           const struct progress_sample *s);
/* JSON text (caller frees), or NULL on allocation failure. */
char *progress_format_json(const struct progress_sample *s);

void progress_init(struct progress *p, enum progress_mode mode, FILE *out);
/* Print `s` if it is time to (always when `final`). */
void progress_report(struct progress *p, const struct progress_sample *s,
                     bool final);
/* End a bar line so following messages start on a fresh line. */
void progress_end(struct progress *p);

#endif
