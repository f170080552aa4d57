#!/usr/bin/env python3
"""The teardown race (issue 16): clients keep hammering mapram-vm's monitor
(migrate, migrate_cancel, query-migrate, cont, pmemsave, HMP, garbage)
while it quits by quit, SIGTERM, SIGINT or SIGHUP.
test_teardown.py kvm|thread.

Every way out must exit 0 with nothing on stderr from a sanitizer; a
handler running on a freed migration object crashes (SIGSEGV) in a normal
build and is reported by ASan in build-asan.  No timing is asserted: the
clients simply run until the VM closes their connections."""
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'lib'))
from mrtest import VM, fail, have_kvm  # noqa: E402

ACCEL = sys.argv[1] if len(sys.argv) > 1 else 'thread'
ROUNDS = 3          # per way out
CLIENTS = 4


def requests(path):
    """What a hostile client sends, in a loop."""
    mig = {'execute': 'migrate', 'arguments': {'uri': 'file:' + path}}
    return [json.dumps(m).encode() + b'\n' for m in (
        mig, {'execute': 'query-migrate'}, {'execute': 'migrate_cancel'},
        mig, {'execute': 'query-migrate'}, {'execute': 'cont'},
        {'execute': 'human-monitor-command',
         'arguments': {'command-line': 'info migrate'}},
        {'execute': 'human-monitor-command',
         'arguments': {'command-line': 'migrate -d file:' + path}},
        {'execute': 'migrate_cancel'},
        {'execute': 'pmemsave', 'arguments': {'val': 1 << 20, 'size': 8 << 20,
                                              'filename': path + '.mem'}})
    ] + [b'{"execute": oops}\n',
                                           b'\x00\xff garbage\n']


class Hammer(threading.Thread):
    """One connection that sends requests as long as the VM answers."""

    def __init__(self, sock_path, reqs, pipelined):
        super().__init__(daemon=True)
        self.sock_path, self.pipelined = sock_path, pipelined
        self.reqs = reqs
        self.replies = 0
        self.started = threading.Event()

    def run(self):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(60)
            s.connect(self.sock_path)
            s.sendall(b'{"execute": "qmp_capabilities"}\n')
            self.loop(s)
        except OSError:
            pass  # the VM went away: that is the point
        finally:
            self.started.set()

    def loop(self, s):
        i = 0
        while True:
            burst = 8 if self.pipelined else 1
            for _ in range(burst):
                s.sendall(self.reqs[i % len(self.reqs)])
                i += 1
            data = s.recv(65536)
            if not data:
                return
            self.replies += data.count(b'\n')
            if self.replies > 20:
                self.started.set()


def leave(vm, how):
    if how == 'quit':
        vm.qmp.cmd('quit')
    else:
        vm.proc.send_signal(getattr(signal, how))


def one_round(how, n):
    vm = VM(ACCEL, ram='64M', test_range='1M,64M')
    try:
        # Slow saves stay active long enough to be cancelled and restarted.
        vm.qmp.cmd('migrate-set-parameters', {'max-bandwidth': 4 << 20})
        hammers = [Hammer(vm.sock, requests(os.path.join(vm.dir, 'f%d' % i)),
                          i % 2) for i in range(CLIENTS)]
        # a client that only looks (it read freed memory under ASan)
        hammers.append(Hammer(vm.sock, [b'{"execute": "query-migrate"}\n'],
                              False))
        for h in hammers:
            h.start()
        for h in hammers:
            h.started.wait(60)
        if not any(h.replies for h in hammers):
            fail('no client got a reply before shutdown')
        leave(vm, how)
        rc = vm.wait()
        for h in hammers:
            h.join(60)
        if rc != 0 or 'Sanitizer' in vm.stderr or 'runtime error' in vm.stderr:
            fail('%s round %d: exit status %d, stderr:\n%s'
                 % (how, n, rc, vm.stderr[-4000:]))
    finally:
        vm.kill()


def main():
    if ACCEL == 'kvm' and not have_kvm():
        print('no usable /dev/kvm: skipped')
        return 77
    failed = 0
    for how in ('quit', 'SIGTERM', 'SIGINT', 'SIGHUP'):
        try:
            for n in range(ROUNDS):
                one_round(how, n)
            print('ok   %s/teardown/%s' % (ACCEL, how))
        except Exception as e:  # report every way out, then fail
            failed += 1
            print('FAIL %s/teardown/%s: %s' % (ACCEL, how, e))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
