/*
 * The HMP bridge (docs/qmp.md, "HMP"), a built-in handler: human-monitor-
 * command runs one HMP line against the registered tables (two-word names
 * like "info status" looked up whole) and returns what it printed, "\n" as
 * "\r\n".  HMP errors are text in that output, never QMP errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/qmp_internal.h"

#define HMP_NAME_MAX 128

static const char *skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Copy the next word of `p` into `word`; returns what follows it. */
static const char *next_word(const char *p, char *word, size_t size)
{
    size_t n = 0;

    p = skip_blanks(p);
    while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
        if (n + 1 < size)
            word[n++] = *p;
        p++;
    }
    word[n] = '\0';
    return p;
}

/* `help` (or `info` alone): the command names, one per line. */
static void list_commands(struct mr_qmp_server *srv, bool info_only,
                          FILE *out)
{
    size_t t;

    if (!info_only)
        fprintf(out, "help\n");
    for (t = 0; t < srv->nr_hmp_tables; t++) {
        const struct mr_hmp_command *c;

        for (c = srv->hmp_tables[t].cmds; c->name; c++) {
            bool is_info = !strncmp(c->name, "info ", 5);

            if (!info_only || is_info)
                fprintf(out, "%s\n", c->name);
        }
    }
}

static void run_line(struct mr_qmp_call *call, const char *line, FILE *out)
{
    char name[HMP_NAME_MAX + 6], sub[HMP_NAME_MAX];
    const struct mr_hmp_command *cmd;
    struct mr_qmp_call hcall = *call;
    const char *rest;

    rest = next_word(line, name, HMP_NAME_MAX);
    if (!name[0])
        return;
    if (!strcmp(name, "help") || !strcmp(name, "?")) {
        list_commands(call->srv, false, out);
        return;
    }
    if (!strcmp(name, "info")) {
        rest = next_word(rest, sub, sizeof(sub));
        if (!sub[0]) {
            list_commands(call->srv, true, out);
            return;
        }
        snprintf(name, sizeof(name), "info %s", sub);
    }
    cmd = mr_hmp_find_command(call->srv, name, &hcall.opaque);
    if (!cmd) {
        fprintf(out, "unknown command: '%s'\n", name);
        return;
    }
    cmd->handler(&hcall, skip_blanks(rest), out);
}

/* "\n" -> "\r\n" */
static char *crlf(const char *text, size_t len)
{
    size_t i, n = 0, lines = 0;
    char *res;

    for (i = 0; i < len; i++)
        lines += text[i] == '\n';
    res = malloc(len + lines + 1);
    if (!res)
        return NULL;
    for (i = 0; i < len; i++) {
        if (text[i] == '\n')
            res[n++] = '\r';
        res[n++] = text[i];
    }
    res[n] = '\0';
    return res;
}

static char *hmp_run(struct mr_qmp_call *call, const char *line)
{
    char *text = NULL, *res;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    if (!out)
        return NULL;
    run_line(call, line, out);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    res = crlf(text, len);
    free(text);
    return res;
}

json_t *mr_qmp_hmp_command(struct mr_qmp_call *call, json_t *args,
                           struct mr_error *err)
{
    json_t *cpu = json_object_get(args, "cpu-index"), *res;
    char *text;
    size_t i;

    /* mapram-vm has a single vCPU, index 0. */
    if (cpu && json_integer_value(cpu) != 0) {
        mr_error_set(err, -EINVAL, "Parameter 'cpu-index' expects a CPU number");
        return NULL;
    }
    text = hmp_run(call, json_string_value(json_object_get(args,
                                                              "command-line")));
    if (!text) {
        mr_error_set(err, -ENOMEM, "Out of memory");
        return NULL;
    }
    res = json_string(text);
    if (!res) {
        /* Output that is not UTF-8 is shown with its odd bytes masked. */
        for (i = 0; text[i]; i++)
            if ((unsigned char)text[i] >= 0x80)
                text[i] = '?';
        res = json_string(text);
    }
    free(text);
    return res;
}
