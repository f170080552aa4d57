/*
 * Populate-ahead for loads: a helper thread pre-faults
 * (MADV_POPULATE_WRITE) the ranges a load is about to write, in order, so
 * first-touch faults overlap the I/O (docs/performance.md).  It never
 * changes a page's content and stops quietly without kernel support.
 */
#ifndef MAPRAM_MIGRATION_POPULATE_H
#define MAPRAM_MIGRATION_POPULATE_H

#include <stddef.h>
#include <stdint.h>

struct mr_populate;

/* Threads used unless MAPRAM_POPULATE_THREADS says otherwise (0 = off). */
#define MR_POPULATE_THREADS_DEFAULT 1u

/* A new, idle populator (NULL when disabled or out of memory: the load
 * then runs without it). */
struct mr_populate *mr_populate_new(void);

/* Append a range to populate; ranges are populated in the order added. */
void mr_populate_add(struct mr_populate *p, void *host, uint64_t len);

/* Start the threads over the ranges added so far. */
void mr_populate_start(struct mr_populate *p);

/* Stop (if still running), join and free.  NULL is fine. */
void mr_populate_free(struct mr_populate *p);

/* Bytes populated so far (for tests and the benchmark). */
uint64_t mr_populate_done_bytes(struct mr_populate *p);

#endif
