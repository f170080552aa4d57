"""Shared helpers for mapram's Python tests (Python 3 stdlib only).

- QMP, connect_qmp(): a small synchronous QMP client (greeting,
  negotiation, commands, buffered events, fd passing by SCM_RIGHTS), the
  same against mapram-vm and QEMU.
- VM: a mapram-vm process in a private temp dir; wait_for_serial() and
  check_guest_ram() are the serial and RAM checks of docs/test-guest.md
  ("Serial check", "RAM check").
- Qemu: a real QEMU 10 process for the live interop tests (and, like VM,
  the benchmark's VMs), with fill_pattern(), run_mapram(), read_header(),
  crc32c(), same_file() and main().
- probe_o_direct(): docs/test-guest.md, "O_DIRECT probe".
- FakeQMP: a scriptable fake monitor for the tool's save and restore, to
  put a step of the test between two steps of the tool.

Tests find this module with sys.path.insert(0, <tests>/lib).
"""
import array
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
PAGE = 4096
TIMEOUT = 20.0
QEMU = shutil.which('qemu-system-x86_64') or '/usr/bin/qemu-system-x86_64'


def fail(msg):
    raise AssertionError(msg)


# ---- QMP -------------------------------------------------------------------

class QMPError(RuntimeError):
    """An error reply; `error` is its {"class", "desc"} object."""

    def __init__(self, error, command=None):
        text = '%s: %s' % (error.get('class'), error.get('desc'))
        super().__init__('%s: %s' % (command, text) if command else text)
        self.error = error


class QMP:
    """One monitor connection; events that arrive are kept in self.events."""

    def __init__(self, path, timeout=TIMEOUT):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.buf = b''
        self.events = []
        self.greeting = self._read()

    def _read(self):
        while b'\n' not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError('monitor closed the connection')
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def negotiate(self):
        return self.cmd('qmp_capabilities')

    def raw(self, execute, arguments=None, fds=()):
        """Send one command, return its reply (events are put aside)."""
        req = {'execute': execute}
        if arguments is not None:
            req['arguments'] = arguments
        data = json.dumps(req).encode() + b'\n'
        if fds:
            self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                        array.array('i', fds))])
        else:
            self.sock.sendall(data)
        while True:
            msg = self._read()
            if 'event' in msg:
                self.events.append(msg)
                continue
            return msg

    def cmd(self, execute, arguments=None, fds=()):
        msg = self.raw(execute, arguments, fds)
        if 'error' in msg:
            raise QMPError(msg['error'], execute)
        return msg['return']

    def hmp(self, line):
        return self.cmd('human-monitor-command', {'command-line': line})

    def wait_event(self, name, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev['event'] == name:
                    return self.events.pop(i)
            if time.monotonic() > deadline:
                raise TimeoutError('no %s event' % name)
            self.events.append(self._read())

    def close(self):
        self.sock.close()


def connect_qmp(path, proc, died, timeout=TIMEOUT):
    """The negotiated monitor of a process just started.  Its socket file
    appears at bind(), a moment before listen(): wait for the file and
    retry a refused connection.  `died()` gives the error text when the
    process exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(died())
        try:
            qmp = QMP(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise TimeoutError('no QMP monitor at %s' % path)
            time.sleep(0.01)
    if 'QMP' not in qmp.greeting:
        qmp.close()
        fail('not a QMP greeting: %r' % qmp.greeting)
    qmp.negotiate()
    return qmp


# ---- mapram-vm --------------------------------------------------------------

def binary():
    return os.path.join(os.environ['MAPRAM_BUILD_DIR'], 'src', 'vm',
                        'mapram-vm')


def have_kvm():
    try:
        os.close(os.open('/dev/kvm', os.O_RDWR))
        return True
    except OSError:
        return False


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def parse_size(text):
    """'150M' -> bytes; K, M, G, T; a fraction such as '1.5G' too."""
    units = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
    if text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


class VM:
    """mapram-vm with a file-backed shared RAM, a serial file and a QMP
    socket in a private temporary directory.

    The benchmark's options: `mem` an existing backing file to use (the
    caller keeps it), `vm_binary` instead of MAPRAM_BUILD_DIR's,
    `prealloc` the backend's prealloc=on, `test_range=None` no -test-range,
    `workdir` where the private directory goes, `log` a file for stderr
    instead of a pipe, `backend` 'memfd' or 'ram' instead of the file
    (then memory() and counter() are not available)."""

    def __init__(self, accel, ram='150M', extra=(), test_range='1M,100M',
                 prefill=None, mem_dir=None, mem=None, vm_binary=None,
                 prealloc=False, workdir=None, log=None, backend=None):
        self.dir = tempfile.mkdtemp(prefix='mapram-vm-test-', dir=workdir)
        self.mem = mem or os.path.join(mem_dir or self.dir, 'mem')
        if prefill is not None:  # a backing file that already has content
            with open(self.mem, 'wb') as f:
                f.write(bytes([prefill]) * parse_size(ram))
        self.serial = os.path.join(self.dir, 'serial')
        self.sock = os.path.join(self.dir, 'qmp.sock')
        backend_kind = backend
        backend = 'memory-backend-file,id=mem,size=%s,mem-path=%s,share=on' % (
            ram, self.mem)
        if prealloc:
            backend += ',prealloc=on'
        if backend_kind:
            backend = 'memory-backend-%s,id=mem,size=%s' % (backend_kind, ram)
        self.args = [vm_binary or binary(), '-accel', accel, '-m', ram,
                     '-object', backend,
                     '-machine', 'memory-backend=mem',
                     '-serial', 'file:' + self.serial,
                     '-qmp', 'unix:%s,server=on,wait=off' % self.sock]
        self.start = self.end = None
        if test_range is not None:
            self.args += ['-test-range', test_range]
            start, end = test_range.split(',')
            self.start, self.end = parse_size(start), parse_size(end)
        self.args += ['-display', 'none'] + list(extra)
        self.log_path = log
        err = open(log, 'wb') if log else subprocess.PIPE
        try:
            self.proc = subprocess.Popen(self.args, stderr=err,
                                         stdout=err if log else None)
        finally:
            if log:
                err.close()
        try:
            self.qmp = connect_qmp(self.sock, self.proc, lambda: (
                'mapram-vm exited: %s' % self._stderr()))
        except BaseException:
            self.kill()
            raise

    def _stderr(self):
        if self.log_path:
            with open(self.log_path, errors='replace') as f:
                return f.read()
        return self.proc.stderr.read().decode()

    def counter(self):
        with open(self.mem, 'rb') as f:
            f.seek(0x5000)
            return int.from_bytes(f.read(8), 'little')

    def memory(self, start, end):
        with open(self.mem, 'rb') as f:
            f.seek(start)
            return f.read(end - start)

    def quit(self):
        self.qmp.cmd('quit')
        return self.wait()

    def wait(self):
        rc = self.proc.wait(TIMEOUT)
        self.stderr = self._stderr()
        self.qmp.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        subprocess.run(['rm', '-rf', self.dir])


def set_caps(q, names):
    """Turns the named migration capabilities on."""
    q.cmd('migrate-set-capabilities', {'capabilities': [
        {'capability': n, 'state': True} for n in names]})


def wait_migrate(q, want, timeout=60):
    """Polls query-migrate until its status is one of @want; a hang guard,
    not a bound."""
    deadline = time.monotonic() + timeout
    info = {}
    while time.monotonic() < deadline:
        info = q.cmd('query-migrate')
        if info.get('status') in want:
            return info
        time.sleep(0.01)
    fail('query-migrate never reached %s: %s' % (want, info))


def pmemsave(vm, name, start, end):
    """Guest-physical [start, end) of a mapram-vm, read back through its
    monitor's pmemsave into vm.dir/name."""
    path = os.path.join(vm.dir, name)
    assert vm.qmp.cmd('pmemsave', {'val': start, 'size': end - start,
                                   'filename': path}) == {}
    with open(path, 'rb') as f:
        return f.read()


def wait_for_serial(path, timeout=TIMEOUT):
    """docs/test-guest.md, "Serial check": skip 'A', the first 'B' means alive."""
    deadline = time.monotonic() + timeout
    pos = 0
    while time.monotonic() < deadline:
        with open(path, 'rb') as f:
            f.seek(pos)
            data = f.read()
        for b in data:
            pos += 1
            if b == ord('A'):
                continue
            if b == ord('B'):
                return
            raise AssertionError('unexpected serial byte %r' % b)
        time.sleep(0.001)
    raise TimeoutError('no B on ' + path)


def check_guest_ram(mem, start, end, base=0):
    """docs/test-guest.md, "RAM check" over the first byte of every page of
    [start, end); `mem` holds guest memory from guest address `base`.
    Returns the list of bad addresses."""
    first = mem[start - base]
    last, hit_edge, bad = first, False, []
    for addr in range(start + PAGE, end, PAGE):
        b = mem[addr - base]
        if b != last:
            if (b + 1) % 256 == last and not hit_edge:
                hit_edge, last = True, b
            else:
                bad.append(addr)
    return bad


# ---- QEMU 10 and the mapram tool -------------------------------------------

def die_with_parent():
    """In the child: get SIGKILL when the test process dies, so a test
    killed by a timeout leaves no QEMU behind."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def mapram_bin():
    build = os.environ.get('MAPRAM_BUILD_DIR')
    if not build:
        raise SystemExit('MAPRAM_BUILD_DIR is not set (run through meson test)')
    return os.path.join(build, 'src', 'cli', 'mapram')


def accel():
    return 'kvm' if os.access('/dev/kvm', os.R_OK | os.W_OK) else 'tcg'


def fill_pattern(path, ram_bytes):
    """Page i % 5 == 0 is zero; others carry i ^ 0x5a.. then (i*7)&0xff."""
    with open(path, 'wb') as f:
        for i in range(ram_bytes // PAGE):
            if i % 5 == 0:
                f.write(bytes(PAGE))
            else:
                f.write(struct.pack('<Q', i ^ 0x5A5A5A5A5A5A5A5A)
                        + bytes([(i * 7) & 0xFF]) * (PAGE - 8))


class Qemu:
    """One QEMU process; use as a context manager so it is always killed.
    The benchmark's options: `ram_path` an existing memory file instead of
    WORKDIR/NAME.ram, `prealloc` the backend's prealloc=on."""

    def __init__(self, workdir, name, ram_mib=64, incoming=False,
                 paused=True, prefill=False, ram_path=None, prealloc=False,
                 extra=()):
        self.name = name
        self.ram_mib = ram_mib
        self.ram_path = ram_path or os.path.join(workdir, name + '.ram')
        self.sock_path = os.path.join(workdir, name + '.sock')
        # QEMU serves one client per monitor socket: the test keeps its
        # own, mapram gets sock_path.
        self.test_sock_path = os.path.join(workdir, name + '-test.sock')
        self.log_path = os.path.join(workdir, name + '.log')
        if prefill:
            fill_pattern(self.ram_path, ram_mib << 20)
        args = [QEMU, '-machine', 'q35', '-accel', accel(),
                '-m', '%dM' % ram_mib,
                '-object', 'memory-backend-file,id=mem,size=%dM,mem-path=%s,'
                'share=on%s' % (ram_mib, self.ram_path,
                                ',prealloc=on' if prealloc else ''),
                '-machine', 'memory-backend=mem',
                '-nographic', '-nodefaults',
                '-qmp', 'unix:%s,server=on,wait=off' % self.sock_path,
                '-qmp', 'unix:%s,server=on,wait=off' % self.test_sock_path]
        if paused:
            args.append('-S')
        elif accel() == 'kvm':
            # A guest that runs would find KVM's paravirtual clock and the
            # host would keep writing it (also on the destination after a
            # load): hide KVM so guest RAM only changes by the guest.
            args += ['-cpu', 'qemu64,kvm=off']
        if incoming:
            args += ['-incoming', 'defer']
        args += list(extra)
        self.log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     preexec_fn=die_with_parent)
        try:
            self.qmp = connect_qmp(self.test_sock_path, self.proc, lambda: (
                'QEMU %s did not start: %s' % (name,
                                               open(self.log_path).read())),
                timeout=15)
        except BaseException:
            self.kill()
            raise

    def status(self):
        return self.qmp.cmd('query-status')['status']

    def fdsets(self):
        return self.qmp.cmd('query-fdsets')

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
    print('$ %s\n-> rc=%d\nstdout: %sstderr: %s'
          % (' '.join(cmd), res.returncode, res.stdout, res.stderr))
    if expect_rc is not None and res.returncode != expect_rc:
        raise AssertionError('mapram exited %d, expected %d: %s'
                             % (res.returncode, expect_rc, res.stderr.strip()))
    return res

STATE_DONE = 0x454E4F44     # mapram header state "DONE" (docs/file-header.md)


def read_header(path):
    """The fields of mapram's header we check (docs/file-header.md)."""
    with open(path, 'rb') as f:
        raw = f.read(512)
    (magic, version, state, header_size, flags, stream_offset, stream_size,
     ram_size, created, channels, crc) = struct.unpack_from('<8sIIIIQQQQII', raw)
    return {'magic': magic, 'version': version, 'state': state,
            'header_size': header_size, 'flags': flags,
            'stream_offset': stream_offset, 'stream_size': stream_size,
            'ram_size': ram_size, 'channels': channels, 'crc': crc,
            'vm_version': raw[160:192].rstrip(b'\0').decode()}


def probe_o_direct(directory):
    """docs/test-guest.md, "O_DIRECT probe": 1 MiB aligned write at 1 MiB through O_DIRECT."""
    import mmap
    path = os.path.join(directory, 'probe-o-direct')
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC | os.O_DIRECT,
                     0o660)
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


def crc32c(data, crc=0):
    """CRC32C (Castagnoli), bit by bit: slow, and independent of the C
    implementation the tests check."""
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def same_file(a, b):
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def main(cases):
    """Run the QEMU case named on the command line in a fresh temp dir."""
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        print('usage: %s {%s}' % (sys.argv[0], ','.join(sorted(cases))))
        return 2
    if not os.path.exists(QEMU):
        print('SKIP: qemu-system-x86_64 not installed')
        return SKIP
    # meson's timeout sends SIGTERM: unwind so every QEMU gets killed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('terminated'))
    workdir = tempfile.mkdtemp(prefix='mapram-live-',
                               dir=os.environ.get('TMPDIR', '/var/tmp'))
    try:
        rc = cases[sys.argv[1]](workdir)
        return 0 if rc is None else rc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ---- a fake QMP monitor ------------------------------------------------------

class _UnixServer:
    """A listening UNIX socket served one client at a time by a daemon
    thread: `_session(conn)` handles a client.  close() stops the thread
    before the descriptor is released (shutdown wakes a blocked accept),
    so a thread that was about to accept can never pick up a later
    server's socket that reuses the descriptor number."""

    def _listen(self, path, backlog):
        import threading
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(backlog)
        self._conn = None
        self._closing = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._closing:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self._conn = conn
            try:
                self._session(conn)
            except OSError:
                pass
            self._conn = None
            conn.close()

    def _stop(self):
        self._closing = True
        for s in (self.srv, self._conn):
            try:
                if s is not None:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        import threading
        if threading.current_thread() is not self.thread:
            self.thread.join(10)
        self.srv.close()


class FakeQMPError(Exception):
    """Raised by a FakeQMP command: becomes a GenericError reply."""


class FakeQMP(_UnixServer):
    """A scriptable stand-in for a VM's monitor on a UNIX socket, enough
    for `mapram save` and `mapram restore`: run state, query-migrate,
    fdsets (descriptors really received), and a `migrate` that writes a
    small stream through the fdset.  `hooks[command](fake, args)` runs
    before the default; it may change the fake's state or files (to win
    a race between two of the tool's steps deterministically) and return
    a reply ({'return': ...} or {'error': {...}}) or None for the default.
    `log` lists the commands received; `peer_pid` is the client's pid."""

    def __init__(self, path, status='running', ram=64 << 20, hooks=None):
        self.path = path
        self.status = status
        self.mig = 'none'
        self.ram = ram
        self.hooks = dict(hooks or {})
        self.log = []
        self.fdsets = {}
        self.peer_pid = None
        self._listen(path, 4)

    @property
    def running(self):
        return self.status == 'running'

    def error(self, desc):
        return {'error': {'class': 'GenericError', 'desc': desc}}

    def _session(self, conn):
        cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                               struct.calcsize('3i'))
        self.peer_pid = struct.unpack('3i', cred)[0]
        conn.sendall(b'{"QMP": {"version": {"qemu": {"major": 10, "minor": '
                     b'0, "micro": 2}, "package": ""}, "capabilities": []}}\n')
        buf, fds = b'', []
        while True:
            line, buf = _recv_line(conn, buf, fds)
            if line is None:
                return
            req = json.loads(line)
            cmd, args = req.get('execute'), req.get('arguments') or {}
            self.log.append(cmd)
            taken = fds if cmd == 'add-fd' else []
            if taken:
                fds = []
            reply = self._reply(cmd, args, taken)
            reply['id'] = req.get('id')
            conn.sendall(json.dumps(reply).encode() + b'\n')

    def _reply(self, cmd, args, fds):
        hook = self.hooks.get(cmd)
        reply = hook(self, args) if hook else None
        if reply is not None:
            for fd in fds:
                os.close(fd)
            return reply
        fn = getattr(self, 'cmd_' + cmd.replace('-', '_'), None)
        if fn is None:
            return self.error("The command %s has not been found" % cmd)
        try:
            return {'return': fn(args, fds) if cmd == 'add-fd' else fn(args)}
        except FakeQMPError as e:
            return self.error(str(e))

    def busy(self):
        return self.mig not in ('none', 'completed', 'failed', 'cancelled')

    def cmd_qmp_capabilities(self, args):
        return {}

    def cmd_query_status(self, args):
        return {'status': self.status, 'running': self.running}

    def cmd_query_migrate(self, args):
        return {} if self.mig == 'none' else {'status': self.mig}

    def cmd_query_memory_size_summary(self, args):
        return {'base-memory': self.ram}

    def cmd_query_version(self, args):
        return {'qemu': {'major': 10, 'minor': 0, 'micro': 2}, 'package': ''}

    def cmd_query_name(self, args):
        return {'name': 'fake'}

    def cmd_migrate_set_capabilities(self, args):
        if self.busy():
            raise FakeQMPError("There's a migration process in progress")
        return {}

    cmd_migrate_set_parameters = cmd_migrate_set_capabilities

    def cmd_stop(self, args):
        if self.status == 'running':
            self.status = 'paused'
        return {}

    def cmd_cont(self, args):
        self.status = 'running'
        return {}

    def cmd_add_fd(self, args, fds):
        sid = args.get('fdset-id')
        if sid is None:
            sid = 0
            while sid in self.fdsets:
                sid += 1
        self.fdsets.setdefault(sid, []).extend(fds)
        return {'fdset-id': sid, 'fd': fds[0] if fds else -1}

    def cmd_remove_fd(self, args):
        for fd in self.fdsets.pop(args['fdset-id'], []):
            os.close(fd)
        return {}

    def cmd_query_fdsets(self, args):
        return [{'fdset-id': k, 'fds': [{'fd': f} for f in v]}
                for k, v in self.fdsets.items()]

    def _fdset_fd(self, uri):
        spec = uri.split('/dev/fdset/', 1)[1]
        sid, _, off = spec.partition(',offset=')
        return self.fdsets[int(sid)][0], int(off or 0)

    def cmd_migrate(self, args):
        if self.busy():
            raise FakeQMPError("There's a migration process in progress")
        fd, off = self._fdset_fd(args['uri'])
        os.pwrite(fd, b'QEVM\0\0\0\3' + bytes(4088), off)
        self.mig = 'completed'
        self.status = 'postmigrate'
        return {}

    def cmd_migrate_incoming(self, args):
        self.mig = 'completed'
        self.status = 'paused'
        return {}

    def cmd_migrate_cancel(self, args):
        if self.busy():
            self.mig = 'cancelled'
        return {}

    def close(self):
        self._stop()
        for fds in self.fdsets.values():
            for fd in fds:
                os.close(fd)
        self.fdsets = {}


# ---- a QMP proxy in front of a real monitor ----------------------------------

def _recv_line(sock, buf, fds):
    """One newline-terminated message from `sock` (descriptors received
    with it are appended to `fds`); returns (line, rest) or (None, b'')."""
    while b'\n' not in buf:
        data, anc, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(64))
        if not data:
            return None, b''
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                a = array.array('i')
                a.frombytes(raw[:len(raw) - len(raw) % a.itemsize])
                fds += list(a)
        buf += data
    line, rest = buf.split(b'\n', 1)
    return line, rest


class QMPProxy(_UnixServer):
    """Relays one client at a time to the monitor at `upstream` (QEMU
    serves one client per socket), descriptors included, and runs
    `hooks[command](proxy, args)` before forwarding a command: the test's
    step between two steps of the tool, against a real VM.  A hook may
    return a reply to answer in the VM's place, or None to forward."""

    def __init__(self, path, upstream, hooks=None):
        self.path, self.upstream = path, upstream
        self.hooks = dict(hooks or {})
        self.log = []
        self._listen(path, 1)

    def _session(self, client):
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            up.connect(self.upstream)
            self._relay(client, up)
        finally:
            up.close()

    def _relay(self, client, up):
        cbuf, ubuf = b'', b''
        greeting, ubuf = _recv_line(up, ubuf, [])
        client.sendall(greeting + b'\n')
        while True:
            fds = []
            line, cbuf = _recv_line(client, cbuf, fds)
            if line is None:
                return
            req = json.loads(line)
            self.log.append(req.get('execute'))
            hook = self.hooks.get(req.get('execute'))
            reply = hook(self, req.get('arguments') or {}) if hook else None
            if reply is not None:
                for fd in fds:
                    os.close(fd)
                reply['id'] = req.get('id')
                client.sendall(json.dumps(reply).encode() + b'\n')
                continue
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                    array.array('i', fds))] if fds else []
            up.sendmsg([line + b'\n'], anc)
            for fd in fds:
                os.close(fd)
            while True:     # events first, then the reply
                msg, ubuf = _recv_line(up, ubuf, [])
                if msg is None:
                    return
                client.sendall(msg + b'\n')
                if 'event' not in json.loads(msg):
                    break

    def close(self):
        self._stop()
