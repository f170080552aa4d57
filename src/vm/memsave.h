/*
 * pmemsave/memsave off the monitor thread: the file is opened at once (its
 * errors answer the command), the copy runs on a thread of its own and
 * answers through a deferred QMP reply.  A copy stalled on a slow reader
 * (a FIFO) is cancelled at shutdown, so quitting never waits for it.
 */
#ifndef MAPRAM_VM_MEMSAVE_H
#define MAPRAM_VM_MEMSAVE_H

#include "mapram/qmp.h"
#include "vmhost.h"

struct memsave;

struct memsave *memsave_new(struct mr_error *err);
/* Cancel the copies that wait for a reader, join them all, free. */
void memsave_free(struct memsave *ms);

/* Copy guest-physical [gpa, gpa + size) of pc.ram to `path`.  Returns 0
 * once the copy runs: the reply of `call` is deferred and given when the
 * copy ends.  An error (range, open) answers the command at once. */
int memsave_start(struct memsave *ms, struct mr_qmp_call *call, struct vm *vm,
                  uint64_t gpa, uint64_t size, const char *path,
                  struct mr_error *err);

#endif
