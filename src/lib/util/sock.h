/*
 * Stream sockets for the multifd socket transport and the tool's peer
 * links: whole reads and writes that survive EINTR and short transfers,
 * UNIX and TCP listeners and connections with QEMU's messages, the peer's
 * pid, and a private (0700) directory for rendezvous sockets.
 */
#ifndef MAPRAM_UTIL_SOCK_H
#define MAPRAM_UTIL_SOCK_H

#include <stddef.h>
#include <sys/uio.h>

#include "mapram/error.h"

/*
 * Read exactly `len` bytes.  0 when all arrived; -EPIPE on EOF before
 * that, with *got (may be NULL) the bytes that did arrive and no error
 * recorded (the caller knows what the bytes were for and says so);
 * another negative errno with a message otherwise.
 */
int mr_sock_read_full(int fd, void *buf, size_t len, size_t *got,
                      struct mr_error *err);

/* Write all of `len` bytes / all of `iov` (without SIGPIPE: a closed
 * peer is -EPIPE with a message). */
int mr_sock_write_full(int fd, const void *buf, size_t len,
                       struct mr_error *err);
int mr_sock_writev_full(int fd, struct iovec *iov, int iovcnt,
                        struct mr_error *err);

/* Listening sockets (close-on-exec, blocking).  A UNIX path that exists
 * as a socket is replaced; anything else there is an error. */
int mr_sock_listen_unix(const char *path, int backlog, struct mr_error *err);
int mr_sock_listen_tcp(const char *host, const char *port, int backlog,
                       struct mr_error *err);

/* The port a TCP listener is bound to (for port "0"), or -1. */
int mr_sock_local_port(int fd);

/* Connected sockets (close-on-exec, blocking, TCP_NODELAY for TCP). */
int mr_sock_connect_unix(const char *path, struct mr_error *err);
int mr_sock_connect_tcp(const char *host, const char *port,
                        struct mr_error *err);

/* accept(2) through EINTR; close-on-exec. */
int mr_sock_accept(int lfd, struct mr_error *err);

/* The pid at the other end of a UNIX socket, or -1 (TCP, or unknown). */
int mr_sock_peer_pid(int fd);

/*
 * Make a new directory only the caller's user can enter, under
 * $XDG_RUNTIME_DIR if set, else under `fallback` (NULL: /tmp), and write
 * its path to out[cap].  Remove it with mr_sock_private_dir_remove, which
 * also unlinks the sockets left in it.
 */
int mr_sock_private_dir(const char *fallback, char *out, size_t cap,
                        struct mr_error *err);
void mr_sock_private_dir_remove(const char *dir);

#endif
