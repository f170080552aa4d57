#!/usr/bin/env python3
"""`mapram seal` on a bare QEMU 10 `file:` save (docs/seal.md): the sealed
file still restores into a real QEMU byte for byte (pmemsave of source and
destination), `verify` then checks every extent, and a flipped byte in a
present page is reported corrupt (exit 1) by verify and refused by
`mapram restore` before the VM is touched.
Usage: test_qemu_seal.py seal (exit 77 without QEMU)."""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
from mrtest import Qemu, main, run_mapram, same_file  # noqa: E402

MAPPED_RAM = [{'capability': 'mapped-ram', 'state': True}]


def wait_for(what, cond, timeout=60):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError('timed out waiting for ' + what)
        time.sleep(0.05)


def migrated(vm, what):
    def done():
        st = vm.qmp.cmd('query-migrate').get('status')
        if st == 'failed':
            raise AssertionError('QEMU %s failed' % what)
        return st == 'completed'
    wait_for(what, done)


def bare_save(src, path):
    src.qmp.cmd('migrate-set-capabilities', {'capabilities': MAPPED_RAM})
    src.qmp.cmd('migrate', {'uri': 'file:' + path})
    migrated(src, 'save')


def first_present_page(path):
    """File offset of guest RAM's first present page (the block of the
    memory backend "mem"; its bitmap is little-endian)."""
    res = run_mapram('inspect', '--json', path, expect_rc=0)
    block = [b for b in json.loads(res.stdout)['ram']['blocks']
             if b['name'] == 'mem'][0]
    with open(path, 'rb') as f:
        f.seek(block['bitmap_offset'])
        bitmap = f.read(block['bitmap_size'])
    for i, byte in enumerate(bitmap):
        if byte:
            bit = (byte & -byte).bit_length() - 1
            return block['pages_offset'] + (i * 8 + bit) * block['page_size']
    raise AssertionError('mem has no present page')


def case_seal(workdir):
    path = os.path.join(workdir, 'bare.sav')
    with Qemu(workdir, 'src', prefill=True) as src, \
         Qemu(workdir, 'dst', incoming=True) as dst:
        src.qmp.cmd('pmemsave', {'val': 0, 'size': src.ram_mib << 20,
                                 'filename': path + '.src.mem'})
        bare_save(src, path)
        before = os.path.getsize(path)
        res = run_mapram('verify', path, expect_rc=0)
        if 'data checksums are absent' not in res.stdout:
            raise AssertionError('an unsealed save claims checksums')
        res = run_mapram('seal', path, expect_rc=0)
        if 'sealed:' not in res.stdout or os.path.getsize(path) <= before:
            raise AssertionError('seal did not add a trailer')
        run_mapram('seal', path, expect_rc=4)
        res = run_mapram('verify', '--json', path, expect_rc=0)
        rep = json.loads(res.stdout)
        if not rep['data_checked'] or rep['extents'] < 64:
            raise AssertionError('verify did not check the extents: %r' % rep)

        dst.qmp.cmd('migrate-set-capabilities', {'capabilities': MAPPED_RAM})
        dst.qmp.cmd('migrate-incoming', {'uri': 'file:' + path})
        migrated(dst, 'restore')
        dst.qmp.cmd('pmemsave', {'val': 0, 'size': dst.ram_mib << 20,
                                 'filename': path + '.dst.mem'})
        if not same_file(path + '.src.mem', path + '.dst.mem'):
            raise AssertionError('guest memory differs after restoring the '
                                 'sealed file')

    at = first_present_page(path) + 123
    with open(path, 'r+b') as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))
    res = run_mapram('verify', path, expect_rc=1)
    if 'checksum mismatch in RAM block mem ' not in res.stderr:
        raise AssertionError('the flipped byte was not named: %r' % res.stderr)
    res = run_mapram('verify', '--json', path, expect_rc=1)
    if json.loads(res.stdout)['status'] != 'corrupt':
        raise AssertionError('verify --json does not say corrupt')
    with Qemu(workdir, 'dst2', incoming=True) as dst:
        res = run_mapram('restore', '--qmp', dst.sock_path, path, expect_rc=1)
        if 'checksum mismatch in RAM block mem ' not in res.stderr:
            raise AssertionError('restore did not name the bad extent: %r'
                                 % res.stderr)
        st = dst.qmp.cmd('query-status')['status']
        if st != 'inmigrate':
            raise AssertionError('a refused restore touched the VM: %s' % st)


if __name__ == '__main__':
    sys.exit(main({'seal': case_seal}))
