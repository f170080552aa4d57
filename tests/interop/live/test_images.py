#!/usr/bin/env python3
"""`mapram restore` and `inspect` of files mapram did not write, with real
QEMU 10: bare `file:` saves (legacy, mapped-ram at an offset), libvirt
images built here (92-byte header, domain XML, QEMU's stream after them;
raw, sparse, compressed, Part), and a multi-pass legacy live save.
Guest RAM is compared byte for byte with the source's.
Usage: test_images.py CASE  (meson runs one test per case).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'lib'))
from mrtest import Qemu, run_mapram, same_file, main, SKIP  # noqa: E402

XML = ("<domain type='kvm'>\n  <name>imgtest</name>\n"
       "  <memory unit='KiB'>65536</memory>\n</domain>\n")
COOKIE = "<qemu-migration><name>imgtest</name></qemu-migration>\n"
FORMATS = {'raw': 0, 'gzip': 1, 'bzip2': 2, 'xz': 3, 'lzop': 4, 'zstd': 5,
           'sparse': 6}


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def qemu_save(src, path, mapped_ram=False, offset=0, bandwidth=None):
    """`migrate file:PATH,offset=N` from the test's own monitor."""
    src.qmp.cmd('migrate-set-capabilities', {'capabilities': [
        {'capability': 'mapped-ram', 'state': mapped_ram}]})
    if bandwidth:
        src.qmp.cmd('migrate-set-parameters', {'max-bandwidth': bandwidth})
    uri = 'file:%s' % path + (',offset=%d' % offset if offset else '')
    src.qmp.cmd('migrate', {'uri': uri})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = src.qmp.cmd('query-migrate').get('status')
        if st == 'completed':
            return
        check(st not in ('failed', 'cancelled'), 'save %s' % st)
        time.sleep(0.05)
    raise AssertionError('save did not finish')


def libvirt_header(magic, data_len, was_running, fmt, cookie_offset):
    return (magic + struct.pack('<5I', 2, data_len, was_running, fmt,
                                cookie_offset) + bytes(56))


def data_area(data_len):
    """XML, then the cookie at 4 KiB, NUL padded (libvirt pads too)."""
    area = bytearray(data_len)
    area[:len(XML)] = XML.encode()
    area[4096:4096 + len(COOKIE)] = COOKIE.encode()
    return bytes(area)


def put_header(path, data_len, was_running=0, fmt=0,
               magic=b'LibvirtQemudSave'):
    """Write header + data area over the first 92 + data_len bytes."""
    with open(path, 'r+b') as f:
        f.write(libvirt_header(magic, data_len, was_running, fmt, 4096))
        f.write(data_area(data_len))


def restore_and_compare(workdir, src, path, *args):
    with Qemu(workdir, 'dst', incoming=True) as dst:
        run_mapram('restore', '--qmp', dst.sock_path, path, *args,
                   expect_rc=0)
        check(dst.status() in ('paused', 'prelaunch'),
              'destination state: %s' % dst.status())
        check(dst.fdsets() == [], 'fdsets left: %r' % dst.fdsets())
        check(same_file(src.ram_path, dst.ram_path),
              'guest RAM differs after restore')


def case_bare_legacy(workdir):
    path = os.path.join(workdir, 'bare.sav')
    with Qemu(workdir, 'src', prefill=True) as src:
        qemu_save(src, path)
        run_mapram('inspect', path, expect_rc=0)
        restore_and_compare(workdir, src, path, '--paused')


def case_bare_mapped_ram_offset(workdir):
    path = os.path.join(workdir, 'bare-mr.sav')
    with Qemu(workdir, 'src', prefill=True) as src:
        qemu_save(src, path, mapped_ram=True, offset=0x12345)
        restore_and_compare(workdir, src, path, '--paused',
                            '--offset', '0x12345')


def libvirt_case(workdir, mapped_ram):
    path = os.path.join(workdir, 'lv.img')
    data_len = 0x11921 - 92         # the offset of a real libvirt image
    with Qemu(workdir, 'src', prefill=True) as src:
        qemu_save(src, path, mapped_ram=mapped_ram, offset=92 + data_len)
        put_header(path, data_len, fmt=6 if mapped_ram else 0)
        res = run_mapram('inspect', '--json', path, expect_rc=0)
        lv = json.loads(res.stdout)['container']['libvirt']
        check(lv['magic'] == 'LibvirtQemudSave' and lv['version'] == 2,
              repr(lv))
        check(lv['xml_len'] == len(XML) and lv['cookie_len'] == len(COOKIE),
              repr(lv))
        check(lv['format_name'] == ('sparse' if mapped_ram else 'raw'),
              repr(lv))
        res = run_mapram('inspect', '--xml', path, expect_rc=0)
        check(res.stdout == XML, 'inspect --xml: %r' % res.stdout)
        # was_running 0: the destination stays paused without --paused
        restore_and_compare(workdir, src, path)


def case_libvirt_raw(workdir):
    libvirt_case(workdir, False)


def case_libvirt_sparse(workdir):
    libvirt_case(workdir, True)


def case_libvirt_compressed(workdir):
    tool = 'zstd' if shutil.which('zstd') else 'gzip'
    if not shutil.which(tool):
        print('SKIP: neither zstd nor gzip installed')
        return SKIP
    stream = os.path.join(workdir, 'stream')
    path = os.path.join(workdir, 'lv-%s.img' % tool)
    data_len = 0x10000 - 92
    with Qemu(workdir, 'src', prefill=True) as src:
        qemu_save(src, stream)
        with open(path, 'wb') as out:
            out.write(libvirt_header(b'LibvirtQemudSave', data_len, 1,
                                     FORMATS[tool], 4096))
            out.write(data_area(data_len))
            out.flush()
            subprocess.run([tool, '-c', stream], stdout=out, check=True)
        res = run_mapram('inspect', path, expect_rc=63)
        check('%s-compressed' % tool in res.stderr, res.stderr)
        run_mapram('inspect', '--xml', path, expect_rc=0)
        # was_running 1, overridden by --paused to compare RAM
        restore_and_compare(workdir, src, path, '--paused')
        # a tool that is missing is named
        env_path = os.environ['PATH']
        os.environ['PATH'] = workdir
        try:
            with Qemu(workdir, 'dst2', incoming=True) as dst:
                res = run_mapram('restore', '--qmp', dst.sock_path, path,
                                 expect_rc=1)
                check("needs the '%s' tool" % tool in res.stderr, res.stderr)
        finally:
            os.environ['PATH'] = env_path


def case_libvirt_was_running(workdir):
    path = os.path.join(workdir, 'lv-run.img')
    data_len = 0x2000 - 92
    with Qemu(workdir, 'src', prefill=True) as src:
        qemu_save(src, path, offset=92 + data_len)
        put_header(path, data_len, was_running=1)
        with Qemu(workdir, 'dst', incoming=True) as dst:
            run_mapram('restore', '--qmp', dst.sock_path, path, expect_rc=0)
            check(dst.status() == 'running', 'state: %s' % dst.status())


def case_libvirt_part(workdir):
    path = os.path.join(workdir, 'lv-part.img')
    data_len = 0x2000 - 92
    with Qemu(workdir, 'src', prefill=True) as src:
        qemu_save(src, path, offset=92 + data_len)
    put_header(path, data_len, magic=b'LibvirtQemudPart')
    with Qemu(workdir, 'dst', incoming=True) as dst:
        res = run_mapram('restore', '--qmp', dst.sock_path, path,
                         expect_rc=1)
        check('incomplete libvirt image (LibvirtQemudPart)' in res.stderr,
              res.stderr)
        check(dst.status() == 'inmigrate', 'state: %s' % dst.status())


def case_multipass_legacy(workdir):
    """A running guest saved slowly: several passes, later PART sections
    that start with CONTINUE; inspect, extract and restore it."""
    path = os.path.join(workdir, 'live.sav')
    out = os.path.join(workdir, 'out')
    with Qemu(workdir, 'src', prefill=True, paused=False) as src:
        qemu_save(src, path, bandwidth=256 << 20)
        res = run_mapram('inspect', '--json', path, expect_rc=0)
        model = json.loads(res.stdout)
        parts = [s for s in model.get('sections', [])
                 if s.get('type') in ('PART', 'part', 2)]
        print('PART sections: %d' % len(parts))
        run_mapram('extract', path, '--block', 'mem', '-o', out, expect_rc=0)
        check(same_file(out, src.ram_path),
              'extracted RAM differs from the source')
        restore_and_compare(workdir, src, path, '--paused')


CASES = {
    'bare-legacy': case_bare_legacy,
    'bare-mapped-ram-offset': case_bare_mapped_ram_offset,
    'libvirt-raw': case_libvirt_raw,
    'libvirt-sparse': case_libvirt_sparse,
    'libvirt-compressed': case_libvirt_compressed,
    'libvirt-was-running': case_libvirt_was_running,
    'libvirt-part': case_libvirt_part,
    'multipass-legacy': case_multipass_legacy,
}

if __name__ == '__main__':
    sys.exit(main(CASES))
