/*
 * Streaming JSON input for the QMP monitor and client (pure: no I/O, no
 * threads): finds where each top-level value ends in bytes that arrive in
 * any pieces, rewrites single-quoted strings, hands each value to jansson,
 * and bounds size and depth (one error, then skip to the next newline).
 */
#ifndef MAPRAM_QMP_JSON_STREAM_H
#define MAPRAM_QMP_JSON_STREAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define MR_JSON_MAX_DEPTH 1024
#define MR_JSON_DEFAULT_MAX_BYTES (16u << 20)

enum mr_json_item_kind {
    MR_JSON_NONE,  /* input exhausted, no value completed */
    MR_JSON_VALUE, /* item.value holds a new reference */
    MR_JSON_ERROR, /* item.error holds "JSON parse error, ..." or, for the
                      size and depth limits, QEMU's own limit message */
};

struct mr_json_item {
    enum mr_json_item_kind kind;
    json_t *value;
    char error[200];
};

struct mr_json_stream {
    char *buf;         /* normalised bytes of the value in progress */
    size_t len, cap;
    size_t max_bytes;
    int depth;
    int state;         /* internal scanner state */
    bool in_container; /* the value started with '{' or '[' */
};

void mr_json_stream_init(struct mr_json_stream *st, size_t max_bytes);
void mr_json_stream_destroy(struct mr_json_stream *st);

/* True when no value is in progress (only whitespace seen since the last
 * one); a scalar waiting for its delimiter counts as in progress. */
bool mr_json_stream_idle(const struct mr_json_stream *st);

/*
 * Consume bytes from `data` until one item completes or the data runs out.
 * Returns how many bytes were consumed; `item->kind` says what completed.
 * Call again with the remaining bytes until it returns MR_JSON_NONE.
 */
size_t mr_json_stream_feed(struct mr_json_stream *st, const char *data,
                           size_t len, struct mr_json_item *item);

/* End of input: a pending scalar is completed (the peer closed after
 * "42"); an unfinished container is reported as an error. */
void mr_json_stream_finish(struct mr_json_stream *st,
                           struct mr_json_item *item);

#endif
