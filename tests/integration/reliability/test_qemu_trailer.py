#!/usr/bin/env python3
"""QEMU 10 ignores mapram-vm's checksum trailer (docs/file-format.md):
a file QEMU saved (through `mapram save`), with a trailer and footer of
the documented format appended after its VMDESCRIPTION, still restores
into a real QEMU byte for byte, and `mapram inspect` sees the trailer.
Usage: test_qemu_trailer.py trailer (exit 77 without QEMU)."""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
from mrtest import Qemu, crc32c, main, run_mapram, same_file  # noqa: E402


def append_trailer(path, stream_offset):
    """An empty trailer (no blocks, flag 0) and its footer."""
    end = os.path.getsize(path)
    t = b'MRCKSUM1' + struct.pack('<IIIIQ', 1, 0, 0, 0, stream_offset)
    t += struct.pack('<I', crc32c(t))
    f = b'MRCKEND1' + struct.pack('<QQ', end, len(t))
    f += struct.pack('<II', crc32c(f), 0)
    with open(path, 'ab') as out:
        out.write(t + f)
    return end


def case_trailer(workdir):
    path = os.path.join(workdir, 'vm.sav')
    with Qemu(workdir, 'src', prefill=True) as src, \
         Qemu(workdir, 'dst', incoming=True) as dst:
        # QEMU writes the file itself (the socket path adds a real trailer)
        run_mapram('save', '--qmp', src.sock_path, path, '--no-direct-io',
                   '--transport', 'file', expect_rc=0)
        end = append_trailer(path, 4096)
        res = run_mapram('inspect', '--json', path, expect_rc=0)
        ck = json.loads(res.stdout)['checksums']
        if not ck or ck['trailer_offset'] != end or ck['extents'] != 0:
            raise AssertionError('inspect does not see the trailer: %r' % ck)
        # and QEMU reads it itself: the trailer is there to be ignored
        run_mapram('restore', '--qmp', dst.sock_path, path, '--paused',
                   '--transport', 'file', expect_rc=0)
        if not same_file(src.ram_path, dst.ram_path):
            raise AssertionError('guest RAM differs after restore')


if __name__ == '__main__':
    sys.exit(main({'trailer': case_trailer}))
