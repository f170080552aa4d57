/*
 * Streaming JSON scanner: finds value boundaries so jansson parses exactly
 * one complete value at a time.  See json_stream.h for the rules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/json_stream.h"

enum {
    ST_IDLE,
    ST_CONTAINER, /* inside {...} or [...], outside strings */
    ST_DQ,        /* inside a "string" */
    ST_DQ_ESC,
    ST_SQ,        /* inside a 'string' (rewritten to "string") */
    ST_SQ_ESC,
    ST_SCALAR,    /* a bare top-level token: number, keyword, garbage */
    ST_DISCARD,   /* after a limit error: skip up to the next newline */
};

/* Keep a large buffer only while a large value is in progress. */
#define KEEP_CAP_BYTES (64u << 10)

void mr_json_stream_init(struct mr_json_stream *st, size_t max_bytes)
{
    memset(st, 0, sizeof(*st));
    st->max_bytes = max_bytes ? max_bytes : MR_JSON_DEFAULT_MAX_BYTES;
    st->state = ST_IDLE;
}

void mr_json_stream_destroy(struct mr_json_stream *st)
{
    free(st->buf);
    st->buf = NULL;
    st->len = st->cap = 0;
}

bool mr_json_stream_idle(const struct mr_json_stream *st)
{
    return st->state == ST_IDLE || st->state == ST_DISCARD;
}

static void reset(struct mr_json_stream *st, int state)
{
    st->len = 0;
    st->depth = 0;
    st->in_container = false;
    st->state = state;
    if (st->cap > KEEP_CAP_BYTES) {
        free(st->buf);
        st->buf = NULL;
        st->cap = 0;
    }
}

static void set_error(struct mr_json_item *item, const char *reason)
{
    item->kind = MR_JSON_ERROR;
    item->value = NULL;
    snprintf(item->error, sizeof(item->error), "JSON parse error, %s",
             reason);
}

/* Append up to two bytes; false when the value outgrew its limit or memory
 * ran out (the caller reports and resynchronises). */
static bool append(struct mr_json_stream *st, const char *bytes, size_t n)
{
    if (st->len + n > st->max_bytes)
        return false;
    if (st->len + n > st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 256;
        char *p;

        while (cap < st->len + n)
            cap *= 2;
        if (cap > st->max_bytes)
            cap = st->max_bytes;
        p = realloc(st->buf, cap);
        if (!p)
            return false;
        st->buf = p;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, bytes, n);
    st->len += n;
    return true;
}

static void complete(struct mr_json_stream *st, struct mr_json_item *item)
{
    json_error_t jerr;
    json_t *v;

    v = json_loadb(st->buf ? st->buf : "", st->len,
                   JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (v) {
        item->kind = MR_JSON_VALUE;
        item->value = v;
    } else {
        set_error(item, jerr.text);
    }
    reset(st, ST_IDLE);
}

/* QEMU words its streamer limits without the "JSON parse error" prefix. */
static void limit_error(struct mr_json_stream *st, struct mr_json_item *item,
                        const char *msg)
{
    item->kind = MR_JSON_ERROR;
    item->value = NULL;
    snprintf(item->error, sizeof(item->error), "%s", msg);
    reset(st, ST_DISCARD);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool ends_scalar(char c)
{
    return is_space(c) || strchr("{}[]\"',:", c) != NULL;
}

/* The end of a string: a top-level string is a complete value. */
static bool close_string(struct mr_json_stream *st)
{
    if (st->in_container) {
        st->state = ST_CONTAINER;
        return false;
    }
    return true;
}

/*
 * One byte.  Returns 1 when a value completed including this byte, 2 when
 * it completed before this byte (a scalar's delimiter, not consumed), 0
 * otherwise; a limit error sets `item` and returns 1.
 */
static int step(struct mr_json_stream *st, char c, struct mr_json_item *item)
{
    bool ok = true;

    switch (st->state) {
    case ST_DISCARD:
        if (c == '\n')
            st->state = ST_IDLE;
        return 0;
    case ST_IDLE:
        if (is_space(c))
            return 0;
        if (c == '{' || c == '[') {
            st->in_container = true;
            st->depth = 1;
            st->state = ST_CONTAINER;
            ok = append(st, &c, 1);
        } else if (c == '"') {
            st->state = ST_DQ;
            ok = append(st, &c, 1);
        } else if (c == '\'') {
            st->state = ST_SQ;
            ok = append(st, "\"", 1);
        } else {
            st->state = ST_SCALAR;
            ok = append(st, &c, 1);
            if (ok && strchr("}],:", c))
                return 1; /* a lone structural byte: an error by itself */
        }
        break;
    case ST_SCALAR:
        if (ends_scalar(c))
            return 2;
        ok = append(st, &c, 1);
        break;
    case ST_CONTAINER:
        if (c == '{' || c == '[') {
            if (++st->depth > MR_JSON_MAX_DEPTH) {
                limit_error(st, item, "JSON nesting depth limit exceeded");
                return 1;
            }
        } else if (c == '}' || c == ']') {
            ok = append(st, &c, 1);
            if (ok && --st->depth == 0)
                return 1;
            break;
        } else if (c == '"') {
            st->state = ST_DQ;
        } else if (c == '\'') {
            st->state = ST_SQ;
            ok = append(st, "\"", 1);
            break;
        }
        ok = append(st, &c, 1);
        break;
    case ST_DQ:
    case ST_SQ:
        if (c == '\\') {
            st->state = st->state == ST_DQ ? ST_DQ_ESC : ST_SQ_ESC;
            return 0;
        }
        if ((c == '"' && st->state == ST_DQ) ||
            (c == '\'' && st->state == ST_SQ)) {
            ok = append(st, "\"", 1);
            if (!ok)
                break;
            return close_string(st) ? 1 : 0;
        }
        ok = c == '"' ? append(st, "\\\"", 2) : append(st, &c, 1);
        break;
    case ST_DQ_ESC:
    case ST_SQ_ESC: {
        char esc[2] = { '\\', c };

        st->state = st->state == ST_DQ_ESC ? ST_DQ : ST_SQ;
        /* \' is QEMU's escape for a quote; JSON has no such escape. */
        ok = c == '\'' ? append(st, &c, 1) : append(st, esc, 2);
        break;
    }
    }
    if (!ok) {
        limit_error(st, item, "JSON token size limit exceeded");
        return 1;
    }
    return 0;
}

size_t mr_json_stream_feed(struct mr_json_stream *st, const char *data,
                           size_t len, struct mr_json_item *item)
{
    size_t i;

    item->kind = MR_JSON_NONE;
    item->value = NULL;
    item->error[0] = '\0';
    for (i = 0; i < len; i++) {
        int r = step(st, data[i], item);

        if (r == 0)
            continue;
        if (item->kind == MR_JSON_ERROR)
            return i + 1; /* limit error, already reported */
        complete(st, item);
        return r == 1 ? i + 1 : i;
    }
    return len;
}

void mr_json_stream_finish(struct mr_json_stream *st,
                           struct mr_json_item *item)
{
    item->kind = MR_JSON_NONE;
    item->value = NULL;
    item->error[0] = '\0';
    if (st->state == ST_SCALAR) {
        complete(st, item);
    } else if (st->state != ST_IDLE && st->state != ST_DISCARD) {
        set_error(item, "premature end of input");
        reset(st, ST_IDLE);
    } else {
        reset(st, ST_IDLE);
    }
}
