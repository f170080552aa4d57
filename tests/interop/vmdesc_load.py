#!/usr/bin/env python3
"""A loading mapram-vm does not build the VMDESCRIPTION (issue 16): a
mapram-vm save with its trailer cut off and its VMDESCRIPTION replaced by
one of 10 MiB (the original plus tiny values nobody reads) restores, and
the destination's peak RSS (VmHWM) grows by less than 64 MiB over the
same file with the original VMDESCRIPTION.  Exit 77 without mapram-vm."""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
from layout_rule import have_vm, load, mapram, save, scratch  # noqa: E402
from mrtest import fail  # noqa: E402

VMDESC_MAX = 10 << 20
BOUND = 64 << 20


def without_trailer(path, out, grow):
    """Copy without the trailer; with grow, a 10 MiB VMDESCRIPTION."""
    lay = json.loads(mapram('inspect', '--json', path).stdout)
    with open(path, 'rb') as f:
        data = f.read(lay['checksums']['trailer_offset'])
    at, n = lay['vmdesc']['offset'], lay['vmdesc']['length']
    desc = json.loads(data[at:at + n])
    desc.pop('mapram-checksums', None)
    text = json.dumps(desc, separators=(',', ':')).encode()
    if grow:
        head = text[:-1] + b',"junk":['
        count = (VMDESC_MAX - len(head) - 2) // 3
        text = head + b','.join([b'{}'] * count) + b']}'
    with open(out, 'wb') as f:
        f.write(data[:at - 5] + b'\x06' + struct.pack('>I', len(text)) +
                text)


def peak(dst, info):
    """VmHWM in bytes of a destination that loaded a file."""
    if info['status'] != 'completed':
        fail('restore: %r' % info)
    with open('/proc/%d/status' % dst.proc.pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    fail('no VmHWM')


def main():
    if not have_vm():
        return 77
    base = scratch('vmdesc-load')
    paths = [base + s for s in ('.sav', '-small.sav', '-huge.sav')]
    try:
        save(paths[0])
        without_trailer(paths[0], paths[1], False)
        without_trailer(paths[0], paths[2], True)
        small, huge = load(paths[1], peak), load(paths[2], peak)
        print('peak RSS: %.1f MiB with the original VMDESCRIPTION, %.1f MiB '
              'with 10 MiB' % (small / 2**20, huge / 2**20))
        if huge - small > BOUND:
            fail('a 10 MiB VMDESCRIPTION cost %.1f MiB in the loader'
                 % ((huge - small) / 2**20))
    finally:
        for p in paths:
            if os.path.exists(p):
                os.unlink(p)
    return 0


if __name__ == '__main__':
    sys.exit(main())
