#!/usr/bin/env python3
"""Synthetic save files of both RAM formats in every container (raw,
unknown 4 KiB prefix, libvirt in both byte orders, mapram header, explicit
--offset): `mapram inspect --json` must describe them and `mapram extract`
must give exactly the pages streamgen put in (legacy: last write wins, a
final ZERO record leaves the page zero).  Incomplete images (libvirt
Part, mapram PART) are shown but fail with one plain line.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from streamgen import Block, Stream  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'lib'))
from mrtest import crc32c  # noqa: E402

BUILD = os.environ.get('MAPRAM_BUILD_DIR', '.')
MAPRAM = os.path.join(BUILD, 'src', 'cli', 'mapram')


def fail(msg):
    sys.exit('FAIL: ' + msg)


def libvirt_prefix(big_endian, magic=b'LibvirtQemudSave', data_len=4004):
    fmt = '>' if big_endian else '<'
    hdr = magic + struct.pack(fmt + '5I', 2, data_len, 1, 6, 0) + bytes(56)
    return hdr + b'<domain/>\0'.ljust(data_len, b'\0')


def mapram_prefix(state, stream_size):
    h = bytearray(512)
    h[0:8] = b'MAPRAMSV'
    struct.pack_into('<IIII', h, 8, 1, state, 4096, 0x18)
    struct.pack_into('<QQQQI', h, 24, 4096, stream_size, 1 << 20, 1763770000,
                     2)
    h[64:71] = b'guest-1'
    h[128:140] = b'mapram 0.1.0'
    h[160:171] = b'QEMU 10.0.2'
    struct.pack_into('<I', h, 60, crc32c(bytes(h)))
    return bytes(h) + bytes(4096 - 512)


def run(args):
    return subprocess.run([MAPRAM] + args, capture_output=True, text=True,
                          timeout=60)


def check(tmp, label, mapped_ram, prefix, kind, extra=(), incomplete=None):
    s = Stream(mapped_ram=mapped_ram, prefix=prefix)
    data = s.build()
    if kind == 'mapram':
        size = len(data) - 4096
        state = 0x454e4f44 if incomplete is None else 0x54524150
        data = mapram_prefix(state, size if incomplete is None else 0) + \
            data[4096:]
    path = os.path.join(tmp, label + '.img')
    with open(path, 'wb') as f:
        f.write(data)
    p = run(['inspect', '--json', *extra, path])
    want_rc = 0 if incomplete is None else 1
    if p.returncode != want_rc:
        fail(f'{label}: inspect exit {p.returncode}: {p.stderr}')
    if incomplete is not None and (len(p.stderr.splitlines()) != 1 or
                                   incomplete not in p.stderr):
        fail(f'{label}: expected one line with {incomplete!r}: {p.stderr!r}')
    m = json.loads(p.stdout)
    if m['container']['kind'] != kind or \
            m['container']['stream_offset'] != len(prefix):
        fail(f'{label}: container {m["container"]}')
    if m['stream']['ram_format'] != ('mapped-ram' if mapped_ram
                                     else 'legacy'):
        fail(f'{label}: ram_format {m["stream"]["ram_format"]}')
    if not m['complete'] or m['problems']:
        fail(f'{label}: complete={m["complete"]} problems={m["problems"]}')
    types = [x['type'] for x in m['sections']]
    if types != ['START', 'PART', 'END', 'FULL'] or \
            [c['name'] for c in m['commands']] != ['SWITCHOVER_START']:
        fail(f'{label}: sections {types}, commands {m["commands"]}')
    expected = s.expected_images()
    for b in m['ram']['blocks']:
        present = sum(1 for i in range(b['num_pages'])
                      if any(expected[b['name']][i * 4096:(i + 1) * 4096]))
        if b['pages_present'] != present:
            fail(f'{label}: {b["name"]} present {b["pages_present"]}, '
                 f'expected {present}')
    if incomplete is not None:
        return
    out = os.path.join(tmp, label + '.d')
    os.mkdir(out)
    p = run(['extract', *extra, path, '--all', '-d', out])
    if p.returncode:
        fail(f'{label}: extract: {p.stderr}')
    for name, img in expected.items():
        fn = os.path.join(out, name.lstrip('/').replace('/', '_') + '.img')
        if open(fn, 'rb').read() != img:
            fail(f'{label}: extracted {name} differs')
    one = os.path.join(tmp, label + '.mem')
    p = run(['extract', *extra, path, '--block', 'mem', '-o', one])
    if p.returncode or open(one, 'rb').read() != expected['mem']:
        fail(f'{label}: extract --block mem: {p.stderr}')
    p = run(['extract', *extra, path, '--block', 'mem', '-o', one])
    if p.returncode != 3 or 'use --force' not in p.stderr:
        fail(f'{label}: extract over an existing file: {p.stderr!r}')
    if run(['extract', *extra, path, '--block', 'mem', '-o', one,
            '--force']).returncode:
        fail(f'{label}: extract --force failed')
    print(f'{label}: ok')


def write_sparse(path, data):
    """Write data leaving every all-zero 4 KiB block as a hole."""
    with open(path, 'wb') as f:
        for off in range(0, len(data), 4096):
            chunk = data[off:off + 4096]
            if any(chunk):
                f.seek(off)
                f.write(chunk)
        f.truncate(len(data))


def check_allocation(tmp):
    s = Stream()
    path = os.path.join(tmp, 'sparse.img')
    write_sparse(path, s.build())
    m = json.loads(run(['inspect', '--json', path]).stdout)
    holes = os.stat(path).st_blocks * 512 < os.path.getsize(path)
    for b in m['ram']['blocks']:
        got, want = b['allocated_bytes'], b['pages_present'] * 4096
        if got is None:
            continue
        if holes and got != want:
            fail(f'sparse file: {b["name"]} allocated {got}, expected {want}')
        if not want <= got <= b['used_length']:
            fail(f'sparse file: {b["name"]} allocated {got} out of range')
    print('allocation of a sparse file: ok' if holes else
          'allocation: file system keeps no holes, range checked only')


def main():
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        for mr in (True, False):
            fmt = 'mr' if mr else 'legacy'
            check(tmp, fmt + '-raw', mr, b'', 'raw')
            check(tmp, fmt + '-prefix', mr, b'MGMT-HEADER'.ljust(4096, b'x'),
                  'unknown-prefix')
            check(tmp, fmt + '-explicit', mr, bytes(8192), 'explicit-offset',
                  extra=['--offset', '0x2000'])
            check(tmp, fmt + '-libvirt-le', mr, libvirt_prefix(False),
                  'libvirt')
            check(tmp, fmt + '-libvirt-be', mr, libvirt_prefix(True),
                  'libvirt')
            check(tmp, fmt + '-libvirt-part', mr,
                  libvirt_prefix(False, b'LibvirtQemudPart'), 'libvirt',
                  incomplete='incomplete image: the libvirt header says')
            check(tmp, fmt + '-mapram', mr, bytes(4096), 'mapram')
            check(tmp, fmt + '-mapram-part', mr, bytes(4096), 'mapram',
                  incomplete='the mapram header state is PART')
        p = run(['inspect'])
        if p.returncode != 2:
            fail(f'usage error gave exit {p.returncode}')
        p = run(['extract', 'x', '--all'])
        if p.returncode != 2:
            fail(f'extract usage error gave exit {p.returncode}')
        # Names can never climb out of the output directory.
        evil = Stream(blocks=[Block('/../../evil', 1, [0])])
        path = os.path.join(tmp, 'evil.img')
        with open(path, 'wb') as f:
            f.write(evil.build())
        out = os.path.join(tmp, 'evil.d')
        os.mkdir(out)
        p = run(['extract', path, '--all', '-d', out])
        if p.returncode or os.listdir(out) != ['evil.img']:
            fail(f'evil name: {p.stderr} {os.listdir(out)}')
        print('evil block name stays inside the directory: ok')
        # A block name that is not UTF-8 still gives valid JSON.
        odd = Stream(blocks=[Block(b'ram\xff\xfe', 1, [0])])
        path = os.path.join(tmp, 'odd.img')
        with open(path, 'wb') as f:
            f.write(odd.build())
        p = run(['inspect', '--json', path])
        if p.returncode or json.loads(p.stdout)['ram']['blocks'][0]['name'] \
                != 'ram\\xff\\xfe':
            fail(f'non-UTF-8 name: {p.returncode} {p.stdout[:300]!r}')
        print('non-UTF-8 block name: ok')
        # An unfinished save: PART header and a stream that stops early.
        s = Stream(prefix=bytes(4096))
        data = s.build()
        data = mapram_prefix(0x54524150, 0) + data[4096:s.offsets['part']]
        path = os.path.join(tmp, 'unfinished.img')
        with open(path, 'wb') as f:
            f.write(data)
        p = run(['inspect', path])
        lines = p.stderr.splitlines()
        if p.returncode != 1 or len(lines) != 1 or \
                'incomplete image' not in lines[0] or \
                'reading stopped: truncated' not in lines[0] or \
                'mem' not in p.stdout:
            fail(f'unfinished save: {p.returncode} {p.stderr!r}')
        print('unfinished save: ok')
        check_allocation(tmp)


if __name__ == '__main__':
    main()
