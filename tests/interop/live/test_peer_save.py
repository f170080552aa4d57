#!/usr/bin/env python3
"""Live interop: `mapram save --transport socket` against real QEMU 10.

QEMU migrates with multifd over a UNIX socket to the tool, which writes
the file itself (docs/peer-save.md).  Every saved file must load into a
plain QEMU 10 with `migrate-incoming file:...,offset=` and mapped-ram
(RAM compared byte for byte), pass `mapram verify` (its checksum trailer),
and restore with `mapram restore`.  The live cases boot a guest that keeps
incrementing a word in each of 128 pages, so later passes re-send pages.
Faults: the VM state and query-fdsets are checked after each.
Usage: test_peer_save.py CASE  (meson runs one test per case).
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'lib'))
from mrtest import (Qemu, run_mapram, read_header, same_file, main,  # noqa: E402
                    mapram_bin, STATE_DONE, SKIP)

F_WAS_RUNNING, F_LIVE, F_DIRECT_IO, F_MULTIFD, F_MAPPED_RAM = 1, 2, 4, 8, 16
RAM = 64 << 20

# A 64 KiB firmware image instead of SeaBIOS: the reset vector (0xfff0)
# jumps to offset 0, where, in 16-bit real mode,
#   cli; for (;;) for (seg = 0x1000; seg < 0x9000; seg += 0x1000)
#            for (di = 0; di != 0x10000; di += 0x1000) ++*(u32 *)(seg:di);
# so 128 pages between 64 KiB and 576 KiB change all the time and the
# rest of guest RAM keeps its pattern.
DIRTIER = bytes.fromhex('fabb00108ec331ff2666ff0581c7001075f681c3001081fb'
                        '009072e8ebe3')


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_error(res, message):
    check(res.returncode == 1, "expected exit 1, got %d" % res.returncode)
    lines = res.stderr.strip().splitlines()
    check(lines and message in lines[-1],
          "expected error %r, got %r" % (message, res.stderr))


def dirtier_bios(workdir):
    path = os.path.join(workdir, 'dirtier.bin')
    if not os.path.exists(path):
        img = bytearray(DIRTIER.ljust(1 << 16, b'\xf4'))
        img[0xfff0:0xfff3] = b'\xe9\x0d\x00'     # jmp near 0x0000
        with open(path, 'wb') as f:
            f.write(img)
    return ['-bios', path]


def restore_args():
    """`--transport file` where restore has the option."""
    res = subprocess.run([mapram_bin(), 'restore', '--help'],
                         capture_output=True, text=True)
    return ['--transport', 'file'] if '--transport' in res.stdout else []


def plain_qemu_restore(dst, path):
    """QEMU 10's own loader, no mapram involved."""
    off = read_header(path)['stream_offset']
    q = dst.qmp
    q.cmd('migrate-set-capabilities', {'capabilities': [
        {'capability': 'multifd', 'state': True},
        {'capability': 'mapped-ram', 'state': True}]})
    q.cmd('migrate-incoming', {'uri': 'file:%s,offset=%d' % (path, off)})
    deadline = time.monotonic() + 60
    while True:
        st = q.cmd('query-migrate')
        if st.get('status') == 'completed':
            return
        check(st.get('status') != 'failed', 'QEMU restore failed: %r' % st)
        check(time.monotonic() < deadline, 'QEMU restore did not complete')
        time.sleep(0.05)


def check_file(path, channels, flags):
    h = read_header(path)
    check(h['state'] == STATE_DONE, 'header not DONE: %r' % h)
    check(h['stream_size'] == os.path.getsize(path) - h['stream_offset'],
          repr(h))
    check(h['channels'] == channels, repr(h))
    check(h['flags'] & ~F_DIRECT_IO == F_MULTIFD | F_MAPPED_RAM | flags,
          'flags 0x%x' % h['flags'])
    # bounded by the RAM: fixed offsets, however many passes
    check(os.path.getsize(path) < 4096 + RAM + (8 << 20),
          'file of %d bytes' % os.path.getsize(path))
    res = run_mapram('verify', path)
    check(res.returncode == 0 and 'match their CRC32C' in res.stdout,
          'verify: %s %s' % (res.stdout, res.stderr))


def wait_dirtying(src):
    """Until the boot sector runs: the word at 64 KiB keeps changing."""
    def word():
        with open(src.ram_path, 'rb') as f:
            f.seek(0x10000)
            return f.read(4)
    deadline = time.monotonic() + 60
    first = word()
    while word() == first:
        check(time.monotonic() < deadline, 'the guest never ran')
        time.sleep(0.05)
    a = word()
    time.sleep(0.1)
    check(word() != a, 'the guest stopped dirtying')


def roundtrip(workdir, channels, live):
    path = os.path.join(workdir, 'vm.sav')
    extra = dirtier_bios(workdir) if live else []
    with Qemu(workdir, 'src', prefill=True, paused=not live,
              extra=extra) as src, \
         Qemu(workdir, 'dst', incoming=True, extra=extra) as dst, \
         Qemu(workdir, 'dst2', incoming=True, extra=extra) as dst2:
        args = ['save', '--qmp', src.sock_path, path, '--channels', channels,
                '--transport', 'socket', '--json']
        if live:
            wait_dirtying(src)
            args.append('--live')
        res = run_mapram(*args, expect_rc=0)
        check('"event":"done"' in res.stdout, 'no JSON done line')
        check('"status":"completed"' in res.stdout, 'no final progress line')
        check(src.status() in ('paused', 'prelaunch', 'postmigrate'),
              'source: %s' % src.status())
        check(src.fdsets() == [], 'fdsets left: %r' % src.fdsets())
        info = src.qmp.cmd('query-migrate')
        check(info.get('status') == 'completed', repr(info))
        if live:
            passes = info['ram'].get('dirty-sync-count', 0)
            print('live: %d dirty sync passes' % passes)
            check(passes >= 2, 'no second pass: %r' % info)
        check_file(path, channels, F_LIVE | F_WAS_RUNNING if live else 0)
        plain_qemu_restore(dst, path)
        check(same_file(src.ram_path, dst.ram_path),
              'guest RAM differs after a plain QEMU restore')
        run_mapram('restore', '--qmp', dst2.sock_path, path, '--paused',
                   *restore_args(), expect_rc=0)
        check(same_file(src.ram_path, dst2.ram_path),
              'guest RAM differs after mapram restore')


def case_rt(channels, live):
    return lambda w: roundtrip(w, channels, live)


CASES = {
    'paused-1': case_rt(1, False),
    'paused-2': case_rt(2, False),
    'paused-4': case_rt(4, False),
    'live-1': case_rt(1, True),
    'live-2': case_rt(2, True),
    'live-4': case_rt(4, True),
}

if __name__ == '__main__':
    main(CASES)
