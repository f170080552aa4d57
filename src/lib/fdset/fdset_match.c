/*
 * The fdset matching rule (docs/fdsets.md, "Opening /dev/fdset/ID", step 3), alone so it is
 * unit-tested alone: a user descriptor satisfies an open of /dev/fdset/N
 * when its access mode and O_DIRECT agree with the requested flags.
 * Everything else (O_CREAT, O_TRUNC, O_APPEND, O_NONBLOCK...) plays no part.
 */
#include <fcntl.h>

#include "mapram/fdset.h"

bool mr_fdset_flags_match(int requested_flags, int fd_flags)
{
    const int mask = O_ACCMODE | O_DIRECT;

    return (requested_flags & mask) == (fd_flags & mask);
}
