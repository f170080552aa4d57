#!/usr/bin/env python3
"""Lazy (postcopy-ram + mapped-ram) restore of a running guest into
mapram-vm: test_lazy.py kvm|thread.  Exit 77 (skip) for kvm without
/dev/kvm or without userfaultfd."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'lib'))
from mrtest import (VM, QMPError, check_guest_ram, fail, have_kvm,  # noqa: E402
                    mapram_bin, pmemsave, wait_for_serial)

ACCEL = sys.argv[1] if len(sys.argv) > 1 else 'thread'
RAM = '150M'
RANGE = '1M,100M'
PAGE = 4096


def caps(q, names):
    q.cmd('migrate-set-capabilities', {'capabilities': [
        {'capability': n, 'state': True} for n in names]})


def wait_status(q, want, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = q.cmd('query-migrate')
        if info.get('status') in want:
            return info
        time.sleep(0.01)
    fail('query-migrate never reached %s: %s' % (want, info))


def save(tmp):
    """A running guest saved live (so the restore resumes it) with
    mapram-vm's trailer; returns the file and the source's RAM as saved."""
    path = os.path.join(tmp, 'image')
    src = VM(ACCEL, ram=RAM, test_range=RANGE)
    try:
        caps(src.qmp, ['mapped-ram'])
        src.qmp.cmd('migrate-set-parameters', {'max-bandwidth': 1000000000,
                                               'downtime-limit': 30000})
        wait_for_serial(src.serial)
        assert src.qmp.cmd('migrate', {'uri': 'file:' + path}) == {}
        wait_status(src.qmp, ('completed',))
        mem = pmemsave(src, 'src', 0, 150 << 20)
        assert src.quit() == 0
        return path, mem
    finally:
        src.kill()


def same_where_unwritten(img, now, start, end):
    """docs/test-guest.md: the guest writes the first byte of each page of
    [start, end) and its pass counter page; everything else is the image."""
    a, b = bytearray(img), bytearray(now)
    for addr in range(start, end, PAGE):
        a[addr] = b[addr] = 0
    a[0x5000:0x5000 + PAGE] = b[0x5000:0x5000 + PAGE] = bytes(PAGE)
    if a != b:
        diff = [i for i in range(0, len(a), PAGE)
                if a[i:i + PAGE] != b[i:i + PAGE]]
        fail('RAM differs from the image at pages %s' %
             [hex(x) for x in diff[:10]])


def lazy_vm(backend, tmp):
    kw = {}
    if backend == 'shm-file':   # tmpfs, with stale content to be dropped
        kw['mem_dir'] = tmp
        with open(os.path.join(tmp, 'mem'), 'wb') as f:
            f.write(b'\xee' * (150 << 20))
    elif backend != 'file':
        kw['backend'] = backend
    vm = VM(ACCEL, ram=RAM, test_range=RANGE, extra=['-incoming', 'defer'],
            **kw)
    caps(vm.qmp, ['mapped-ram', 'postcopy-ram', 'events'])
    return vm


def test_lazy(backend, path, img, tmp):
    dst = lazy_vm(backend, tmp)
    try:
        q = dst.qmp
        t0 = time.monotonic()
        assert q.cmd('migrate-incoming', {'uri': 'file:' + path,
                                          'exit-on-error': False}) == {}
        seen = []
        while 'postcopy-active' not in seen:
            seen.append(q.wait_event('MIGRATION')['data']['status'])
        t_run = time.monotonic() - t0
        try:
            q.cmd('migrate_cancel')
            fail('migrate_cancel accepted during the lazy phase')
        except QMPError as e:
            assert 'Postcopy' in str(e), e
        while seen[-1] != 'completed':
            seen.append(q.wait_event('MIGRATION')['data']['status'])
            if seen[-1] == 'failed':
                fail('lazy load failed: %s' % q.cmd('query-migrate'))
        assert seen == ['setup', 'active', 'postcopy-active', 'completed'], \
            seen
        info = q.cmd('query-migrate')
        assert info['status'] == 'completed', info
        assert info['ram']['x-lazy-remaining-bytes'] == 0, info
        c0 = int.from_bytes(pmemsave(dst, 'c0', 0x5000, 0x5008), 'little')
        deadline = time.monotonic() + 20
        while int.from_bytes(pmemsave(dst, 'c1', 0x5000, 0x5008),
                             'little') == c0:
            if time.monotonic() > deadline:
                fail('pass counter stuck after the lazy restore')
            time.sleep(0.01)
        assert q.cmd('stop') == {}
        q.wait_event('STOP')
        now = pmemsave(dst, 'dst', 0, 150 << 20)
        same_where_unwritten(img, now, 1 << 20, 100 << 20)
        bad = check_guest_ram(now, 1 << 20, 100 << 20)
        if bad:
            fail('RAM check failed at %s' % [hex(x) for x in bad[:10]])
        print('ok lazy %s %s: running after %.1f ms, %d faults' % (
            ACCEL, backend, t_run * 1e3, info['ram']['x-lazy-faults']))
        assert dst.quit() == 0
    finally:
        dst.kill()


def corrupt(path, out, block, offset):
    """A copy of the image with one byte flipped at `offset` of `block`'s
    pages area."""
    desc = json.loads(subprocess.run([mapram_bin(), 'inspect', '--json', path],
                                     check=True, capture_output=True).stdout)
    blk = [b for b in desc['ram']['blocks'] if b['name'] == block][0]
    shutil.copyfile(path, out)
    with open(out, 'r+b') as f:
        f.seek(blk['pages_offset'] + offset)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xff]))


def test_corrupt_extent(path, tmp):
    """Fail closed: the fill meets the bad extent; the guest is stopped,
    the migration fails with the checksum error, nothing is installed.
    The extent is in pc.bios, which the guest never touches, so its vCPU
    can park (docs/lazy-load.md, "mapram's lazy load": a vCPU asleep on
    the bad extent cannot)."""
    bad = os.path.join(tmp, 'bad')
    corrupt(path, bad, 'pc.bios', 0x1000 + 100)
    dst = lazy_vm('ram', tmp)
    try:
        q = dst.qmp
        assert q.cmd('migrate-incoming', {'uri': 'file:' + bad,
                                          'exit-on-error': False}) == {}
        seen = []
        while not seen or seen[-1] not in ('completed', 'failed'):
            seen.append(q.wait_event('MIGRATION')['data']['status'])
        assert seen == ['setup', 'active', 'postcopy-active', 'failed'], seen
        info = q.cmd('query-migrate')
        assert info['status'] == 'failed', info
        assert 'checksum mismatch' in info['error-desc'], info
        deadline = time.monotonic() + 20   # the fill thread stops the guest
        while q.cmd('query-status')['running']:
            if time.monotonic() > deadline:
                fail('guest still running after the failed lazy load')
            time.sleep(0.01)
        st = q.cmd('query-status')
        assert st == {'running': False, 'status': 'postmigrate'}, st
        print('ok lazy %s corrupt extent: %s' % (ACCEL, info['error-desc']))
    finally:
        dst.kill()


def main():
    if ACCEL == 'kvm' and not have_kvm():
        sys.exit(77)
    if not os.path.exists('/dev/userfaultfd'):
        sys.exit(77)
    with tempfile.TemporaryDirectory(prefix='mapram-lazy-', dir='/dev/shm') \
            as shm, tempfile.TemporaryDirectory(prefix='mapram-lazy-') as tmp:
        path, img = save(tmp)
        for backend in ('ram', 'memfd', 'shm-file'):
            test_lazy(backend, path, img, shm)
        test_corrupt_extent(path, tmp)


if __name__ == '__main__':
    main()
