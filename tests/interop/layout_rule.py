#!/usr/bin/env python3
"""One layout rule for verify and the loader (issue 16): a mapram-vm save
whose first block's bitmap is moved into that block's own pages (and whose
checksum trailer is cut off, so no CRC speaks first) is refused by `mapram
verify` and by a loading mapram-vm with the same message, and the guest
never runs.  Exit 77 without mapram-vm's needs."""
import json
import os
import re
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
from mrtest import VM, fail, mapram_bin, wait_for_serial  # noqa: E402

RULE = (r"expected page regions that do not overlap at offset 0x[0-9a-f]+, "
        r"found pages of 'pc\.ram' \[0x[0-9a-f]+, 0x[0-9a-f]+\) overlapping "
        r"the bitmap of 'pc\.ram'")


def vm(extra=()):
    return VM('thread', ram='64M', test_range='1M,60M', extra=extra)


def caps(q):
    q.cmd('migrate-set-capabilities', {'capabilities': [
        {'capability': c, 'state': True}
        for c in ('events', 'mapped-ram', 'multifd')]})
    q.cmd('migrate-set-parameters', {'multifd-channels': 2})


def wait_migrate(q, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        info = q.cmd('query-migrate')
        if info.get('status') in ('completed', 'failed', 'cancelled'):
            return info
        if time.monotonic() > deadline:
            fail('migration still %s' % info.get('status'))
        time.sleep(0.01)


def save(path):
    src = vm()
    try:
        wait_for_serial(src.serial)
        src.qmp.cmd('stop')
        caps(src.qmp)
        src.qmp.cmd('migrate', {'uri': 'file:' + path})
        if wait_migrate(src.qmp)['status'] != 'completed':
            fail('save failed')
    finally:
        src.kill()


def mapram(*args):
    res = subprocess.run([mapram_bin()] + list(args), capture_output=True,
                         text=True, timeout=60)
    print('$ mapram %s -> %d\n%s%s' % (' '.join(args), res.returncode,
                                       res.stdout, res.stderr))
    return res


def bitmap_into_own_pages(path):
    lay = json.loads(mapram('inspect', '--json', path).stdout)
    blk = lay['ram']['blocks'][0]
    if blk['name'] != 'pc.ram':
        fail('first block is %r' % blk['name'])
    os.truncate(path, lay['checksums']['trailer_offset'])
    with open(path, 'r+b') as f:
        f.seek(blk['header_offset'] + 12)
        f.write(struct.pack('>Q', blk['pages_offset'] + 0x10000))


def load(path, then):
    """Load path into a fresh `-incoming defer` mapram-vm and return
    then(dst, info) with the final query-migrate; the VM is killed after."""
    dst = vm(['-incoming', 'defer'])
    try:
        caps(dst.qmp)
        dst.qmp.cmd('migrate-incoming', {'uri': 'file:' + path,
                                         'exit-on-error': False})
        return then(dst, wait_migrate(dst.qmp))
    finally:
        dst.kill()


def have_vm():
    return os.path.exists(os.path.join(os.environ['MAPRAM_BUILD_DIR'], 'src',
                                       'vm', 'mapram-vm'))


def scratch(name):
    return os.path.join(os.environ.get('TMPDIR', '/var/tmp'),
                        '%s-%d' % (name, os.getpid()))


def refused(dst, info):
    if info['status'] != 'failed' or \
            not re.search(RULE, info.get('error-desc', '')):
        fail('loader: expected failed with the layout rule, got %r' % info)
    if dst.qmp.cmd('query-status')['running']:
        fail('the guest runs after a refused load')


def main():
    if not have_vm():
        return 77
    path = scratch('layout-rule') + '.sav'
    try:
        save(path)
        bitmap_into_own_pages(path)
        res = mapram('verify', path)
        if res.returncode != 1 or not re.search(RULE, res.stderr):
            fail('verify: expected the layout rule, got %r' % res.stderr)
        load(path, refused)
    finally:
        if os.path.exists(path):
            os.unlink(path)
    print('ok: verify and the loader refuse the same layout')
    return 0


if __name__ == '__main__':
    sys.exit(main())
