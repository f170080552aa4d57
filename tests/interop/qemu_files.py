#!/usr/bin/env python3
"""Interop: read the files QEMU 10.0.2 wrote (MAPRAM_SHARED_DIR/interop/
qemu-10.0.2) with `mapram inspect` and `mapram extract`.

For every *.img.zst except the RAM image: decompress (zstd -d) into the
build directory, check SHA256SUMS, run inspect (text and --json), and check
the JSON against the file itself (names, lengths, headers and bitmaps read
back independently here) and against the README's block tables where it
has them.  Extract every block; `mem` must equal the RAM image byte for
byte, and all files (legacy and mapped-ram alike) must give identical
blocks, since they saved the same guest.  Nothing here is specific to one
file name.
"""
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'lib'))
from mrtest import same_file  # noqa: E402

SHARED = os.environ.get('MAPRAM_SHARED_DIR', '/work/shared')
BUILD = os.environ['MAPRAM_BUILD_DIR']
VECTORS = os.path.join(SHARED, 'interop', 'qemu-10.0.2')
WORK = os.path.join(BUILD, 'tests', 'interop', 'qemu-10.0.2')
MAPRAM = os.path.join(BUILD, 'src', 'cli', 'mapram')
PAGE = 4096
# Extracted images and cut copies are scratch: on this file system,
# deleting freshly written large files can stall for many seconds, so they
# go to tmpfs when there is one.
SCRATCH_PARENT = '/dev/shm' if os.access('/dev/shm', os.W_OK) else BUILD
SCRATCH = None


def fail(msg):
    sys.exit('FAIL: ' + msg)


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def decompress_all():
    sums = {}
    with open(os.path.join(VECTORS, 'SHA256SUMS')) as f:
        for line in f:
            digest, name = line.split()
            sums[name.lstrip('*')] = digest
    os.makedirs(WORK, exist_ok=True)
    names = sorted(n[:-4] for n in os.listdir(VECTORS) if n.endswith('.zst'))
    for name in names:
        out = os.path.join(WORK, name)
        if not os.path.exists(out) or sha256(out) != sums.get(name):
            subprocess.run(['zstd', '-q', '-d', '-f',
                            os.path.join(VECTORS, name + '.zst'), '-o', out],
                           check=True)
        if name not in sums:
            fail(f'{name} is not listed in SHA256SUMS')
        if sha256(out) != sums[name]:
            fail(f'{name}: SHA-256 differs from SHA256SUMS')
    return names


def readme_tables():
    """'### FILE: ...' headings followed by a markdown table -> rows."""
    text = open(os.path.join(VECTORS, 'README.md')).read()
    tables = {}
    for m in re.finditer(r'^### (\S+):[^\n]*\n(.*?)(?=^### |\Z)', text,
                         re.M | re.S):
        rows = [ln for ln in m.group(2).splitlines() if ln.startswith('|')]
        if len(rows) < 3:
            continue
        head = [c.strip() for c in rows[0].strip('|').split('|')]
        body = [[c.strip() for c in r.strip('|').split('|')] for r in rows[2:]]
        tables[m.group(1)] = [dict(zip(head, r)) for r in body]
    return tables


def ram_image_name():
    text = open(os.path.join(VECTORS, 'README.md')).read()
    m = re.search(r'RAM image `([^`]+)`', text)
    return m.group(1) if m else 'ram-64M.img'


def inspect(path):
    text = subprocess.run([MAPRAM, 'inspect', path], capture_output=True,
                          text=True, timeout=120)
    js = subprocess.run([MAPRAM, 'inspect', '--json', path],
                        capture_output=True, text=True, timeout=120)
    for p in (text, js):
        if p.returncode != 0 or p.stderr:
            fail(f'inspect {path}: exit {p.returncode}, stderr {p.stderr!r}')
    return text.stdout, json.loads(js.stdout)


def check_against_file(path, m):
    """Re-read what the JSON claims straight from the file."""
    with open(path, 'rb') as f:
        data = f.read()
    off = m['container']['stream_offset']
    if data[off:off + 8] != b'QEVM\x00\x00\x00\x03':
        fail(f'{path}: no QEVM v3 at stream_offset {off:#x}')
    if m['error'] is not None or not m['complete']:
        fail(f'{path}: walk incomplete: {m["error"]}')
    ram = m['ram']
    if sum(b['used_length'] for b in ram['blocks']) != ram['total_bytes']:
        fail(f'{path}: block lengths do not add up to total_bytes')
    mapped = m['stream']['ram_format'] == 'mapped-ram'
    for b in ram['blocks']:
        name = b['name'].encode()
        e = b['entry_offset']
        if data[e] != len(name) or data[e + 1:e + 1 + len(name)] != name:
            fail(f'{path}: block name {b["name"]!r} not at {e:#x}')
        used = struct.unpack('>Q', data[e + 1 + len(name):e + 9 + len(name)])
        if used[0] != b['used_length']:
            fail(f'{path}: used_length of {b["name"]} differs in the file')
        if b['num_pages'] * PAGE != b['used_length'] or \
                b['pages_present'] + b['pages_absent'] != b['num_pages']:
            fail(f'{path}: page counts of {b["name"]} do not add up')
        if not mapped:
            continue
        h = b['header_offset']
        ver, psize, bm, po = struct.unpack('>IQQQ', data[h:h + 28])
        if (ver, psize, bm, po) != (1, PAGE, b['bitmap_offset'],
                                    b['pages_offset']):
            fail(f'{path}: mapped-ram header of {b["name"]} differs')
        if po % PAGE or h != e + 9 + len(name):
            fail(f'{path}: bad layout for {b["name"]}')
        bitmap = data[bm:bm + b['bitmap_size']]
        bits = sum(bin(x).count('1') for x in bitmap)
        if bits != b['pages_present'] or b['bitmap_size'] != \
                (b['num_pages'] + 63) // 64 * 8:
            fail(f'{path}: bitmap of {b["name"]} has {bits} bits set, JSON '
                 f'says {b["pages_present"]}')


def check_against_readme(name, m, tables):
    rows = tables.get(name)
    if rows is None:
        print(f'{name}: no README table, skipped that comparison')
        return
    blocks = {b['name']: b for b in m['ram']['blocks']}
    if sorted(blocks) != sorted(r['idstr'] for r in rows):
        fail(f'{name}: block names differ from the README')
    for r in rows:
        b = blocks[r['idstr']]
        if int(r['used_length'], 0) != b['used_length']:
            fail(f'{name}: {r["idstr"]} used_length differs from README')
        if 'pages_offset' in r:
            if int(r['pages_offset'], 0) != b['pages_offset'] or \
                    int(r['bitmap_offset'], 0) != b['bitmap_offset'] or \
                    int(r['bitmap bytes']) != b['bitmap_size']:
                fail(f'{name}: {r["idstr"]} offsets differ from README')
            present, total = (int(x) for x in
                              r['pages present / total'].split('/'))
            if (present, total) != (b['pages_present'], b['num_pages']):
                fail(f'{name}: {r["idstr"]} present pages differ from README')
        if 'page records' in r:
            if int(r['page records']) != b['page_records'] or \
                    int(r['zero-page records']) != b['zero_records']:
                fail(f'{name}: {r["idstr"]} record counts differ from README')


def nonzero_pages(path):
    n = 0
    zero = bytes(PAGE)
    with open(path, 'rb') as f:
        for page in iter(lambda: f.read(PAGE), b''):
            n += page != zero
    return n


def extract_all(name, path, m):
    out = os.path.join(SCRATCH, 'extract', name)
    os.makedirs(out)
    p = subprocess.run([MAPRAM, 'extract', path, '--all', '-d', out],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        fail(f'extract {name}: {p.stderr}')
    images = {}
    for b in m['ram']['blocks']:
        img = os.path.join(out, b['name'].lstrip('/').replace('/', '_') +
                           '.img')
        if os.path.getsize(img) != b['used_length']:
            fail(f'{name}: {img} is not used_length bytes')
        if nonzero_pages(img) != b['pages_present']:
            fail(f'{name}: {b["name"]} has {nonzero_pages(img)} non-zero '
                 f'pages, inspect says {b["pages_present"]} present')
        images[b['name']] = img
    return images


def self_test_compare(img):
    """The comparison must notice a single differing byte."""
    copy = img + '.flipped'
    with open(img, 'rb') as f:
        data = bytearray(f.read())
    data[len(data) // 2 + 123] ^= 1
    with open(copy, 'wb') as f:
        f.write(data)
    if same_file(img, copy):
        fail('byte comparison missed a flipped byte')
    os.unlink(copy)


def truncated_copies(name, path):
    """Real files cut short anywhere must fail with one line, no crash."""
    size = os.path.getsize(path)
    cut = os.path.join(SCRATCH, 'cut.img')
    for at in (0x30, 0x80, size // 2, size - 10):
        with open(path, 'rb') as src, open(cut, 'wb') as dst:
            done = 0
            while done < at:
                done += os.sendfile(dst.fileno(), src.fileno(), done,
                                    at - done)
        p = subprocess.run([MAPRAM, 'inspect', cut], capture_output=True,
                           text=True, timeout=120)
        if p.returncode != 1 or len(p.stderr.splitlines()) != 1 or \
                'offset 0x' not in p.stderr:
            fail(f'{name} cut at {at:#x}: exit {p.returncode}, '
                 f'stderr {p.stderr!r}')
    os.unlink(cut)


def main():
    if not os.path.isdir(VECTORS):
        print(f'no interop vectors at {VECTORS}')
        sys.exit(77)
    names = decompress_all()
    ram_name = ram_image_name()
    ram_img = os.path.join(WORK, ram_name)
    tables = readme_tables()
    extracted = {}
    for name in names:
        if name == ram_name:
            continue
        path = os.path.join(WORK, name)
        text, m = inspect(path)
        for b in m['ram']['blocks']:
            if b['name'] not in text:
                fail(f'{name}: text output lacks block {b["name"]}')
        check_against_file(path, m)
        check_against_readme(name, m, tables)
        extracted[name] = extract_all(name, path, m)
        if not same_file(extracted[name]['mem'], ram_img):
            fail(f'{name}: extracted mem differs from {ram_name}')
        print(f'{name}: {m["stream"]["ram_format"]}, '
              f'{len(m["ram"]["blocks"])} blocks, mem == {ram_name}')
    self_test_compare(extracted[sorted(extracted)[0]]['mem'])
    first = sorted(extracted)[0]
    for name in sorted(extracted)[1:]:
        if sorted(extracted[name]) != sorted(extracted[first]):
            fail(f'{name} and {first} have different blocks')
        for block, img in extracted[name].items():
            if not same_file(img, extracted[first][block]):
                fail(f'{block} differs between {name} and {first}')
    print(f'all {len(extracted)} files give identical blocks')
    for name in sorted(extracted):
        truncated_copies(name, os.path.join(WORK, name))
    print('truncated copies fail cleanly')


if __name__ == '__main__':
    SCRATCH = tempfile.mkdtemp(prefix='mapram-interop-', dir=SCRATCH_PARENT)
    try:
        main()
    finally:
        shutil.rmtree(SCRATCH)
