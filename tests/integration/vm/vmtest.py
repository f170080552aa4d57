"""Helpers for mapram-vm integration tests (Python 3 stdlib only).

A small QMP client (greeting, negotiation, commands, buffered events,
fd passing), a process wrapper for mapram-vm, the serial liveness check
and the RAM check of spec/test-guest.md §2-§3.
"""
import array
import json
import os
import socket
import subprocess
import tempfile
import time

PAGE = 4096
TIMEOUT = 20.0


class QMPError(Exception):
    def __init__(self, error):
        super().__init__('%s: %s' % (error.get('class'), error.get('desc')))
        self.error = error


class QMP:
    def __init__(self, path, timeout=TIMEOUT):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
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
        req = {'execute': execute}
        if arguments is not None:
            req['arguments'] = arguments
        data = json.dumps(req).encode()
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
            raise QMPError(msg['error'])
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


def binary():
    return os.path.join(os.environ['MAPRAM_BUILD_DIR'], 'src', 'vm',
                        'mapram-vm')


def have_kvm():
    try:
        os.close(os.open('/dev/kvm', os.O_RDWR))
        return True
    except OSError:
        return False


class VM:
    """mapram-vm with a file-backed shared RAM, a serial file and a QMP
    socket in a private temporary directory."""

    def __init__(self, accel, ram='150M', extra=(), test_range='1M,100M',
                 prefill=None):
        self.dir = tempfile.mkdtemp(prefix='mapram-vm-test-')
        self.mem = os.path.join(self.dir, 'mem')
        if prefill is not None:  # a backing file that already has content
            with open(self.mem, 'wb') as f:
                f.write(bytes([prefill]) * parse_size(ram))
        self.serial = os.path.join(self.dir, 'serial')
        self.sock = os.path.join(self.dir, 'qmp.sock')
        self.args = [binary(), '-accel', accel, '-m', ram,
                     '-object', 'memory-backend-file,id=mem,size=%s,'
                     'mem-path=%s,share=on' % (ram, self.mem),
                     '-machine', 'memory-backend=mem',
                     '-serial', 'file:' + self.serial,
                     '-qmp', 'unix:%s,server=on,wait=off' % self.sock,
                     '-test-range', test_range, '-display', 'none']
        self.args += list(extra)
        start, end = test_range.split(',')
        self.start, self.end = parse_size(start), parse_size(end)
        self.proc = subprocess.Popen(self.args, stderr=subprocess.PIPE)
        self.qmp = self._connect()

    def _connect(self):
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None:
                raise RuntimeError('mapram-vm exited: %s'
                                   % self.proc.stderr.read().decode())
            if time.monotonic() > deadline:
                raise TimeoutError('no QMP socket')
            time.sleep(0.01)
        while True:
            # the socket file appears at bind(), a moment before listen()
            try:
                qmp = QMP(self.sock)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        qmp.negotiate()
        return qmp

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
        self.stderr = self.proc.stderr.read().decode()
        self.qmp.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        subprocess.run(['rm', '-rf', self.dir])


def parse_size(text):
    units = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
    if text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def wait_for_serial(path, timeout=TIMEOUT):
    """spec/test-guest.md §2: skip 'A', the first 'B' means alive."""
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
    """spec/test-guest.md §3 over the first byte of every page of
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


def fail(msg):
    raise AssertionError(msg)
