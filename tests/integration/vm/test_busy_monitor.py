#!/usr/bin/env python3
"""No monitor command blocks the monitor (issue 16): while a long command
runs for one client, another is answered.  test_busy_monitor.py kvm|thread.

The long command is a save slowed by max-bandwidth: 4 MiB/s over a guest
range of 63 MiB that the guest keeps dirtying, so its first pass alone
takes more than 15 s and it never completes by itself.  The bound asserted
is not a time: the second client must see the save still `active`.  A
monitor thread stuck in the long command could only answer after the save
ended (or never), so the check cannot pass by luck and cannot flake on a
slow machine (slowness only makes the save longer).  The latency observed
is printed for the record (issue 16 asked for 100 ms)."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'lib'))
from mrtest import QMP, VM, fail, have_kvm  # noqa: E402

ACCEL = sys.argv[1] if len(sys.argv) > 1 else 'thread'
DETACHED = 'terminal does not allow synchronous migration, continuing detached'


def slow_vm():
    vm = VM(ACCEL, ram='64M', test_range='1M,64M')
    vm.qmp.cmd('migrate-set-parameters', {'max-bandwidth': 4 << 20})
    return vm


def send(q, execute, arguments=None):
    req = {'execute': execute, 'id': execute}
    if arguments is not None:
        req['arguments'] = arguments
    q.sock.sendall(json.dumps(req).encode() + b'\n')


def reply(q):
    while True:
        msg = q._read()
        if 'event' not in msg:
            return msg


def second_client_sees_active(vm, what):
    """Another connection asks query-migrate while `what` runs."""
    other = QMP(vm.sock)
    try:
        other.negotiate()
        t0 = time.monotonic()
        st = other.cmd('query-migrate')['status']
        ms = (time.monotonic() - t0) * 1000
        print('%s: second client answered in %.1f ms (status %s)'
              % (what, ms, st))
        if st not in ('setup', 'active'):
            fail('%s: the second client was answered only once the save '
                 'was %s' % (what, st))
        other.cmd('migrate_cancel')
    finally:
        other.close()


def test_hmp_migrate_without_d():
    """QEMU 10 over human-monitor-command: the message, then detached."""
    vm = slow_vm()
    try:
        send(vm.qmp, 'human-monitor-command',
             {'command-line': 'migrate file:' + os.path.join(vm.dir, 'f')})
        second_client_sees_active(vm, 'HMP migrate')
        r = reply(vm.qmp)
        if r.get('return') != DETACHED + '\r\n':
            fail('HMP migrate answered %r' % r)
        assert vm.quit() == 0
    finally:
        vm.kill()


def test_long_commands():
    """Every command that starts long work returns at once."""
    cases = [
        ('migrate', {'uri': 'file:%s'}),
        ('human-monitor-command', {'command-line': 'migrate -d file:%s'}),
    ]
    for execute, args in cases:
        vm = slow_vm()
        try:
            path = os.path.join(vm.dir, 'f')
            args = {k: v % path for k, v in args.items()}
            send(vm.qmp, execute, args)
            second_client_sees_active(vm, execute)
            r = reply(vm.qmp)
            if 'error' in r:
                fail('%s: %r' % (execute, r))
            assert vm.quit() == 0
        finally:
            vm.kill()


def test_quit_during_long_command():
    """quit from another client while the HMP migrate runs: exit 0."""
    vm = slow_vm()
    try:
        send(vm.qmp, 'human-monitor-command',
             {'command-line': 'migrate file:' + os.path.join(vm.dir, 'f')})
        other = QMP(vm.sock)
        other.negotiate()
        other.cmd('quit')
        rc = vm.proc.wait(20)
        other.close()
        if rc != 0:
            fail('exit status %d' % rc)
    except (socket.timeout, TimeoutError) as e:
        fail('quit was not served: %r' % e)
    finally:
        vm.kill()


def stalled_pmemsave(vm, q):
    """pmemsave of 32 MiB into a FIFO nobody reads yet: the copy cannot
    finish until the test reads, however fast the machine is.  Returns
    the read end."""
    fifo = os.path.join(vm.dir, 'fifo')
    os.mkfifo(fifo)
    rd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    send(q, 'pmemsave', {'val': 1 << 20, 'size': 32 << 20,
                         'filename': fifo})
    return rd


def drain(rd, size):
    os.set_blocking(rd, True)
    got = 0
    while got < size:
        chunk = os.read(rd, 1 << 20)
        if not chunk:
            break
        got += len(chunk)
    os.close(rd)
    return got


def test_pmemsave_into_a_stalled_reader():
    """The copy waits for its reader; another client is served meanwhile,
    and the requester's own replies stay in order."""
    vm = VM(ACCEL, ram='64M', test_range='1M,64M')
    try:
        rd = stalled_pmemsave(vm, vm.qmp)
        send(vm.qmp, 'query-status')          # queued behind pmemsave
        other = QMP(vm.sock)
        other.negotiate()
        t0 = time.monotonic()
        st = other.cmd('query-status')['status']
        print('pmemsave: second client answered in %.1f ms'
              % ((time.monotonic() - t0) * 1000))
        assert st == 'running', st
        other.close()
        assert drain(rd, 32 << 20) == 32 << 20
        r = reply(vm.qmp)
        assert r == {'return': {}, 'id': 'pmemsave'}, r
        r = reply(vm.qmp)
        assert r['id'] == 'query-status' and 'return' in r, r
        assert vm.quit() == 0
    finally:
        vm.kill()


def test_quit_during_stalled_pmemsave():
    """quit while a pmemsave waits for its reader: exit 0, no hang."""
    vm = VM(ACCEL, ram='64M', test_range='1M,64M')
    try:
        rd = stalled_pmemsave(vm, vm.qmp)
        other = QMP(vm.sock)
        other.negotiate()
        other.cmd('quit')
        rc = vm.proc.wait(20)
        other.close()
        os.close(rd)
        if rc != 0:
            fail('exit status %d' % rc)
    finally:
        vm.kill()


def main():
    if ACCEL == 'kvm' and not have_kvm():
        print('no usable /dev/kvm: skipped')
        return 77
    tests = [v for k, v in sorted(globals().items()) if k.startswith('test_')]
    failed = 0
    for t in tests:
        try:
            t()
            print('ok   %s/%s' % (ACCEL, t.__name__))
        except Exception as e:  # report every case, then fail
            failed += 1
            print('FAIL %s/%s: %r' % (ACCEL, t.__name__, e))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
