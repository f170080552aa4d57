#!/usr/bin/env python3
"""No terminal escapes from a file reach the terminal
(test_inspect_text.py): a mapram header whose vm_name, vm_version and
tool_version carry ESC sequences, and a block name with one that ends up
in a `Problems:` line, through inspect, verify and extract; the text is
shown with '?' for each control byte, as block names always were."""
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'interop'))
from mrtest import crc32c, fail, mapram_bin  # noqa: E402
from streamgen import Block, Stream  # noqa: E402

STATE_DONE = 0x454e4f44
EVIL = 'e\x1b[2J'


def mapram_header(stream_size):
    h = bytearray(512)
    h[0:8] = b'MAPRAMSV'
    struct.pack_into('<IIII', h, 8, 1, STATE_DONE, 4096, 0x18)
    struct.pack_into('<QQQQI', h, 24, 4096, stream_size, 1 << 20,
                     1763770000, 2)
    for off, text in ((64, b'vm\x1b]0;owned\x07\x1b[31m'),
                      (128, b'mapram\x1b[8m0.1'), (160, b'QEMU\r\x1b[K10.0')):
        h[off:off + len(text)] = text
    struct.pack_into('<I', h, 60, crc32c(bytes(h)))
    return bytes(h) + bytes(4096 - 512)


def build():
    s = Stream(prefix=bytes(4096), blocks=[Block('mem', 4, [0, 1]),
                                           Block(EVIL, 1, [0])])
    data = bytearray(s.build())
    data[s.offsets['hdr:' + EVIL] + 28] |= 0x02   # a bit beyond the block
    return mapram_header(len(data) - 4096) + bytes(data[4096:])


def run(*args):
    cmd = [mapram_bin()] + list(args)
    res = subprocess.run(cmd, capture_output=True, timeout=30)
    print('$ %s\n-> %d\n%r\n%r' % (' '.join(cmd), res.returncode, res.stdout,
                                  res.stderr))
    for name, text in (('stdout', res.stdout), ('stderr', res.stderr)):
        if any(b < 0x20 and b not in b'\n' for b in text) or b'\x7f' in text:
            fail('%s %s: control bytes in %s' % (args[0], args[-1], name))
    return res


def main():
    work = tempfile.mkdtemp(prefix='mapram-text-')
    try:
        path = os.path.join(work, 'evil.img')
        with open(path, 'wb') as f:
            f.write(build())
        res = run('inspect', path)
        out = res.stdout.decode()
        want = ("vm 'vm?]0;owned??[31m' (QEMU??[K10.0), written by "
                "mapram?[8m0.1")
        if res.returncode != 0 or want not in out:
            fail('header line: expected %r in %r' % (want, out))
        problems = out.split('Problems:', 1)[1]
        if "bitmap of 'e?[2J' has" not in problems:
            fail('problem line: %r' % problems)
        run('verify', path)
        out = os.path.join(work, 'out')
        os.mkdir(out)
        run('extract', path, '--all', '-d', out)
    finally:
        subprocess.run(['rm', '-rf', work])


if __name__ == '__main__':
    main()
