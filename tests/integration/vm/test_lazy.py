#!/usr/bin/env python3
"""Lazy (postcopy-ram + mapped-ram) restore of a running guest into
mapram-vm: test_lazy.py kvm|thread.  Exit 77 (skip) for kvm without
/dev/kvm or without userfaultfd."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'lib'))
from mrtest import (VM, QMPError, check_guest_ram, fail, have_kvm,  # noqa: E402
                    mapram_bin, pmemsave, wait_for_serial)
from mrtest import set_caps as caps, wait_migrate  # noqa: E402

ACCEL = sys.argv[1] if len(sys.argv) > 1 else 'thread'
RAM = '150M'
RANGE = '1M,100M'
PAGE = 4096


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
        wait_migrate(src.qmp, ('completed',))
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


def restore(path, img, tmp, params=None, more_caps=(), log=None):
    """One lazy restore into ram of a running guest's image, checked as
    test_lazy checks it; returns query-migrate at completion and the
    VM's stderr."""
    dst = VM(ACCEL, ram=RAM, test_range=RANGE, backend='ram', log=log,
             extra=['-incoming', 'defer'])
    try:
        q = dst.qmp
        caps(q, ['mapped-ram', 'postcopy-ram', 'events'] + list(more_caps))
        if params:
            assert q.cmd('migrate-set-parameters', params) == {}
        assert q.cmd('migrate-incoming', {'uri': 'file:' + path,
                                          'exit-on-error': False}) == {}
        while True:
            st = q.wait_event('MIGRATION')['data']['status']
            if st == 'failed':
                fail('lazy load failed: %s' % q.cmd('query-migrate'))
            if st == 'completed':
                break
        info = q.cmd('query-migrate')
        assert info['ram']['x-lazy-remaining-bytes'] == 0, info
        assert q.cmd('stop') == {}
        q.wait_event('STOP')
        now = pmemsave(dst, 'dst', 0, 150 << 20)
        same_where_unwritten(img, now, 1 << 20, 100 << 20)
        bad = check_guest_ram(now, 1 << 20, 100 << 20)
        if bad:
            fail('RAM check failed at %s' % [hex(x) for x in bad[:10]])
        assert dst.quit() == 0
        return info['ram'], dst.stderr
    finally:
        dst.kill()


def test_fill_multifd(path, img, tmp):
    """The fill runs on the multifd channels (O_DIRECT where the file
    allows it), two of them."""
    for dio in (False, True):
        try:
            ram, _ = restore(path, img, tmp, {'multifd-channels': 2,
                                              'direct-io': dio,
                                              'x-lazy-working-set': False},
                             ['multifd'])
        except QMPError as e:
            if dio and 'O_DIRECT' in str(e):   # the file system has none
                print('skip lazy %s multifd fill with direct-io: %s' % (
                    ACCEL, e))
                continue
            raise
        assert ram['x-lazy-fill-channels'] == 2, ram
        assert ram['x-lazy-fill-bytes'] > 0, ram
        print('ok lazy %s multifd fill (direct-io %s): %d faults, fill %d '
              'MB/s, p50 %d us, p99 %d us' % (
                  ACCEL, dio, ram['x-lazy-faults'], ram['x-lazy-fill-mbps'],
                  ram['x-lazy-fault-p50-us'], ram['x-lazy-fault-p99-us']))
    ram, _ = restore(path, img, tmp, {'x-lazy-working-set': False})
    assert ram['x-lazy-fill-channels'] == 0, ram


def test_granule(path, img, tmp):
    """x-lazy-granule: powers of two from 64 KiB to 2 MiB are taken and
    used; anything else is refused with the parameter's message."""
    vm = VM(ACCEL, ram=RAM, test_range=RANGE, backend='ram',
            extra=['-incoming', 'defer'])
    try:
        for bad in (0, 32768, 196608, 4 << 20, 3 << 20):
            try:
                vm.qmp.cmd('migrate-set-parameters', {'x-lazy-granule': bad})
                fail('x-lazy-granule %d accepted' % bad)
            except QMPError as e:
                assert "Parameter 'x-lazy-granule' expects a power of two " \
                    "between 64 KiB and 2 MiB" in str(e), e
        got = vm.qmp.cmd('query-migrate-parameters')['x-lazy-granule']
        assert got == 1 << 20, got
    finally:
        vm.kill()
    for g in (64 << 10, 256 << 10, 2 << 20):
        ram, _ = restore(path, img, tmp, {'x-lazy-granule': g,
                                          'x-lazy-working-set': False})
        assert ram['x-lazy-granule'] == g, ram
        print('ok lazy %s granule %d KiB: %d faults, p50 %d us, p99 %d us' % (
            ACCEL, g >> 10, ram['x-lazy-faults'], ram['x-lazy-fault-p50-us'],
            ram['x-lazy-fault-p99-us']))


def read_wset(path):
    """(granule, [(block, index), ...]) of a sidecar (format/wset.h)."""
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == b'MRWSET01', data[:8]
    nblocks, granule = struct.unpack_from('<IQ', data, 12)
    n, = struct.unpack_from('<Q', data, 40)
    off = 48
    for _ in range(nblocks):
        nl, = struct.unpack_from('<H', data, off)
        off += 2 + nl + 8
    return granule, [struct.unpack_from('<II', data, off + 8 * i)
                     for i in range(n)]


def test_working_set(path, img, tmp):
    """The first restore records its demand faults in FILE.wset; the
    second prefetches them (before and right after the resume), so none
    of them faults again; a corrupt or stale sidecar is ignored with a
    warning and the restore is unchanged."""
    side = path + '.wset'
    if os.path.exists(side):
        os.unlink(side)
    first, _ = restore(path, img, tmp)
    _, rec1 = read_wset(side)
    assert len(rec1) > 0 and first['x-lazy-working-set'] == 0, first
    second, _ = restore(path, img, tmp)
    assert second['x-lazy-working-set'] == len(rec1), (second, len(rec1))
    assert second['x-lazy-prefetched'] > 0, second
    _, rec2 = read_wset(side)
    assert rec2[:len(rec1)] == rec1, 'the recorded order was not kept'
    # the whole working set (under 256 MiB) is in before the resume: none
    # of it can fault again.  How many other granules fault depends on
    # timing (the fill against the guest), so the counts are printed only.
    assert not set(rec2[len(rec1):]) & set(rec1), 'a prefetched granule ' \
        'faulted again'
    print('ok lazy %s working set: %d faults, then %d with %d granules '
          'prefetched' % (ACCEL, first['x-lazy-faults'],
                          second['x-lazy-faults'],
                          second['x-lazy-prefetched']))
    with open(side, 'r+b') as f:
        f.seek(60)
        b = f.read(1)
        f.seek(60)
        f.write(bytes([b[0] ^ 0x55]))
    log = os.path.join(tmp, 'vm.log')
    third, err = restore(path, img, tmp, log=log)
    assert third['x-lazy-working-set'] == 0, third
    assert 'working set %s ignored: working set: CRC mismatch' % side \
        in err, err
    stale = os.stat(path)
    os.utime(path, ns=(stale.st_atime_ns, stale.st_mtime_ns + 1000))
    fourth, err = restore(path, img, tmp, log=log)
    assert fourth['x-lazy-working-set'] == 0, fourth
    assert 'recorded for an older version of the file' in err, err
    print('ok lazy %s corrupt and stale working sets ignored' % ACCEL)


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
        test_fill_multifd(path, img, tmp)
        test_granule(path, img, tmp)
        test_working_set(path, img, tmp)


if __name__ == '__main__':
    main()
