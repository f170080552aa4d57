/*
 * Scratch directories and the O_DIRECT probe for the engine test programs
 * (scratch.h): one copy instead of one per test program.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scratch.h"

int scratch_dir_make(char *dir, size_t size, const char *prefix)
{
    char cwd[200];

    if (!getcwd(cwd, sizeof(cwd)))
        return -1;
    if ((size_t)snprintf(dir, size, "%s/%sXXXXXX", cwd, prefix) >= size)
        return -1;
    return mkdtemp(dir) ? 0 : -1;
}

int scratch_dir_remove(const char *dir)
{
    char cmd[600];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

bool scratch_probe_odirect(const char *dir)
{
    char path[512];
    void *buf;
    int fd;
    bool good;

    snprintf(path, sizeof(path), "%s/probe-o-direct", dir);
    fd = open(path, O_CREAT | O_RDWR | O_TRUNC | O_DIRECT | O_CLOEXEC, 0660);
    if (fd < 0)
        return false;
    if (posix_memalign(&buf, 1 << 20, 1 << 20)) {
        close(fd);
        return false;
    }
    memset(buf, 0, 1 << 20);
    good = pwrite(fd, buf, 1 << 20, 1 << 20) == 1 << 20;
    free(buf);
    close(fd);
    unlink(path);
    return good;
}
