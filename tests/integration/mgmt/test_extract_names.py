#!/usr/bin/env python3
"""extract --all keeps every block (test_extract_names.py): blocks whose
names map to one file name ('a/b' and 'a_b') and legal 255-byte names
(two of them, differing only at the end) each get their own file, named
in the output, holding exactly that block; again with --force."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'interop'))
from mrtest import fail, mapram_bin  # noqa: E402
from streamgen import PAGE, Block, Stream, page_bytes  # noqa: E402

BLOCKS = [Block('a/b', 2, [0]), Block('a_b', 2, [1]),
          Block('x' * 255, 1, [0]), Block('x' * 254 + 'y', 1, [0]),
          Block('mem', 3, [0, 2])]


def image(no, blk):
    return b''.join(page_bytes(no, i) if i in blk.present else bytes(PAGE)
                    for i in range(blk.npages))


def extract(path, out, *extra):
    cmd = [mapram_bin(), 'extract', path, '--all', '-d', out] + list(extra)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    print('$ %s\n-> %d\n%s%s' % (' '.join(cmd), res.returncode, res.stdout,
                                res.stderr))
    if res.returncode != 0:
        fail('extract --all failed: %s' % res.stderr.strip())
    return res.stdout


def check_outputs(stdout, out):
    shown = {}
    for line in stdout.splitlines():
        fname, rest = line.split(': ', 1)
        shown[rest.split(', ')[0]] = fname
    if sorted(os.listdir(out)) != sorted(shown.values()) or \
            len(shown) != len(BLOCKS):
        fail('expected one file per block, got %r for %r'
             % (os.listdir(out), shown))
    for no, blk in enumerate(BLOCKS):
        fname = shown.get(blk.name.decode())
        if not fname or len(fname.encode()) > 255:
            fail('block %r: file %r' % (blk.name[:20], fname))
        with open(os.path.join(out, fname), 'rb') as f:
            if f.read() != image(no, blk):
                fail('%s does not hold block %r' % (fname, blk.name[:20]))


def main():
    work = tempfile.mkdtemp(prefix='mapram-names-')
    try:
        path = os.path.join(work, 'names.img')
        with open(path, 'wb') as f:
            f.write(Stream(blocks=BLOCKS).build())
        out = os.path.join(work, 'out')
        os.mkdir(out)
        check_outputs(extract(path, out), out)
        check_outputs(extract(path, out, '--force'), out)
    finally:
        subprocess.run(['rm', '-rf', work])


if __name__ == '__main__':
    main()
