#!/usr/bin/env python3
"""Faults and damaged files against real mapram-vm processes
(docs/reliability.md).  test_reliability.py CASE [FAULT_BUILD]

corrupt   single bytes flipped in the header, the stream, the bitmap, the
          page data and the checksum trailer, and truncations: `mapram
          verify` names the problem, `mapram restore` refuses, the
          destination never runs the guest and reports the error through
          query-migrate.
durable   a raw save (plain QMP migrate) cut before its last write is
          refused by the loader and by verify.
enospc    a save into a small tmpfs: mapram save refuses up front; a raw
          migrate fails mid-save with ENOSPC; the source keeps running.
eio       (fault builds) EIO on a page write and on a page read.
kill      SIGKILL of the source mid-save and of the destination
          mid-restore: nothing half-written ever restores.
cancel    migrate_cancel at varying moments, then a good save restores
          byte for byte.
Small guests (64 MiB, thread vCPU); exit 77 when something needed is
missing."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
from mrtest import VM, QMPError, fail, wait_for_serial  # noqa: E402

SKIP = 77
RAM, RANGE = '64M', '1M,60M'
MAPRAM = os.path.join(os.environ['MAPRAM_BUILD_DIR'], 'src', 'cli', 'mapram')
FAULT_BUILD = len(sys.argv) > 2 and sys.argv[2] == '1'
INCOMPLETE_PART = ('incomplete image: the mapram header state is PART (the '
                   'save never finished)')
STREAM_BAD = (r'stream checksum mismatch: the stream records, bitmaps or '
              r'device state differ from what was saved \(expected '
              r'0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)')
NO_TRAILER = ('incomplete file: its VMDESCRIPTION announces a checksum '
              'trailer, but the file ends without one (the save did not '
              'finish)')


def mapram(*args, rc=None, env=None):
    cmd = [MAPRAM] + [str(a) for a in args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                         env=env)
    print('$ %s\n-> %d\n%s%s' % (' '.join(cmd), res.returncode, res.stdout,
                                res.stderr), flush=True)
    if rc is not None and res.returncode != rc:
        fail('mapram %s exited %d, expected %d: %s'
             % (args[0], res.returncode, rc, res.stderr.strip()))
    return res


def vm(extra=(), env=None, prefill=None):
    old = dict(os.environ)
    if env:
        os.environ.update(env)
    try:
        return VM('thread', ram=RAM, test_range=RANGE, extra=extra,
                  prefill=prefill)
    finally:
        os.environ.clear()
        os.environ.update(old)


def fd_count(v):
    return len(os.listdir('/proc/%d/fd' % v.proc.pid))


def check_fds(v, base, what):
    """The VM holds no more descriptors than before (closing is async
    for a moment after a failure)."""
    deadline = time.monotonic() + 5
    while fd_count(v) > base:
        if time.monotonic() > deadline:
            fail('%s: mapram-vm holds %d descriptors, %d before'
                 % (what, fd_count(v), base))
        time.sleep(0.01)


def finish(v, what):
    """Quit over QMP: exit status 0, and in the ASan build no leak report
    (LeakSanitizer runs at exit and makes the status non-zero)."""
    rc = v.quit()
    if rc != 0 or 'Sanitizer' in v.stderr:
        fail('%s: mapram-vm exited %d: %s' % (what, rc, v.stderr[-2000:]))


def wait_migrate(q, done=('completed', 'failed', 'cancelled'), timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        info = q.cmd('query-migrate')
        if info.get('status') in done:
            return info
        if time.monotonic() > deadline:
            fail('migration still %s' % info.get('status'))
        time.sleep(0.01)


def saw_event(q, status):
    """A MIGRATION event with this status reached the client."""
    try:
        q.cmd('query-status')       # collects events sent so far
    except QMPError:
        pass
    return any(e['event'] == 'MIGRATION' and
               e.get('data', {}).get('status') == status for e in q.events)


def mapped_ram_caps(q, channels=2):
    caps = [{'capability': c, 'state': True}
            for c in ('events', 'mapped-ram', 'multifd')]
    q.cmd('migrate-set-capabilities', {'capabilities': caps})
    q.cmd('migrate-set-parameters', {'multifd-channels': channels})


def layout(path):
    res = mapram('inspect', '--json', path, rc=0)
    return json.loads(res.stdout)


def flip(src, dst, offset, mask=0x01):
    shutil.copyfile(src, dst)
    with open(dst, 'r+b') as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ mask]))


def check_one_line(res, pattern, what):
    """Exit 1 and exactly one error line (progress lines aside)."""
    lines = [ln for ln in res.stderr.splitlines()
             if not re.match(r'(save|restore): ', ln)]
    err = '\n'.join(lines)
    if res.returncode != 1 or len(lines) != 1 or not re.search(pattern, err):
        fail('%s: expected exit 1 and one line matching %r, got %d: %r'
             % (what, pattern, res.returncode, err))


def restore_refused(path, pattern, what):
    """A fresh destination refuses the file: the tool says why, the guest
    never ran (status is not running), query-migrate has the error."""
    dst = vm(['-incoming', 'defer'])
    try:
        res = mapram('restore', '--qmp', dst.sock, path)
        check_one_line(res, pattern, 'restore ' + what)
        st = dst.qmp.cmd('query-status')
        if st['running'] or st['status'] not in ('inmigrate', 'paused'):
            fail('%s: destination status %r after a refused restore'
                 % (what, st))
        info = dst.qmp.cmd('query-migrate')
        if info.get('status') == 'failed' and \
                not re.search(pattern, info.get('error-desc', '')):
            fail('%s: query-migrate error-desc %r does not match %r'
                 % (what, info.get('error-desc'), pattern))
        if dst.proc.poll() is not None:
            fail('%s: the destination died' % what)
        finish(dst, what)
    finally:
        dst.kill()


def save_good(work, name='good.sav', running=True, prefill=None):
    path = os.path.join(work, name)
    src = vm(prefill=prefill)
    try:
        wait_for_serial(src.serial)
        mapram('save', '--qmp', src.sock, path, '--channels', 2, rc=0)
        mem = src.memory(src.start, src.end)
    finally:
        src.kill()
    return path, mem


def restore_equal(path, mem):
    dst = vm(['-incoming', 'defer'])
    try:
        mapram('restore', '--qmp', dst.sock, path, '--paused', rc=0)
        if dst.memory(dst.start, dst.end) != mem:
            fail('restored memory differs from the saved guest')
    finally:
        dst.kill()


# ---- cases ---------------------------------------------------------------

def case_corrupt(work):
    good, mem = save_good(work)
    mapram('verify', good, rc=0)
    lay = layout(good)
    ram = lay['ram']['blocks'][0]
    so = lay['container']['stream_offset']
    trailer = lay['checksums']['trailer_offset']
    page = ram['pages_offset'] + 0x123456
    cases = [
        ('header', 100, r'expected mapram header CRC32C'),
        ('stream', so + 20, STREAM_BAD),
        ('bitmap', ram['bitmap_offset'] + 300, STREAM_BAD),
        ('devices', lay['eof_offset'] - 40, STREAM_BAD),
        ('page', page,
         r'checksum mismatch in RAM block pc\.ram extent 1 \(file offset '
         r'0x200000\): expected 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}'),
        ('trailer', trailer + 30,
         r'checksum trailer: its own CRC32C does not match'),
    ]
    for what, off, pattern in cases:
        bad = os.path.join(work, what + '.sav')
        flip(good, bad, off, 0x10)
        check_one_line(mapram('verify', bad), pattern, 'verify ' + what)
        restore_refused(bad, pattern, what)
        os.unlink(bad)
    # truncations: in the pages, just before the trailer, one byte short
    size = os.path.getsize(good)
    for what, cut in (('half', size // 2), ('no-trailer', trailer),
                      ('last-byte', size - 1)):
        bad = os.path.join(work, 'cut-%s.sav' % what)
        shutil.copyfile(good, bad)
        os.truncate(bad, cut)
        check_one_line(mapram('verify', bad), r'truncated',
                       'verify cut ' + what)
        restore_refused(bad, r'truncated', 'cut ' + what)
        os.unlink(bad)
    # the original is untouched and still restores byte for byte
    mapram('verify', good, rc=0)
    restore_equal(good, mem)


def raw_save(work, name, channels=2):
    """A plain QMP save of a paused guest, no mapram header."""
    path = os.path.join(work, name)
    src = vm()
    try:
        wait_for_serial(src.serial)
        src.qmp.cmd('stop')
        mapped_ram_caps(src.qmp, channels)
        src.qmp.cmd('migrate', {'uri': 'file:' + path})
        info = wait_migrate(src.qmp)
        if info['status'] != 'completed':
            fail('raw save: %r' % info)
    finally:
        src.kill()
    return path


def raw_restore(path, pattern):
    """migrate-incoming over QMP: failed with error-desc matching."""
    dst = vm(['-incoming', 'defer'])
    try:
        mapped_ram_caps(dst.qmp)
        dst.qmp.cmd('migrate-incoming', {'uri': 'file:' + path,
                                         'exit-on-error': False})
        info = wait_migrate(dst.qmp)
        st = dst.qmp.cmd('query-status')
        if pattern is None:
            if info['status'] != 'completed':
                fail('raw restore of a good file: %r' % info)
            return
        if info['status'] != 'failed' or \
                not re.search(pattern, info.get('error-desc', '')):
            fail('raw restore: expected failed with %r, got %r'
                 % (pattern, info))
        if st['running']:
            fail('raw restore: the guest runs after a failed load')
        if not saw_event(dst.qmp, 'failed'):
            fail('raw restore: no MIGRATION event with status failed')
    finally:
        dst.kill()


def case_durable(work):
    path = raw_save(work, 'raw.sav')
    mapram('verify', path, rc=0)
    raw_restore(path, None)
    trailer = layout(path)['checksums']['trailer_offset']
    for what, cut in (('no-footer', os.path.getsize(path) - 32),
                      ('no-trailer', trailer)):
        bad = os.path.join(work, what + '.sav')
        shutil.copyfile(path, bad)
        os.truncate(bad, cut)
        # without the footer the reader cannot tell where the stream ends
        check_one_line(mapram('verify', bad), re.escape(NO_TRAILER) +
                       '|expected a VMDESCRIPTION record', 'verify ' + what)
        raw_restore(bad, re.escape(NO_TRAILER))
    # cut inside the stream's tail: the stream itself is incomplete
    bad = os.path.join(work, 'short.sav')
    shutil.copyfile(path, bad)
    os.truncate(bad, trailer - 10)
    check_one_line(mapram('verify', bad), r'VMDESCRIPTION|truncated',
                   'verify short')
    raw_restore(bad, r'VMDESCRIPTION|truncated|Partial|read')


def mount_tmpfs(d, size):
    os.makedirs(d)
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=0700'
                        % size, 'tmpfs', d], capture_output=True)
    return r.returncode == 0


def case_enospc(work):
    small = os.path.join(work, 'small')
    if not mount_tmpfs(small, '24M'):
        print('SKIP: cannot mount a small tmpfs (not root?)')
        return SKIP
    try:
        src = vm()
        try:
            wait_for_serial(src.serial)
            base = fd_count(src)
            path = os.path.join(small, 'vm.sav')
            res = mapram('save', '--qmp', src.sock, path)
            check_one_line(res, r"not enough free space for '.*vm\.sav': "
                           r"need \d+ MiB", 'save to a small tmpfs')
            if os.path.exists(path):
                fail('a refused save left %s behind' % path)
            # the engine on its own: the pages no longer fit mid-save
            mapped_ram_caps(src.qmp)
            src.qmp.cmd('migrate', {'uri': 'file:' + path})
            info = wait_migrate(src.qmp)
            if info['status'] != 'failed' or info.get('error-desc') != \
                    'Unable to write to file: No space left on device':
                fail('ENOSPC save: %r' % info)
            if not saw_event(src.qmp, 'failed'):
                fail('ENOSPC save: no MIGRATION event with status failed')
            st = src.qmp.cmd('query-status')
            if not st['running']:
                fail('the source stopped after a failed save: %r' % st)
            first = src.counter()
            deadline = time.monotonic() + 10
            while src.counter() == first:
                if time.monotonic() > deadline:
                    fail('the source guest no longer runs')
                time.sleep(0.01)
            os.unlink(path)
            check_fds(src, base, 'after ENOSPC')
            finish(src, 'after ENOSPC')
        finally:
            src.kill()
    finally:
        subprocess.run(['umount', small])


# The guest only touches the first byte of each page, and that byte wraps
# to 0 every 256 passes: a guest stopped within a few MiB of such a wrap
# has a test range of zero pages, which a save skips.  Its file then needs
# fewer than 5 page writes and 4 page reads in all (boot area, pc.bios, pc.rom),
# so "write:5" and "read:7" never fire and the save or the restore
# succeeds.  Prefilled RAM (the bytes the guest never touches) keeps every
# page of pc.ram data however far the guest got: 64 MiB, 64 extents, 64+
# reads and more writes, every time.
EIO_PREFILL = 0x5a


def case_eio(work):
    if not FAULT_BUILD:
        print('SKIP: not a fault-injection build')
        return SKIP
    path = os.path.join(work, 'eio.sav')
    src = vm(env={'MAPRAM_FAULT': 'write:5:eio'}, prefill=EIO_PREFILL)
    try:
        wait_for_serial(src.serial)
        base = fd_count(src)
        res = mapram('save', '--qmp', src.sock, path, '--channels', 2)
        check_one_line(res, r'Unable to write to file: Input/output error',
                       'save with EIO')
        st = src.qmp.cmd('query-status')
        if not st['running']:
            fail('source not running again after a failed save: %r' % st)
        info = src.qmp.cmd('query-migrate')
        if info.get('error-desc') != \
                'Unable to write to file: Input/output error':
            fail('query-migrate after EIO: %r' % info)
        if os.path.exists(path):
            fail('a failed save left %s behind' % path)
        check_fds(src, base, 'after EIO on write')
        finish(src, 'after EIO on write')
    finally:
        src.kill()
    good, mem = save_good(work, prefill=EIO_PREFILL)
    # a read covers at most one 1 MiB checksum extent: more than 6 MiB of
    # present pages means a 7th read exists
    present = layout(good)['ram']['blocks'][0]['pages_present']
    if present * 4096 <= 6 << 20:
        fail('the EIO restore needs more than 6 MiB of pages in the file '
             '(a 7th page read), it holds %d pages' % present)
    dst = vm(['-incoming', 'defer'], env={'MAPRAM_FAULT': 'read:7:eio'})
    try:
        res = mapram('restore', '--qmp', dst.sock, good, '--channels', 2)
        pat = (r'multifd recv \(\d\): read 0x[0-9a-f]+, expected 0x[0-9a-f]+:'
               r' Input/output error')
        check_one_line(res, pat, 'restore with EIO')
        if dst.qmp.cmd('query-status')['running']:
            fail('destination runs after a failed load')
        finish(dst, 'after EIO on read')
    finally:
        dst.kill()
    restore_equal(good, mem)


def case_kill(work):
    # the source dies at varying moments of `mapram save`
    rnd = random.Random(7)
    for i in range(4):
        path = os.path.join(work, 'killed-%d.sav' % i)
        src = vm()
        wait_for_serial(src.serial)
        tool = subprocess.Popen([MAPRAM, 'save', '--qmp', src.sock, path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        time.sleep(rnd.uniform(0.0, 0.15))
        # even tries kill the VM, odd ones the tool (the VM may finish)
        (tool if i % 2 else src.proc).send_signal(signal.SIGKILL)
        out, err = tool.communicate(timeout=60)
        if i % 2:
            time.sleep(0.2)     # a command the tool had sent still runs
            wait_migrate(src.qmp, done=('completed', 'failed', 'cancelled',
                                        None))
        src.kill()
        print('save killed after try %d: rc %d %s' % (i, tool.returncode,
                                                      err.strip()))
        if not os.path.exists(path):
            continue
        res = mapram('verify', path)
        if tool.returncode == 0:
            if res.returncode != 0:
                fail('a save that reported success does not verify')
            continue
        if res.returncode == 0:
            fail('a killed save left a file that verifies')
        # killed before the header was written: not a stream at all
        early = (r'|Not a migration stream|truncated|not a mapram save file '
                 r'\(no MAPRAMSV header\)')
        if i % 2:
            check_one_line(res, re.escape(INCOMPLETE_PART) + early,
                           'verify killed')
        if os.path.getsize(path) >= 4096:
            restore_refused(path, 'incomplete save file: the save did not '
                            'finish' + early, 'killed save %d' % i)
    # the destination dies mid-restore; the file is never harmed
    good, mem = save_good(work)
    for i in range(3):
        dst = vm(['-incoming', 'defer'])
        tool = subprocess.Popen([MAPRAM, 'restore', '--qmp', dst.sock, good],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        time.sleep(rnd.uniform(0.0, 0.1))
        dst.proc.send_signal(signal.SIGKILL)
        out, err = tool.communicate(timeout=60)
        dst.kill()
        res = subprocess.CompletedProcess(tool.args, tool.returncode, out, err)
        print('restore killed after try %d: rc %d %s' % (i, tool.returncode,
                                                         err.strip()))
        if tool.returncode != 0:
            check_one_line(res, r'^mapram restore: ', 'restore, VM killed')
    mapram('verify', good, rc=0)
    restore_equal(good, mem)


def case_cancel(work):
    rnd = random.Random(11)
    src = vm()
    try:
        wait_for_serial(src.serial)
        base = fd_count(src)
        mapped_ram_caps(src.qmp)
        # slow enough to be cancelled in the middle: 64 MiB at 100 MiB/s
        src.qmp.cmd('migrate-set-parameters', {'max-bandwidth': 100 << 20})
        for i in range(4):
            path = os.path.join(work, 'cancel-%d.sav' % i)
            src.qmp.cmd('migrate', {'uri': 'file:' + path})
            time.sleep(rnd.uniform(0.0, 0.4))
            try:
                src.qmp.cmd('migrate_cancel')
            except QMPError as e:
                print('cancel %d: %s' % (i, e))
            info = wait_migrate(src.qmp)
            print('cancel %d after the wait: %s' % (i, info['status']))
            if info['status'] not in ('cancelled', 'completed'):
                fail('cancel %d: %r' % (i, info))
            if not src.qmp.cmd('query-status')['running'] and \
                    info['status'] == 'cancelled':
                fail('cancel %d: the source does not run' % i)
            if info['status'] == 'cancelled' and \
                    not saw_event(src.qmp, 'cancelled'):
                fail('cancel %d: no MIGRATION event cancelled' % i)
            if info['status'] == 'cancelled':
                check_one_line(mapram('verify', path), r'.',
                               'verify cancelled %d' % i)
            os.unlink(path)
            if info['status'] == 'completed':
                src.qmp.cmd('cont')
        check_fds(src, base, 'after the cancels')
        src.qmp.cmd('migrate-set-parameters', {'max-bandwidth': 0})
        good = os.path.join(work, 'after-cancel.sav')
        mapram('save', '--qmp', src.sock, good, '--channels', 2, rc=0)
        mem = src.memory(src.start, src.end)
    finally:
        src.kill()
    mapram('verify', good, rc=0)
    restore_equal(good, mem)


def case_verify_qemu(work):
    """QEMU 10.0.2's files: verify checks what it can and says that data
    checksums are absent; a damaged one is still caught by structure."""
    interop = os.path.join(os.environ.get('MAPRAM_SHARED_DIR', '/work/shared'),
                           'interop', 'qemu-10.0.2')
    if not os.path.isdir(interop) or not shutil.which('zstd'):
        print('SKIP: no QEMU interop files or no zstd')
        return SKIP
    for name in ('mr-mf2.img', 'legacy.img'):
        path = os.path.join(work, name)
        subprocess.run(['zstd', '-dqf', os.path.join(interop, name + '.zst'),
                        '-o', path], check=True)
        res = mapram('verify', path, rc=0)
        want = ('layout OK (6 RAM blocks, bitmaps within bounds); data '
                'checksums are absent (not written by mapram-vm), page data '
                'not checked') if name == 'mr-mf2.img' else \
            'stream OK (legacy stream: pages are inline, no extent checksums)'
        if res.stdout.strip() != '%s: %s' % (path, want):
            fail('verify %s: %r' % (name, res.stdout))
    bad = os.path.join(work, 'cut.img')
    shutil.copyfile(os.path.join(work, 'mr-mf2.img'), bad)
    os.truncate(bad, os.path.getsize(bad) - 100)
    check_one_line(mapram('verify', bad), r'VMDESCRIPTION|truncated',
                   'verify a cut QEMU file')


def case_live(work):
    """A live save of a running guest: the checksums cover the final
    data of pages rewritten by later passes."""
    path = os.path.join(work, 'live.sav')
    src = vm()
    try:
        wait_for_serial(src.serial)
        mapram('save', '--qmp', src.sock, path, '--live', '--channels', 4,
               rc=0)
        mem = src.memory(src.start, src.end)
        if src.qmp.cmd('query-migrate').get('ram', {}).get(
                'dirty-sync-count', 0) < 2:
            print('note: the save finished in one pass')
    finally:
        src.kill()
    mapram('verify', path, rc=0)
    restore_equal(path, mem)


CASES = {'corrupt': case_corrupt, 'live': case_live, 'verify-qemu': case_verify_qemu, 'durable': case_durable,
         'enospc': case_enospc, 'eio': case_eio, 'kill': case_kill,
         'cancel': case_cancel}

if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[1] not in CASES:
        sys.exit('usage: test_reliability.py {%s} [FAULT_BUILD]'
                 % ','.join(CASES))
    work = tempfile.mkdtemp(prefix='mapram-rel-')
    try:
        rc = CASES[sys.argv[1]](work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(rc or 0)
