#!/usr/bin/env python3
"""Regenerate the seed corpus for fuzz_multifd (tests/fuzz/corpus/multifd/):
small multifd channels in QEMU 10's layout (docs/multifd.md, "Multifd over
sockets"): handshake, SYNC, data packets with normal and zero pages."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   'corpus', 'multifd')
MAGIC, PAGES, PS = 0x11223344, 128, 4096


def handshake(cid):
    return struct.pack('>II16sB', MAGIC, 1, bytes(16), cid) + bytes(39)


def packet(num, block=b'', normal=(), zero=(), flags=0, alloc=PAGES):
    offs = list(normal) + list(zero)
    h = struct.pack('>IIIIII', MAGIC, 1, flags, alloc, len(normal),
                    len(normal) * PS)
    h += struct.pack('>QI', num, len(zero)) + bytes(28)
    h += block.ljust(256, b'\0')
    h += b''.join(struct.pack('>Q', o) for o in offs).ljust(8 * PAGES, b'\0')
    return h + b''.join(bytes([o >> 12 & 0xff]) * PS for o in normal)


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        'sync-only': handshake(0) + packet(0, flags=1, alloc=0),
        'one-page': handshake(1) + packet(0, flags=1, alloc=0) +
        packet(1, b'mem', [0x1000]),
        'zero-pages': handshake(2) + packet(3, b'pc.bios', [], [0, 0x3f000]),
        'mixed': handshake(3) + packet(4, b'mem', [0x2000, 0x5000], [0x3000])
        + packet(5, flags=1, alloc=0),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
