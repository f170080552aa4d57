/*
 * Stream sockets (sock.h): whole transfers, listeners, connections, the
 * peer's pid and private rendezvous directories.
 */
#include "util/sock.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/iov.h"

int mr_sock_read_full(int fd, void *buf, size_t len, size_t *got,
                      struct mr_error *err)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = read(fd, (char *)buf + done, len - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (got)
                *got = done;
            return mr_error_set(err, -errno, "read from socket: %s",
                                strerror(errno));
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    if (got)
        *got = done;
    return done == len ? 0 : -EPIPE;
}

int mr_sock_writev_full(int fd, struct iovec *iov, int iovcnt,
                        struct mr_error *err)
{
    while (iovcnt > 0) {
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mr_error_set(err, -errno, "write to socket: %s",
                                strerror(errno));
        mr_iov_advance(&iov, &iovcnt, (size_t)n);
        while (iovcnt > 0 && iov[0].iov_len == 0) {
            iov++;
            iovcnt--;
        }
    }
    return 0;
}

int mr_sock_write_full(int fd, const void *buf, size_t len,
                       struct mr_error *err)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return mr_sock_writev_full(fd, &iov, len ? 1 : 0, err);
}

static int unix_addr(const char *path, struct sockaddr_un *sa,
                     struct mr_error *err)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return mr_error_set(err, -ENAMETOOLONG,
                            "UNIX socket path '%s' is too long", path);
    strcpy(sa->sun_path, path);
    return 0;
}

int mr_sock_listen_unix(const char *path, int backlog, struct mr_error *err)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, rc = unix_addr(path, &sa, err);

    if (rc < 0)
        return rc;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return mr_error_set(err, -EEXIST,
                                "Failed to bind socket to %s: %s", path,
                                "a file that is not a socket is in the way");
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mr_error_set(err, -errno, "Failed to create socket: %s",
                            strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, backlog) < 0) {
        rc = mr_error_set(err, -errno, "Failed to bind socket to %s: %s",
                          path, strerror(errno));
        close(fd);
        return rc;
    }
    return fd;
}

static int resolve(const char *host, const char *port, bool passive,
                   struct addrinfo **res, struct mr_error *err)
{
    struct addrinfo hints = {
        .ai_socktype = SOCK_STREAM,
        .ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG,
    };
    int rc = getaddrinfo(host && *host ? host : NULL, port, &hints, res);

    if (rc != 0)
        return mr_error_set(err, -EADDRNOTAVAIL,
                            "address resolution failed for %s:%s: %s",
                            host ? host : "", port, gai_strerror(rc));
    return 0;
}

static void tcp_nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int mr_sock_listen_tcp(const char *host, const char *port, int backlog,
                       struct mr_error *err)
{
    struct addrinfo *res, *ai;
    int fd = -1, saved = EADDRNOTAVAIL, one = 1;
    int rc = resolve(host, port, true, &res, err);

    if (rc < 0)
        return rc;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, backlog) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return mr_error_set(err, -saved, "Failed to bind socket: %s",
                            strerror(saved));
    return fd;
}

int mr_sock_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

int mr_sock_connect_unix(const char *path, struct mr_error *err)
{
    struct sockaddr_un sa;
    int fd, rc = unix_addr(path, &sa, err);

    if (rc < 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mr_error_set(err, -errno, "Failed to create socket: %s",
                            strerror(errno));
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno == EINTR)
            continue;
        rc = mr_error_set(err, -errno, "Failed to connect to '%s': %s", path,
                          strerror(errno));
        close(fd);
        return rc;
    }
    return fd;
}

int mr_sock_connect_tcp(const char *host, const char *port,
                        struct mr_error *err)
{
    struct addrinfo *res, *ai;
    int fd = -1, saved = ECONNREFUSED;
    int rc = resolve(host, port, false, &res, err);

    if (rc < 0)
        return rc;
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        while (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            if (errno == EINTR)
                continue;
            saved = errno;
            close(fd);
            fd = -1;
            break;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return mr_error_set(err, -saved, "Failed to connect to '%s:%s': %s",
                            host, port, strerror(saved));
    tcp_nodelay(fd);
    return fd;
}

int mr_sock_accept(int lfd, struct mr_error *err)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd >= 0) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);

            if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
                ss.ss_family != AF_UNIX)
                tcp_nodelay(fd);
            return fd;
        }
        if (errno != EINTR && errno != ECONNABORTED)
            return mr_error_set(err, -errno, "accept: %s", strerror(errno));
    }
}

int mr_sock_peer_pid(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
        len != sizeof(cred) || cred.pid <= 0)
        return -1;
    return (int)cred.pid;
}

int mr_sock_private_dir(const char *fallback, char *out, size_t cap,
                        struct mr_error *err)
{
    const char *base = getenv("XDG_RUNTIME_DIR");
    int n;

    if (!base || !*base)
        base = fallback ? fallback : "/tmp";
    n = snprintf(out, cap, "%s/mapram.XXXXXX", base);
    if (n < 0 || (size_t)n >= cap)
        return mr_error_set(err, -ENAMETOOLONG,
                            "directory name under '%s' is too long", base);
    if (!mkdtemp(out))  /* mode 0700 */
        return mr_error_set(err, -errno, "cannot create a directory in '%s': %s",
                            base, strerror(errno));
    return 0;
}

void mr_sock_private_dir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[4096];

    if (!d)
        return;
    while ((de = readdir(d))) {
        if (de->d_type != DT_SOCK && de->d_type != DT_UNKNOWN)
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) <
            (int)sizeof(path))
            unlink(path);  /* "." and ".." fail harmlessly */
    }
    closedir(d);
    rmdir(dir);
}
