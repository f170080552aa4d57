#!/usr/bin/env python3
"""Regenerate the seed corpus for fuzz_wset (tests/fuzz/corpus/wset/):
working-set sidecars (src/lib/format/wset.h) written here from the
format's description, valid ones and a few broken on purpose."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'corpus', 'wset')


def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def wset(blocks, entries, granule=1 << 20, size=123456789, mtime=42,
         version=1):
    body = b'MRWSET01' + struct.pack('<IIQQQQ', version, len(blocks), granule,
                                     size, mtime, len(entries))
    for name, length in blocks:
        body += struct.pack('<H', len(name)) + name + struct.pack('<Q', length)
    for blk, idx in entries:
        body += struct.pack('<II', blk, idx)
    return body + struct.pack('<I', crc32c(body))


def main():
    os.makedirs(OUT, exist_ok=True)
    blocks = [(b'pc.ram', 150 << 20), (b'pc.bios', 256 << 10)]
    files = {
        'two-blocks': wset(blocks, [(0, 5), (0, 6), (1, 0), (0, 149)]),
        'empty': wset(blocks, []),
        'small-granule': wset(blocks[:1], [(0, 2399), (0, 0)], granule=65536),
        'bad-crc': wset(blocks, [(0, 1)])[:-1] + b'\0',
        'bad-index': wset(blocks, [(1, 7)]),
        'bad-version': wset(blocks, [(0, 1)], version=2),
    }
    for name, data in files.items():
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
