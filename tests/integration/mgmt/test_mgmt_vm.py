#!/usr/bin/env python3
"""`mapram save` / `mapram restore` against mapram-vm (test_mgmt_vm.py
roundtrip-kvm|roundtrip-thread|spawn).

The same flow as the live QEMU interop tests: a running guest is saved
(paused, was_running recorded, fdset removed), a second mapram-vm started
with -incoming defer gets it back, and its RAM file equals the source's
frozen RAM byte for byte; the guest then keeps running its A-B program.
Skips (77) while mapram-vm lacks the commands the tool needs."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
from mrtest import (QMP, VM, check_guest_ram, have_kvm,  # noqa: E402
                    wait_for_serial)

NEEDED = ('migrate', 'migrate-incoming', 'query-memory-size-summary',
          'add-fd', 'remove-fd', 'query-fdsets', 'query-migrate')
SKIP = 77


def mapram(*args, expect_rc=None):
    cmd = [os.path.join(os.environ['MAPRAM_BUILD_DIR'], 'src', 'cli', 'mapram')]
    cmd += [str(a) for a in args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    print('$ %s\n-> %d\n%s%s' % (' '.join(cmd), res.returncode, res.stdout,
                                res.stderr))
    if expect_rc is not None and res.returncode != expect_rc:
        raise AssertionError('mapram exited %d: %s' % (res.returncode,
                                                       res.stderr.strip()))
    return res


def missing_commands(vm):
    have = {c['name'] for c in vm.qmp.cmd('query-commands')}
    return [c for c in NEEDED if c not in have]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def same(a, b):
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
        return fa.read() == fb.read()


def roundtrip(accel):
    if accel == 'kvm' and not have_kvm():
        print('SKIP: no usable /dev/kvm')
        return SKIP
    work = tempfile.mkdtemp(prefix='mapram-mgmt-')
    path = os.path.join(work, 'vm.sav')
    src = VM(accel)
    dst = None
    try:
        gone = missing_commands(src)
        if gone:
            print('SKIP: mapram-vm lacks %s' % ', '.join(gone))
            return SKIP
        wait_for_serial(src.serial)
        # both page-channel engines, one per accelerator run
        save_eng, load_eng = (('psync', 'io_uring') if accel == 'kvm'
                              else ('io_uring', 'psync'))
        res = mapram('save', '--qmp', src.sock, path, '--io-engine', 'aio')
        check(res.returncode == 2 and "--io-engine expects auto, psync or "
              "io_uring, got 'aio'" in res.stderr, 'bad --io-engine accepted')
        mapram('save', '--qmp', src.sock, path, '--channels', 2,
               '--io-engine', save_eng, expect_rc=0)
        check(src.qmp.cmd('query-migrate-parameters')['x-io-engine'] ==
              save_eng, 'x-io-engine not set by --io-engine')
        check(src.qmp.cmd('query-status')['running'] is False,
              'source still running after save')
        check(src.qmp.cmd('query-fdsets') == [], 'source fdset left')
        dst = VM(accel, extra=['-incoming', 'defer'])
        mapram('restore', '--qmp', dst.sock, path, '--paused',
               '--io-engine', load_eng, expect_rc=0)
        check(dst.qmp.cmd('query-migrate-parameters')['x-io-engine'] ==
              load_eng, 'x-io-engine not set on the destination')
        check(dst.qmp.cmd('query-status')['status'] == 'paused',
              'destination not paused')
        check(dst.qmp.cmd('query-fdsets') == [], 'destination fdset left')
        check(same(src.mem, dst.mem), 'guest RAM differs after restore')
        bad = check_guest_ram(dst.memory(dst.start, dst.end), dst.start,
                              dst.end, dst.start)
        check(not bad, 'RAM invariant broken at %s' % bad[:5])
        dst.qmp.cmd('cont')
        first = dst.counter()
        deadline = time.monotonic() + 20
        while dst.counter() == first:
            check(time.monotonic() < deadline, 'restored guest does not run')
            time.sleep(0.01)
        lazy_roundtrip(accel, path)
    finally:
        src.kill()
        if dst:
            dst.kill()
        subprocess.run(['rm', '-rf', work])


def lazy_roundtrip(accel, path):
    """restore --lazy --granule: the VM's x-lazy-granule, and FILE.wset
    written next to the file although the VM only got a descriptor."""
    if not os.path.exists('/dev/userfaultfd'):
        return
    res = mapram('restore', '--qmp', '/nonexistent', path, '--granule', '256K')
    check(res.returncode == 2, '--granule accepted without --lazy')
    dst = VM(accel, extra=['-incoming', 'defer'], backend='memfd')
    try:
        mapram('restore', '--qmp', dst.sock, path, '--lazy', '--granule',
               '256K', '--paused', expect_rc=0)
        info = dst.qmp.cmd('query-migrate')
        check(info['status'] == 'completed', 'lazy restore: %s' % info)
        check(info['ram']['x-lazy-granule'] == 256 << 10,
              'x-lazy-granule not set by --granule')
        check(os.path.exists(path + '.wset'), 'no working set written')
        os.unlink(path + '.wset')
    finally:
        dst.kill()
    dst = VM(accel, extra=['-incoming', 'defer'], backend='memfd')
    try:
        mapram('restore', '--qmp', dst.sock, path, '--lazy',
               '--no-working-set', '--paused', expect_rc=0)
        check(not os.path.exists(path + '.wset'),
              'working set written with --no-working-set')
    finally:
        dst.kill()


def spawn():
    """restore --spawn starts a mapram-vm of the right size by itself."""
    work = tempfile.mkdtemp(prefix='mapram-mgmt-')
    path = os.path.join(work, 'vm.sav')
    src = VM('thread')
    pid = None
    sock = ''
    try:
        gone = missing_commands(src)
        if gone:
            print('SKIP: mapram-vm lacks %s' % ', '.join(gone))
            return SKIP
        mapram('save', '--qmp', src.sock, path, expect_rc=0)
        res = mapram('restore', '--spawn', path, '--paused', expect_rc=0)
        m = re.search(r'mapram-vm \(pid (\d+)\) is reachable at (\S+)',
                      res.stdout)
        check(m, 'no pid/socket printed')
        pid = int(m.group(1))
        sock = m.group(2)
        qmp = QMP(sock)
        qmp.negotiate()
        check(qmp.cmd('query-status')['status'] == 'paused',
              'spawned VM not paused')
        dump = os.path.join(work, 'dump')
        qmp.cmd('pmemsave', {'val': src.start, 'size': src.end - src.start,
                             'filename': dump})
        qmp.close()
        with open(dump, 'rb') as f:
            check(f.read() == src.memory(src.start, src.end),
                  'spawned VM memory differs from the saved guest')
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            subprocess.run(['rm', '-rf', os.path.dirname(sock)])
        src.kill()
        subprocess.run(['rm', '-rf', work])


CASES = {'roundtrip-kvm': lambda: roundtrip('kvm'),
         'roundtrip-thread': lambda: roundtrip('thread'),
         'spawn': spawn}

if __name__ == '__main__':
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit('usage: test_mgmt_vm.py {%s}' % ','.join(CASES))
    sys.exit(CASES[sys.argv[1]]() or 0)
