#!/usr/bin/env python3
"""Helpers for the live QEMU 10 interop tests of `mapram save/restore`.

Starts real QEMU processes (q35, file-backed shared RAM, QMP on a UNIX
socket) in a private temp dir, fills guest RAM with a deterministic
pattern before QEMU starts, talks QMP (with SCM_RIGHTS) from the stdlib,
and kills every QEMU it started, also on failure.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77
QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
PAGE = 4096


def die_with_parent():
    """In the child: get SIGKILL when the test process dies, so a test
    killed by a timeout leaves no QEMU behind."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def mapram_bin():
    build = os.environ.get("MAPRAM_BUILD_DIR")
    if not build:
        raise SystemExit("MAPRAM_BUILD_DIR is not set (run through meson test)")
    return os.path.join(build, "src", "cli", "mapram")


def accel():
    return "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"


def fill_pattern(path, ram_bytes):
    """Page i % 5 == 0 is zero; others carry i ^ 0x5a.. then (i*7)&0xff."""
    with open(path, "wb") as f:
        for i in range(ram_bytes // PAGE):
            if i % 5 == 0:
                f.write(bytes(PAGE))
            else:
                f.write(struct.pack("<Q", i ^ 0x5A5A5A5A5A5A5A5A)
                        + bytes([(i * 7) & 0xFF]) * (PAGE - 8))


class Qmp:
    """A tiny synchronous QMP client; events are kept in self.events."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        greeting = self._read()
        assert "QMP" in greeting, greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, name, args=None, fds=()):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        data = json.dumps(req).encode() + b"\n"
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.sendall(data)
        while True:
            msg = self._read()
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def cmd(self, name, args=None, fds=()):
        msg = self.execute(name, args, fds)
        if "error" in msg:
            raise RuntimeError("%s: %s" % (name, msg["error"]["desc"]))
        return msg["return"]

    def close(self):
        self.sock.close()


class Qemu:
    """One QEMU process; use as a context manager so it is always killed."""

    def __init__(self, workdir, name, ram_mib=64, incoming=False,
                 paused=True, prefill=False):
        self.name = name
        self.ram_mib = ram_mib
        self.ram_path = os.path.join(workdir, name + ".ram")
        self.sock_path = os.path.join(workdir, name + ".sock")
        # QEMU serves one client per monitor socket: the test keeps its
        # own, mapram gets sock_path.
        self.test_sock_path = os.path.join(workdir, name + "-test.sock")
        self.log_path = os.path.join(workdir, name + ".log")
        if prefill:
            fill_pattern(self.ram_path, ram_mib << 20)
        args = [QEMU, "-machine", "q35", "-accel", accel(),
                "-m", "%dM" % ram_mib,
                "-object", "memory-backend-file,id=mem,size=%dM,mem-path=%s,share=on"
                % (ram_mib, self.ram_path),
                "-machine", "memory-backend=mem",
                "-nographic", "-nodefaults",
                "-qmp", "unix:%s,server=on,wait=off" % self.sock_path,
                "-qmp", "unix:%s,server=on,wait=off" % self.test_sock_path]
        if paused:
            args.append("-S")
        elif accel() == "kvm":
            # A guest that runs would find KVM's paravirtual clock and the
            # host would keep writing it (also on the destination after a
            # load): hide KVM so guest RAM only changes by the guest.
            args += ["-cpu", "qemu64,kvm=off"]
        if incoming:
            args += ["-incoming", "defer"]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     preexec_fn=die_with_parent)
        try:
            self.qmp = self._connect(time.monotonic() + 15)
        except BaseException:
            self.kill()
            raise

    def _connect(self, deadline):
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("QEMU %s did not start: %s"
                                   % (self.name, open(self.log_path).read()))
            if os.path.exists(self.test_sock_path):
                try:
                    return Qmp(self.test_sock_path)
                except (ConnectionRefusedError, FileNotFoundError):
                    pass  # the socket file appears just before listen()
            time.sleep(0.02)

    def status(self):
        return self.qmp.cmd("query-status")["status"]

    def fdsets(self):
        return self.qmp.cmd("query-fdsets")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def run_mapram(*args, timeout=60, expect_rc=None):
    cmd = [mapram_bin()] + [str(a) for a in args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    print("$ %s\n-> rc=%d\nstdout: %sstderr: %s"
          % (" ".join(cmd), res.returncode, res.stdout, res.stderr))
    if expect_rc is not None and res.returncode != expect_rc:
        raise AssertionError("mapram exited %d, expected %d: %s"
                             % (res.returncode, expect_rc, res.stderr.strip()))
    return res


def read_header(path):
    """The fields of mapram's header we check (docs/file-header.md)."""
    with open(path, "rb") as f:
        raw = f.read(512)
    (magic, version, state, header_size, flags, stream_offset, stream_size,
     ram_size, created, channels, crc) = struct.unpack_from("<8sIIIIQQQQII", raw)
    return {"magic": magic, "version": version, "state": state,
            "header_size": header_size, "flags": flags,
            "stream_offset": stream_offset, "stream_size": stream_size,
            "ram_size": ram_size, "channels": channels, "crc": crc,
            "vm_version": raw[160:192].rstrip(b"\0").decode()}


def probe_o_direct(directory):
    """test-guest.md §5: 1 MiB aligned write at 1 MiB through O_DIRECT."""
    import mmap
    path = os.path.join(directory, "probe-o-direct")
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC | os.O_DIRECT, 0o660)
    except OSError:
        # some filesystems create the file before refusing O_DIRECT
        if os.path.exists(path):
            os.unlink(path)
        return False
    try:
        buf = mmap.mmap(-1, 1 << 20)
        os.pwrite(fd, buf, 1 << 20)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(path)


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def main(cases):
    """Run the case named on the command line in a fresh temp dir."""
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        print("usage: %s {%s}" % (sys.argv[0], ",".join(sorted(cases))))
        return 2
    if not os.path.exists(QEMU):
        print("SKIP: qemu-system-x86_64 not installed")
        return SKIP
    # meson's timeout sends SIGTERM: unwind so every QEMU gets killed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    workdir = tempfile.mkdtemp(prefix="mapram-live-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    try:
        rc = cases[sys.argv[1]](workdir)
        return 0 if rc is None else rc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
