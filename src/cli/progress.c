/*
 * Progress rendering (see progress.h).  Rates are averages over the whole
 * run: QEMU's own counters are cumulative, and an average is steady enough
 * for an ETA without keeping history.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"

void progress_humanise_bytes(char *buf, size_t buf_bytes, uint64_t bytes)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
    double v = (double)bytes;
    int u = -1;

    if (bytes < 1024) {
        snprintf(buf, buf_bytes, "%" PRIu64 " B", bytes);
        return;
    }
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, buf_bytes, v < 10.0 ? "%.2f %s" : "%.1f %s", v, units[u]);
}

void progress_format_eta(char *buf, size_t buf_bytes, double seconds)
{
    uint64_t s;

    if (seconds < 0 || !isfinite(seconds)) {
        snprintf(buf, buf_bytes, "?");
        return;
    }
    s = (uint64_t)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, buf_bytes, "%" PRIu64 ":%02u:%02u", s / 3600,
                 (unsigned)(s / 60 % 60), (unsigned)(s % 60));
    else
        snprintf(buf, buf_bytes, "%u:%02u", (unsigned)(s / 60),
                 (unsigned)(s % 60));
}

int progress_percent(const struct progress_sample *s)
{
    uint64_t done;

    if (!s->total_bytes)
        return -1;
    if (!strcmp(s->status, "completed"))
        return 100;
    done = s->remaining_bytes >= s->total_bytes ?
           0 : s->total_bytes - s->remaining_bytes;
    return (int)(done * 100 / s->total_bytes);
}

double progress_rate(const struct progress_sample *s)
{
    if (s->elapsed_s <= 0)
        return 0;
    return (double)s->written_bytes / s->elapsed_s;
}

double progress_eta_s(const struct progress_sample *s)
{
    uint64_t done;

    if (!s->total_bytes || s->elapsed_s <= 0)
        return -1;
    if (s->remaining_bytes == 0)
        return 0;
    done = s->remaining_bytes >= s->total_bytes ?
           0 : s->total_bytes - s->remaining_bytes;
    if (!done)
        return -1;
    return (double)s->remaining_bytes * s->elapsed_s / (double)done;
}

void progress_format_bar(char *buf, size_t buf_bytes,
                         const struct progress_sample *s, int bar_width)
{
    char bar[128], written[32], rate[32], eta[16];
    int pct = progress_percent(s);
    int fill;

    if (bar_width < 1)
        bar_width = 1;
    if (bar_width > (int)sizeof(bar) - 1)
        bar_width = (int)sizeof(bar) - 1;
    fill = pct < 0 ? 0 : pct * bar_width / 100;
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(bar_width - fill));
    bar[bar_width] = '\0';
    progress_humanise_bytes(written, sizeof(written), s->written_bytes);
    progress_humanise_bytes(rate, sizeof(rate), (uint64_t)progress_rate(s));
    progress_format_eta(eta, sizeof(eta), progress_eta_s(s));
    if (pct < 0)
        snprintf(buf, buf_bytes, "%s: %s, %.1f s", s->op, s->status,
                 s->elapsed_s);
    else
        snprintf(buf, buf_bytes, "%s [%s] %3d%% %s %s/s ETA %s", s->op, bar,
                 pct, written, rate, eta);
}

void progress_format_plain(char *buf, size_t buf_bytes,
                           const struct progress_sample *s)
{
    char written[32], total[32], rate[32], eta[16];
    int pct = progress_percent(s);

    if (pct < 0) {
        snprintf(buf, buf_bytes, "%s: %s after %.1f s", s->op, s->status,
                 s->elapsed_s);
        return;
    }
    progress_humanise_bytes(written, sizeof(written), s->written_bytes);
    progress_humanise_bytes(total, sizeof(total), s->total_bytes);
    progress_humanise_bytes(rate, sizeof(rate), (uint64_t)progress_rate(s));
    progress_format_eta(eta, sizeof(eta), progress_eta_s(s));
    snprintf(buf, buf_bytes,
             "%s: %s %d%% of %s RAM, %s written, %s/s, ETA %s", s->op,
             s->status, pct, total, written, rate, eta);
}

char *progress_format_json(const struct progress_sample *s)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:f, s:I, s:I, s:I, s:f, s:i}",
                          "event", "progress", "op", s->op,
                          "status", s->status, "elapsed_s", s->elapsed_s,
                          "total_bytes", (json_int_t)s->total_bytes,
                          "remaining_bytes", (json_int_t)s->remaining_bytes,
                          "written_bytes", (json_int_t)s->written_bytes,
                          "rate_bps", progress_rate(s),
                          "percent", progress_percent(s));
    char *text;

    if (!o)
        return NULL;
    if (progress_eta_s(s) >= 0)
        json_object_set_new(o, "eta_s", json_real(progress_eta_s(s)));
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

void progress_init(struct progress *p, enum progress_mode mode, FILE *out)
{
    memset(p, 0, sizeof(*p));
    p->mode = mode;
    p->out = out;
    p->last_print_s = -1e9;
    p->interval_s = 1.0;
}

void progress_report(struct progress *p, const struct progress_sample *s,
                     bool final)
{
    char line[256];
    char *json;

    if (p->mode == PROGRESS_TTY) {
        progress_format_bar(line, sizeof(line), s, 30);
        fprintf(p->out, "\r\033[K%s", line);
        p->drew_bar = true;
        if (final)
            progress_end(p);
        fflush(p->out);
        return;
    }
    if (!final && s->elapsed_s - p->last_print_s < p->interval_s)
        return;
    p->last_print_s = s->elapsed_s;
    if (p->mode == PROGRESS_JSON) {
        json = progress_format_json(s);
        if (json)
            fprintf(p->out, "%s\n", json);
        free(json);
    } else {
        progress_format_plain(line, sizeof(line), s);
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
}

void progress_end(struct progress *p)
{
    if (p->drew_bar) {
        fputc('\n', p->out);
        p->drew_bar = false;
    }
}
