#!/usr/bin/env python3
"""mapram-vm to mapram-vm over a socket (docs/migration.md, "Over a
socket"): a live and a paused migration over unix: and tcp:, RAM compared
and the guest alive afterwards, then the faults: nobody listening, the
destination dying mid-stream, migrate_cancel, a stranger that connects and
sends garbage, a destination that quits while it waits, multifd refused.

test_socket.py kvm|thread|cross.  Exit 77 when the accelerator is missing."""
import os
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
from mrtest import VM, fail, free_port, have_kvm, wait_for_serial  # noqa

MODE = sys.argv[1] if len(sys.argv) > 1 else 'thread'
SRC, DST = {'kvm': ('kvm', 'kvm'), 'thread': ('thread', 'thread'),
            'cross': ('kvm', 'thread')}[MODE]
RAM, RANGE = '64M', '1M,60M'
HANG = 120


def caps(q, **kv):
    lst = [{'capability': k.replace('_', '-'), 'state': v}
           for k, v in kv.items()]
    assert q.cmd('migrate-set-capabilities', {'capabilities': lst}) == {}


def wait_status(q, want, what, bad=('failed', 'cancelled')):
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        info = q.cmd('query-migrate')
        st = info.get('status')
        if st in want:
            return info
        if st in bad:
            fail('%s: %s: %s' % (what, st, info.get('error-desc')))
        time.sleep(0.005)
    fail('%s: still %s' % (what, st))


def address(kind, tmp, name):
    if kind == 'unix':
        return 'unix:' + os.path.join(tmp, name + '.sock')
    return 'tcp:127.0.0.1:%d' % free_port()


def multifd(q, channels):
    if channels:
        assert q.cmd('migrate-set-parameters',
                     {'multifd-channels': channels}) == {}
        caps(q, multifd=True)


def migrate(kind, live, tmp, channels=0):
    """Source (live or paused) to a -S destination, with `channels` multifd
    page sockets (0: none); RAM equal, then the destination runs."""
    uri = address(kind, tmp, 'mig')
    src = VM(SRC, ram=RAM, test_range=RANGE)
    dst = VM(DST, ram=RAM, test_range=RANGE,
             extra=['-incoming', 'defer', '-S'])
    try:
        caps(dst.qmp, events=True)
        multifd(src.qmp, channels)
        multifd(dst.qmp, channels)
        wait_for_serial(src.serial)
        if not live:
            assert src.qmp.cmd('stop') == {}
        assert dst.qmp.cmd('migrate-incoming', {'uri': uri}) == {}
        ev = dst.qmp.wait_event('MIGRATION')
        assert ev['data']['status'] == 'setup', ev
        # still waiting for the source: setup, and the monitor answers
        assert dst.qmp.cmd('query-migrate')['status'] == 'setup'
        assert src.qmp.cmd('migrate-set-parameters',
                           {'downtime-limit': 30000}) == {}
        assert src.qmp.cmd('migrate', {'uri': uri}) == {}
        info = wait_status(src.qmp, ('completed',), 'source')
        if info['ram']['total'] < 64 << 20:
            fail('ram.total %d' % info['ram']['total'])
        if live and info['ram'].get('dirty-sync-count', 2) < 1:
            fail('no dirty sync in a live migration: %r' % info['ram'])
        wait_status(dst.qmp, ('completed',), 'destination')
        assert src.qmp.cmd('query-status')['status'] == 'postmigrate'
        assert dst.qmp.cmd('query-status')['status'] == 'paused'
        size = os.path.getsize(src.mem)
        if src.memory(0, size) != dst.memory(0, size):
            fail('destination RAM differs from the source')
        before = dst.counter()
        assert dst.qmp.cmd('cont') == {}
        deadline = time.monotonic() + HANG
        while dst.counter() == before:
            if time.monotonic() > deadline:
                fail('the guest does not run on the destination')
            time.sleep(0.01)
        assert src.quit() == 0
        assert dst.quit() == 0
        print('ok %s %s, %d multifd channels (%s -> %s)' % (
            kind, 'live' if live else 'paused', channels, SRC, DST))
    finally:
        src.kill()
        dst.kill()


def source_fails(src, what, needle):
    info = wait_status(src.qmp, ('failed', 'cancelled'), what, bad=())
    desc = info.get('error-desc', '')
    if needle and needle not in desc:
        fail('%s: error-desc %r lacks %r' % (what, desc, needle))
    return info


def running_again(src, what):
    st = src.qmp.cmd('query-status')['status']
    if st != 'running':
        fail('%s: the source is %s, not running' % (what, st))


def nobody_listening(tmp):
    src = VM(SRC, ram=RAM, test_range=RANGE)
    try:
        wait_for_serial(src.serial)
        path = os.path.join(tmp, 'nobody.sock')
        assert src.qmp.cmd('migrate', {'uri': 'unix:' + path}) == {}
        source_fails(src, 'unix, nobody', "Failed to connect to '%s'" % path)
        running_again(src, 'unix, nobody')
        port = free_port()
        assert src.qmp.cmd('migrate',
                           {'uri': 'tcp:127.0.0.1:%d' % port}) == {}
        source_fails(src, 'tcp, nobody',
                     "Failed to connect to '127.0.0.1:%d'" % port)
        running_again(src, 'tcp, nobody')
        assert src.quit() == 0
    finally:
        src.kill()
    print('ok nobody listening: failed, the source runs on')


def slow_pair(kind, tmp, name, channels):
    """A destination listening and a source migrating to it at 4 MiB/s,
    so the test can act in the middle."""
    uri = address(kind, tmp, name)
    dst = VM(DST, ram=RAM, test_range=RANGE, extra=['-incoming', 'defer'])
    src = None
    try:
        multifd(dst.qmp, channels)
        src = VM(SRC, ram=RAM, test_range=RANGE)
        multifd(src.qmp, channels)
        wait_for_serial(src.serial)
        assert src.qmp.cmd('migrate-set-parameters',
                           {'max-bandwidth': 4 << 20}) == {}
        assert dst.qmp.cmd('migrate-incoming', {'uri': uri}) == {}
        assert src.qmp.cmd('migrate', {'uri': uri}) == {}
    except BaseException:
        dst.kill()
        if src:
            src.kill()
        raise
    return src, dst


def destination_dies(tmp, channels=0):
    src, dst = slow_pair('unix', tmp, 'dies', channels)
    try:
        wait_status(dst.qmp, ('active',), 'destination')
        dst.proc.kill()
        dst.proc.wait()
        source_fails(src, 'destination killed',
                     'closed the channel early' if channels else
                     'Unable to write to socket')
        running_again(src, 'destination killed')
        assert src.quit() == 0
    finally:
        src.kill()
        dst.kill()
    print('ok destination killed mid-stream (%d channels): failed, the '
          'source runs on' % channels)


def cancelled(tmp, channels=0):
    src, dst = slow_pair('tcp', tmp, 'cancel', channels)
    try:
        wait_status(src.qmp, ('active',), 'source')
        assert src.qmp.cmd('migrate_cancel') == {}
        info = source_fails(src, 'cancel', None)
        if info['status'] != 'cancelled':
            fail('cancel: %r' % info)
        running_again(src, 'cancel')
        # the destination saw the stream end in the middle: it fails and,
        # with exit-on-error (the default), exits saying why
        rc = dst.proc.wait(HANG)
        err = dst.proc.stderr.read().decode()
        if rc != 1 or ('truncated' not in err and 'multifd' not in err):
            fail('destination after cancel: rc %d, stderr %r' % (rc, err))
        assert src.quit() == 0
    finally:
        src.kill()
        dst.kill()
    print('ok migrate_cancel (%d channels): cancelled, the source runs on, '
          'the destination fails' % channels)


def stranger(tmp, channels=0):
    """Bytes that are not a migration: as the main socket (no multifd) it
    is not a stream; with multifd it is taken for a page socket whose
    handshake is wrong."""
    path = os.path.join(tmp, 'stranger.sock')
    dst = VM(DST, ram=RAM, test_range=RANGE, extra=['-incoming', 'defer'])
    multifd(dst.qmp, channels)
    want = ('multifd: received packet magic 47455420 expected 11223344'
            if channels else 'Not a migration stream')
    try:
        assert dst.qmp.cmd('migrate-incoming', {'uri': 'unix:' + path,
                                                'exit-on-error': False}) == {}
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        s.sendall(b'GET / HTTP/1.0\r\n\r\n'.ljust(64, b' '))
        s.close()
        info = wait_status(dst.qmp, ('failed',), 'stranger',
                           bad=('completed',))
        if want not in info.get('error-desc', ''):
            fail('stranger: %r' % info)
        assert dst.qmp.cmd('query-status')['status'] == 'inmigrate'
        assert dst.quit() == 0
    finally:
        dst.kill()
    print('ok garbage on the socket (%d channels): failed, the destination '
          'never ran' % channels)


def quit_while_waiting(tmp, channels=0):
    dst = VM(DST, ram=RAM, test_range=RANGE, extra=['-incoming', 'defer'])
    multifd(dst.qmp, channels)
    try:
        uri = address('tcp', tmp, 'wait')
        assert dst.qmp.cmd('migrate-incoming', {'uri': uri}) == {}
        assert dst.qmp.cmd('query-migrate')['status'] == 'setup'
        assert dst.quit() == 0
    finally:
        dst.kill()
    print('ok quit while waiting for the source (%d channels)' % channels)


def main():
    if 'kvm' in (SRC, DST) and not have_kvm():
        print('SKIP: no /dev/kvm')
        return 77
    tmp = tempfile.mkdtemp(prefix='mr-sock-')
    try:
        migrate('unix', True, tmp)
        migrate('tcp', False, tmp)
        migrate('tcp', True, tmp, channels=4)
        if MODE == 'cross':
            return 0
        migrate('unix', False, tmp)
        migrate('tcp', True, tmp)
        for n in (1, 2):
            migrate('unix', True, tmp, channels=n)
        migrate('unix', False, tmp, channels=4)
        nobody_listening(tmp)
        for n in (0, 2):
            destination_dies(tmp, n)
            cancelled(tmp, n)
            stranger(tmp, n)
            quit_while_waiting(tmp, n)
    finally:
        os.system('rm -rf ' + tmp)
    return 0


if __name__ == '__main__':
    sys.exit(main())
