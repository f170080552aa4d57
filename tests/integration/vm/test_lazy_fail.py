#!/usr/bin/env python3
"""A lazy restore that fails closed, and the memory kinds it refuses
(docs/lazy-load.md, "Fail closed"; docs/reliability.md).
test_lazy_fail.py kvm|thread CASE [FAULT_BUILD]

eio           (fault builds) EIO on a granule read during the lazy phase
fault-thread  (fault builds) the fault thread's read of its userfaultfd
              fails: it dies with pages still missing
stuck         a corrupt extent exactly where the guest resumes: the vCPU
              sleeps on the bad granule while the load fails and a `stop`
              is in flight; the stop and `quit` complete
truncate      the file truncated under the load
deleted       the file deleted under the load: the load completes
sigkill       SIGKILL of mapram-vm in the lazy phase: the file is untouched
kinds         a shared file on a disk file system (and hugetlb where the
              host has huge pages) refused up front, raw QMP and `mapram
              restore --lazy`; the eager load of the same file works
no-uffd       (fault builds) userfaultfd unavailable: refused up front,
              raw QMP and `mapram restore --lazy`; the eager load works

The proof that the guest never consumed a bad page: after the failure,
every guest-physical granule of pc.ram either reads back (pmemsave) equal
to the saved image wherever the guest did not write, or cannot be read at
all (it is withheld, poisoned); a zero page or the corrupt data installed
anywhere would read back and differ.  Exit 77 (skip) when KVM or
userfaultfd is missing, or a fault case runs in a build without fault
injection."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'lib'))
from mrtest import (VM, QMPError, check_guest_ram, fail, have_kvm,  # noqa: E402
                    mapram_bin, pmemsave, wait_for_serial)
from mrtest import set_caps as caps, wait_migrate  # noqa: E402

ACCEL = sys.argv[1] if len(sys.argv) > 1 else 'thread'
CASE = sys.argv[2] if len(sys.argv) > 2 else 'stuck'
FAULT_BUILD = len(sys.argv) > 3 and sys.argv[3] == '1'
SKIP = 77
RAM, RAM_BYTES = '150M', 150 << 20
RANGE, START, END = '1M,100M', 1 << 20, 100 << 20
PAGE, GRANULE = 4096, 1 << 20
GUARD = 60          # a hang guard, not a bound


def vm(extra=(), env=None, **kw):
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        return VM(ACCEL, ram=RAM, test_range=RANGE, extra=list(extra), **kw)
    finally:
        os.environ.clear()
        os.environ.update(old)


def save(tmp):
    """A running guest saved live (so the restore resumes it); returns the
    file and pc.ram as saved."""
    path = os.path.join(tmp, 'image')
    if os.path.exists(path):
        os.unlink(path)
    src = vm()
    try:
        caps(src.qmp, ['mapped-ram'])
        src.qmp.cmd('migrate-set-parameters', {'max-bandwidth': 1000000000,
                                               'downtime-limit': 30000})
        wait_for_serial(src.serial)
        assert src.qmp.cmd('migrate', {'uri': 'file:' + path}) == {}
        wait_migrate(src.qmp, ('completed',))
        mem = pmemsave(src, 'src', 0, RAM_BYTES)
        assert src.quit() == 0
        return path, mem
    finally:
        src.kill()


def layout(path):
    out = subprocess.run([mapram_bin(), 'inspect', '--json', path],
                         check=True, capture_output=True).stdout
    return {b['name']: b for b in json.loads(out)['ram']['blocks']}


def flip(path, out, offset):
    """A copy of the image with one byte of pc.ram's page at `offset`
    flipped (a byte the guest never writes)."""
    blk = layout(path)['pc.ram']
    shutil.copyfile(path, out)
    with open(out, 'r+b') as f:
        f.seek(blk['pages_offset'] + offset)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xff]))


def resume_point(img):
    """The page the guest touches first after the resume: its position in
    the pass, where the first bytes step down by one (docs/test-guest.md)."""
    first = img[START]
    for addr in range(START + PAGE, END, PAGE):
        if img[addr] != first:
            return addr
    return START


def lazy_vm(env=None, backend='ram', **kw):
    v = vm(['-incoming', 'defer'], env=env, backend=backend, **kw)
    caps(v.qmp, ['mapped-ram', 'postcopy-ram', 'events'])
    return v


def incoming(v, path):
    assert v.qmp.cmd('migrate-incoming', {'uri': 'file:' + path,
                                          'exit-on-error': False}) == {}


def statuses(q, until):
    seen = []
    while not seen or seen[-1] not in until:
        seen.append(q.wait_event('MIGRATION', timeout=GUARD)['data']['status'])
    return seen


def unwritten_equal(img, now, addr):
    """pc.ram granule at `addr` read back equals the image except for the
    bytes the guest writes (the first byte of each page of its range and
    its counter page)."""
    a = bytearray(img[addr:addr + GRANULE])
    b = bytearray(now)
    for p in range(0, GRANULE, PAGE):
        if START <= addr + p < END:
            a[p] = b[p] = 0
        if addr + p == 0x5000:
            a[p:p + PAGE] = b[p:p + PAGE] = bytes(PAGE)
    return a == b


def check_no_bad_page(v, img, must_withhold=()):
    """Every granule of pc.ram reads back as the image (outside the guest's
    writes) or is withheld; the ones in `must_withhold` are withheld.
    Returns the withheld granules."""
    withheld = []
    for addr in range(0, RAM_BYTES, GRANULE):
        try:
            now = pmemsave(v, 'g%x' % addr, addr, addr + GRANULE)
        except QMPError as e:
            if 'writing memory' not in str(e):
                raise
            withheld.append(addr)
            continue
        if not unwritten_equal(img, now, addr):
            fail('granule 0x%x reads back different from the image: the '
                 'guest was given data that was not saved' % addr)
    for addr in must_withhold:
        if addr not in withheld:
            fail('granule 0x%x (the bad one) reads back: %s' %
                 (addr, [hex(x) for x in withheld]))
    return withheld


def wait_stopped(q):
    """The failure ends in postmigrate (a vCPU that met withheld memory
    may pass through internal-error, a `stop` in flight through paused)."""
    deadline = time.monotonic() + GUARD
    while True:
        st = q.cmd('query-status')
        if st['status'] == 'postmigrate' or time.monotonic() > deadline:
            return st
        time.sleep(0.01)


def check_failed(v, pattern, must_withhold=(), img=None):
    """The common end of a failure: events, query-migrate, the guest
    stopped in postmigrate, nothing bad readable, `stop`/`quit` work."""
    q = v.qmp
    info = wait_migrate(q, ('failed', 'completed'))
    if info['status'] != 'failed':
        fail('the lazy load did not fail: %s' % info)
    if pattern not in info.get('error-desc', ''):
        fail('error-desc %r lacks %r' % (info.get('error-desc'), pattern))
    st = wait_stopped(q)
    if st != {'running': False, 'status': 'postmigrate'}:
        fail('run state after the failure: %s' % st)
    withheld = check_no_bad_page(v, img, must_withhold)
    assert q.cmd('stop') == {}
    rc = v.quit()
    if rc != 0 or 'Sanitizer' in v.stderr:
        fail('mapram-vm exited %d: %s' % (rc, v.stderr[-2000:]))
    print('ok %s %s: %s; %d granules withheld' % (
        ACCEL, CASE, info['error-desc'], len(withheld)))


def fault_case(tmp, plan, pattern, backend):
    if not FAULT_BUILD:
        print('SKIP: not a fault-injection build')
        return SKIP
    path, img = save(tmp)
    v = lazy_vm(env={'MAPRAM_FAULT': plan}, backend=backend)
    try:
        incoming(v, path)
        seen = statuses(v.qmp, ('completed', 'failed'))
        # the guest runs from just before postcopy-active: a fault can fail
        # the load in between (a slow ASan run sees it)
        if seen not in (['setup', 'active', 'postcopy-active', 'failed'],
                        ['setup', 'active', 'failed']):
            fail('MIGRATION events %s' % seen)
        check_failed(v, pattern, img=img)
    finally:
        v.kill()
    return 0


def case_eio(tmp):
    return fault_case(tmp, 'lazy-read:5:eio', 'Input/output error', 'memfd')


def case_fault_thread(tmp):
    return fault_case(tmp, 'uffd-read:3:eio',
                      'lazy load: reading userfaults failed: '
                      'Input/output error', 'ram')


def case_stuck(tmp):
    path, img = save(tmp)
    at = resume_point(img)
    bad = os.path.join(tmp, 'bad')
    flip(path, bad, at + 100)
    v = lazy_vm()
    try:
        incoming(v, bad)
        seen = statuses(v.qmp, ('postcopy-active', 'failed'))
        # a stop in flight while the vCPU sleeps on the bad granule
        try:
            v.qmp.cmd('stop')
        except QMPError as e:
            print('stop: %s' % e)
        seen += statuses(v.qmp, ('completed', 'failed')) \
            if seen[-1] != 'failed' else []
        if seen[-1] != 'failed':
            fail('MIGRATION events %s' % seen)
        check_failed(v, 'checksum mismatch', [at - at % GRANULE], img)
    finally:
        v.kill()
    # exit-on-error (QMP's default): the destination exits, as QEMU's
    # does when a postcopy load fails; the exit does not hang either
    v = lazy_vm()
    try:
        assert v.qmp.cmd('migrate-incoming', {'uri': 'file:' + bad}) == {}
        rc = v.proc.wait(GUARD)
        err = v.proc.stderr.read().decode()
        if rc != 1 or 'checksum mismatch' not in err or 'Sanitizer' in err:
            fail('exit-on-error: mapram-vm exited %d: %s' % (rc, err[-2000:]))
        print('ok %s stuck, exit-on-error: exited 1' % ACCEL)
    finally:
        v.kill()
    return 0


def case_truncate(tmp):
    path, img = save(tmp)
    cut = layout(path)['pc.ram']['pages_offset'] + (60 << 20)
    for attempt in range(3):
        work = os.path.join(tmp, 'cut')
        shutil.copyfile(path, work)
        v = lazy_vm()
        try:
            # a slow fill (16 MB/s: the cut is seconds away), so that a
            # loaded machine does not let it pass the cut first
            assert v.qmp.cmd('migrate-set-parameters',
                             {'x-lazy-fill-cap': 16}) == {}
            incoming(v, work)
            statuses(v.qmp, ('postcopy-active', 'failed'))
            # hold the process still while the file shrinks beneath it, so
            # the fill has not passed the cut yet
            os.kill(v.proc.pid, signal.SIGSTOP)
            os.truncate(work, cut)
            os.kill(v.proc.pid, signal.SIGCONT)
            print('cut at 0x%x; %s bytes were left to load' % (
                cut, v.qmp.cmd('query-migrate')['ram'].get(
                    'x-lazy-remaining-bytes')))
            info = wait_migrate(v.qmp, ('failed', 'completed'))
            if info['status'] == 'completed':
                print('note: the fill passed the cut first, again')
                continue
            check_failed(v, 'truncated', [60 << 20], img)
            return 0
        finally:
            v.kill()
    fail('the fill always passed the cut before the truncation')


def case_deleted(tmp):
    path, img = save(tmp)
    work = os.path.join(tmp, 'doomed')
    shutil.copyfile(path, work)
    v = lazy_vm()
    try:
        incoming(v, work)
        seen = statuses(v.qmp, ('postcopy-active', 'failed'))
        os.unlink(work)
        seen += statuses(v.qmp, ('completed', 'failed'))
        if seen != ['setup', 'active', 'postcopy-active', 'completed']:
            fail('MIGRATION events %s: %s' % (seen,
                                              v.qmp.cmd('query-migrate')))
        assert v.qmp.cmd('stop') == {}
        now = pmemsave(v, 'all', 0, RAM_BYTES)
        for addr in range(0, RAM_BYTES, GRANULE):
            if not unwritten_equal(img, now[addr:addr + GRANULE], addr):
                fail('granule 0x%x differs from the image' % addr)
        bad = check_guest_ram(now, START, END)
        if bad:
            fail('RAM check failed at %s' % [hex(x) for x in bad[:10]])
        assert v.quit() == 0
        print('ok %s deleted: completed from the deleted file' % ACCEL)
    finally:
        v.kill()
    return 0


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest(), os.stat(path).st_mtime_ns


def case_sigkill(tmp):
    path, img = save(tmp)
    before = sha256(path)
    v = lazy_vm()
    try:
        incoming(v, path)
        statuses(v.qmp, ('postcopy-active', 'failed'))
        v.proc.send_signal(signal.SIGKILL)
        v.proc.wait(GUARD)
    finally:
        v.kill()
    if sha256(path) != before:
        fail('the save file changed under a killed lazy restore')
    res = subprocess.run([mapram_bin(), 'verify', path], capture_output=True,
                         text=True)
    if res.returncode != 0:
        fail('mapram verify after the kill: %s' % res.stderr)
    print('ok %s sigkill: the file is byte for byte as saved' % ACCEL)
    return 0


def eager_restore_equal(v, path, img):
    """Restore `path` eagerly into v with mapram and compare pc.ram."""
    res = subprocess.run([mapram_bin(), 'restore', '--qmp', v.sock,
                          '--paused', path], capture_output=True, text=True)
    if res.returncode != 0:
        fail('the eager restore after the refusal failed: %s' % res.stderr)
    now = pmemsave(v, 'eager', 0, RAM_BYTES)
    if now != img:
        fail('the eager restore differs from the saved guest')


def save_mapram(tmp):
    """A mapram save file (`mapram restore --lazy` takes only those) and
    pc.ram as saved (mapram save leaves the source paused)."""
    path = os.path.join(tmp, 'image.mapram')
    if os.path.exists(path):
        os.unlink(path)
    src = vm()
    try:
        wait_for_serial(src.serial)
        res = subprocess.run([mapram_bin(), 'save', '--qmp', src.sock, path],
                             capture_output=True, text=True)
        if res.returncode != 0:
            fail('mapram save: %s' % res.stderr)
        mem = pmemsave(src, 'src', 0, RAM_BYTES)
        assert src.quit() == 0
        return path, mem
    finally:
        src.kill()


def refused(tmp, pattern, env=None, **kw):
    """postcopy-ram refused when enabled (raw QMP), `mapram restore --lazy`
    refused before the load; the eager load of the same file works."""
    path, img = save(tmp)
    v = vm(['-incoming', 'defer'], env=env, **kw)
    try:
        try:
            caps(v.qmp, ['mapped-ram', 'postcopy-ram'])
            fail('postcopy-ram accepted')
        except QMPError as e:
            if pattern not in str(e):
                fail('postcopy-ram refused with %r, wanted %r' % (str(e),
                                                                 pattern))
            print('raw QMP refused: %s' % e)
        if v.qmp.cmd('query-migrate').get('status', 'none') != 'none':
            fail('a load started after the refusal')
        eager_restore_equal(v, path, img)
        assert v.quit() == 0
    finally:
        v.kill()
    path, img = save_mapram(tmp)
    v = vm(['-incoming', 'defer'], env=env, **kw)
    try:
        res = subprocess.run([mapram_bin(), 'restore', '--qmp', v.sock,
                              '--lazy', path], capture_output=True, text=True)
        if res.returncode == 0 or pattern not in res.stderr:
            fail('mapram restore --lazy: rc %d, %r' % (res.returncode,
                                                       res.stderr))
        print('mapram restore --lazy refused: %s' % res.stderr.strip())
        if v.qmp.cmd('query-status')['status'] != 'inmigrate':
            fail('the guest left inmigrate after the refusal')
        eager_restore_equal(v, path, img)
        assert v.quit() == 0
    finally:
        v.kill()


def hugepages_free():
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('HugePages_Free:'):
                return int(line.split()[1])
    return 0


def case_kinds(tmp):
    # a shared file on the test's disk file system (not tmpfs)
    disk = tempfile.mkdtemp(prefix='mapram-lazy-disk-')
    try:
        fs = subprocess.run(['stat', '-f', '-c', '%T', disk],
                            capture_output=True, text=True).stdout.strip()
        if fs == 'tmpfs':
            print('note: %s is tmpfs, no disk file backend to refuse' % disk)
        else:
            refused(tmp, 'RAM block pc.ram cannot be loaded lazily: '
                    'userfaultfd registration failed', mem_dir=disk)
    finally:
        shutil.rmtree(disk, ignore_errors=True)
    if hugepages_free() * (2 << 20) >= RAM_BYTES:
        refused(tmp, 'huge pages (hugetlb)',
                backend='memfd,hugetlb=on')
    else:
        print('note: no free huge pages here, hugetlb not tried')
    # and where the backend can (memfd), `mapram restore --lazy` loads it
    path, img = save_mapram(tmp)
    v = vm(['-incoming', 'defer'], backend='memfd')
    try:
        res = subprocess.run([mapram_bin(), 'restore', '--qmp', v.sock,
                              '--lazy', '--paused', path],
                             capture_output=True, text=True)
        if res.returncode != 0:
            fail('mapram restore --lazy: %s' % res.stderr)
        info = wait_migrate(v.qmp, ('completed', 'failed'))
        if info['status'] != 'completed' or \
                'x-lazy-granule' not in info['ram']:
            fail('mapram restore --lazy did not load lazily: %s' % info)
        if pmemsave(v, 'lazy', 0, RAM_BYTES) != img:
            fail('mapram restore --lazy: RAM differs from the saved guest')
        assert v.quit() == 0
    finally:
        v.kill()
    print('ok %s kinds' % ACCEL)
    return 0


def case_no_uffd(tmp):
    if not FAULT_BUILD:
        print('SKIP: not a fault-injection build')
        return SKIP
    refused(tmp, 'Postcopy is not supported: userfaultfd not '
            'available', env={'MAPRAM_FAULT': 'userfaultfd:1:eio'},
            backend='ram')
    print('ok %s no-uffd' % ACCEL)
    return 0


CASES = {'eio': case_eio, 'fault-thread': case_fault_thread,
         'stuck': case_stuck, 'truncate': case_truncate,
         'deleted': case_deleted, 'sigkill': case_sigkill,
         'kinds': case_kinds, 'no-uffd': case_no_uffd}


def main():
    if CASE not in CASES:
        sys.exit('usage: test_lazy_fail.py kvm|thread {%s} [FAULT_BUILD]'
                 % ','.join(CASES))
    if ACCEL == 'kvm' and not have_kvm():
        sys.exit(SKIP)
    if not os.path.exists('/dev/userfaultfd'):
        sys.exit(SKIP)
    tmp = tempfile.mkdtemp(prefix='mapram-lazy-fail-')
    try:
        rc = CASES[CASE](tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(rc or 0)


if __name__ == '__main__':
    main()
