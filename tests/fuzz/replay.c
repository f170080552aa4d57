/*
 * Corpus replay (SQLite's fuzzcheck idea): run a fuzz target's entry
 * function over every file in the given directories, so inputs that once
 * crashed stay fixed in every build, sanitizers or not.  A crash or abort
 * fails the test; each input gets a 10 s alarm.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define REPLAY_MAX_INPUT (16U << 20)

static int replay_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t *buf;
    ssize_t n;

    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size > REPLAY_MAX_INPUT) {
        fprintf(stderr, "replay: %s: cannot use (%s)\n", path,
                fd < 0 ? strerror(errno) : "too large or unreadable");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (n != st.st_size) {
        fprintf(stderr, "replay: %s: short read\n", path);
        free(buf);
        return -1;
    }
    alarm(10);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    alarm(0);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int count = 0, failed = 0;

    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        struct dirent *de;

        if (!d) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        while ((de = readdir(d))) {
            char path[4096];

            if (de->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
            failed |= replay_file(path) < 0;
            count++;
        }
        closedir(d);
    }
    printf("replayed %d inputs\n", count);
    return failed || count == 0;
}
