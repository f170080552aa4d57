#!/usr/bin/env python3
"""Hostile QMP clients against a real mapram-vm (the protocol suite in
tests/integration/qmp runs against a test server; this one reuses its
clients against the VM host): a 100 MB line, deep nesting, invalid UTF-8,
random garbage, half-closed sockets, pipelining, floods of descriptors,
many concurrent connections.  Afterwards the monitor answers, the guest
still runs, the descriptor count is back to where it was, every
descriptor the VM holds is O_CLOEXEC, the socket is 0600, and a save of
the abused VM verifies."""
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
sys.path.insert(0, os.path.join(HERE, '..', 'qmp'))
import test_qmp as proto  # noqa: E402
from mrtest import VM, wait_for_serial  # noqa: E402

O_CLOEXEC = 0o2000000


def fd_flags(pid):
    """{fd: flags} of every descriptor above stdio."""
    out = {}
    for name in os.listdir('/proc/%d/fdinfo' % pid):
        fd = int(name)
        if fd <= 2:
            continue
        try:
            with open('/proc/%d/fdinfo/%s' % (pid, name)) as f:
                for line in f:
                    if line.startswith('flags:'):
                        out[fd] = int(line.split()[1], 8)
        except FileNotFoundError:
            pass        # closed meanwhile
    return out


def check_cloexec(pid, what):
    bad = {fd: oct(fl) for fd, fl in fd_flags(pid).items()
           if not fl & O_CLOEXEC}
    proto.check(not bad, '%s: descriptors without O_CLOEXEC: %s' % (what, bad))


def fd_floods(path):
    r, w = os.pipe()
    try:
        c = proto.Client(path)
        # descriptors nobody claims: closed by the monitor
        for _ in range(5):
            c.send('{"execute": "query-version"}\n', fds=[w] * 200)
            proto.check('return' in c.reply(), 'reply with 200 stray fds')
        # descriptors claimed by add-fd, then removed again
        for i in range(50):
            rep = c.cmd('add-fd', {'fdset-id': 7, 'opaque': 'f%d' % i},
                        fds=[w])
            proto.check('return' in rep, 'add-fd %d: %s' % (i, rep))
        proto.check(c.cmd('remove-fd', {'fdset-id': 7}) == {'return': {}},
                    'remove the flooded fdset')
        # half a request with descriptors, then gone
        d = proto.Client(path)
        d.send('{"execute": "add-', fds=[w, w, w])
        d.close()
        c.close()
    finally:
        os.close(r)
        os.close(w)


def many_clients(path, n=64):
    clients = [proto.Client(path) for _ in range(n)]
    for i, c in enumerate(clients):
        c.send('{"execute": "query-status", "id": %d}\n' % i)
    for i, c in enumerate(clients):
        rep = c.reply()
        proto.check(rep.get('id') == i and 'return' in rep,
                    'client %d of %d: %s' % (i, n, rep))
    # half of them vanish without a word, the rest say goodbye
    for c in clients[::2]:
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
    for c in clients[1::2]:
        c.close()


def guest_runs(vm):
    first = vm.counter()
    deadline = time.monotonic() + 10
    while vm.counter() == first:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def main():
    work = tempfile.mkdtemp(prefix='mapram-rel-qmp-')
    vm = VM('thread', ram='64M', test_range='1M,60M')
    try:
        wait_for_serial(vm.serial)
        pid = vm.proc.pid
        mode = stat.S_IMODE(os.stat(vm.sock).st_mode)
        proto.check(mode == 0o600, 'QMP socket mode %o, expected 600' % mode)
        check_cloexec(pid, 'at start')
        base = proto.fd_count(pid)
        proto.test_big_inputs(vm.sock, pid)
        proto.test_half_close_and_abandon(vm.sock)
        proto.test_pipelining(vm.sock)
        fd_floods(vm.sock)
        many_clients(vm.sock)
        proto.wait_for(lambda: proto.fd_count(pid) == base,
                       'fd count %d back to %d' % (proto.fd_count(pid), base))
        check_cloexec(pid, 'after the abuse')
        proto.check(vm.proc.poll() is None, 'mapram-vm still running')
        proto.check(guest_runs(vm), 'the guest still runs')
        proto.check(vm.qmp.cmd('query-status')['running'],
                    'the first client still works')
        path = os.path.join(work, 'after.sav')
        mapram = os.path.join(os.environ['MAPRAM_BUILD_DIR'], 'src', 'cli',
                              'mapram')
        for args in (['save', '--qmp', vm.sock, path], ['verify', path]):
            res = subprocess.run([mapram] + args, capture_output=True,
                                 text=True, timeout=60)
            proto.check(res.returncode == 0, 'mapram %s: %s'
                        % (args[0], res.stderr.strip()))
    finally:
        vm.kill()
        subprocess.run(['rm', '-rf', work])
    if proto.FAILS:
        print('%d check(s) failed' % len(proto.FAILS))
        return 1
    print('mapram-vm survived every hostile client')
    return 0


if __name__ == '__main__':
    sys.exit(main())
