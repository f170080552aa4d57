#!/usr/bin/env python3
"""Regenerate the seed corpus for fuzz_stream (tests/fuzz/corpus/stream/):
minimal synthetic streams of both RAM formats in several containers
(tests/interop/streamgen.py), and the heads of the QEMU 10.0.2 interop
files when they are available.  Keep every file a few KB.

usage: make_corpus.py [INTEROP_DIR_WITH_DECOMPRESSED_IMG_FILES]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'interop'))
import streamgen  # noqa: E402
from streamgen import Block, Flood, Stream  # noqa: E402
from synthetic import libvirt_prefix, mapram_prefix  # noqa: E402

OUT = os.path.join(HERE, 'corpus', 'stream')


def write(name, data):
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    tiny = [Block('mem', 1, [0])]
    two = [Block('mem', 2, [1]), Block('/rom@etc/acpi/rsdp', 1, [])]
    write('mr-min', Stream(blocks=tiny).build())
    write('mr-two-blocks', Stream(blocks=two).build())
    write('legacy-min', Stream(mapped_ram=False, blocks=tiny).build())
    write('legacy-two-blocks', Stream(mapped_ram=False, blocks=two).build())
    write('legacy-zero-pages',
          Stream(mapped_ram=False, blocks=[Block('mem', 3, [])]).build())
    write('mr-libvirt', Stream(blocks=tiny,
                               prefix=libvirt_prefix(False, data_len=100))
          .build())
    s = Stream(mapped_ram=False, blocks=tiny, prefix=bytes(4096)).build()
    write('legacy-mapram-header', mapram_prefix(0x454e4f44, len(s) - 4096) +
          s[4096:])
    write('mr-prefix', Stream(blocks=tiny, prefix=b'MGMT'.ljust(4096, b'-'))
          .build())
    # Floods past the walk's listing caps (sections, commands) and a run
    # of legacy ZERO records, for the bounded-memory paths.
    write('mr-many-parts',
          Flood(blocks=tiny).build_flood(middle=streamgen.empty_part() * 1030))
    write('mr-many-commands',
          Flood(blocks=tiny).build_flood(middle=streamgen.command() * 70))
    write('legacy-zero-run', Flood(mapped_ram=False, blocks=[
        Block('mem', 64, [])]).build_flood(middle=streamgen.legacy_zero_records(
            'mem', 64, 200, 7), in_part=True))
    if len(sys.argv) > 1:
        heads = {'mr-mf2.img': 4096, 'legacy.img': 12288,
                 'fdset-off4k-mr-mf2-dio.img': 8192}
        for name, n in heads.items():
            path = os.path.join(sys.argv[1], name)
            if os.path.exists(path):
                with open(path, 'rb') as f:
                    write('qemu-head-' + name[:-4], f.read(n))
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f'{len(os.listdir(OUT))} files, {total} bytes')


if __name__ == '__main__':
    main()
