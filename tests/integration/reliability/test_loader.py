#!/usr/bin/env python3
"""The loader and the migration thread against real mapram-vm processes
(docs/reliability.md, issue 16):

  fifo    `migrate file:FIFO` with nobody reading: the monitor keeps
          answering, migrate_cancel ends the save, the guest runs again.
  sigbus  a load into guest RAM the kernel cannot back (memory-backend-file
          on a nearly full tmpfs) fails cleanly, legacy as mapped-ram: the
          destination lives, reports `failed` with an error, never runs.

Exit 77 when something needed is missing (a mountable tmpfs)."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
from mrtest import VM, fail, wait_for_serial  # noqa: E402

SKIP = 77
RAM, RANGE = '64M', '1M,60M'


def vm(extra=()):
    return VM('thread', ram=RAM, test_range=RANGE, extra=extra)


def wait_status(q, done, what, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        info = q.cmd('query-migrate')
        if info.get('status') in done:
            return info
        if time.monotonic() > deadline:
            fail('%s: migration still %r' % (what, info))
        time.sleep(0.01)


def counter_moves(v):
    first = v.counter()
    deadline = time.monotonic() + 30
    while v.counter() == first:
        if time.monotonic() > deadline:
            fail('fifo: the guest does not run after the cancel')
        time.sleep(0.01)


def case_fifo(work):
    fifo = os.path.join(work, 'fifo')
    os.mkfifo(fifo)
    src = vm()
    try:
        wait_for_serial(src.serial)
        # before the fix this command never returned (the QMP client
        # times out): the monitor thread sat in open(2) on the FIFO
        src.qmp.cmd('migrate', {'uri': 'file:' + fifo})
        for _ in range(3):
            if not src.qmp.cmd('query-status')['running']:
                fail('fifo: the guest stopped while the save waits')
        info = src.qmp.cmd('query-migrate')
        if info.get('status') != 'setup':
            fail('fifo: expected setup while nobody reads, got %r' % info)
        src.qmp.cmd('migrate_cancel')
        wait_status(src.qmp, ('cancelled',), 'fifo')
        st = src.qmp.cmd('query-status')
        if not st['running'] or st['status'] != 'running':
            fail('fifo: status %r after the cancel' % st)
        counter_moves(src)
        rc = src.quit()
        if rc != 0 or 'Sanitizer' in src.stderr:
            fail('fifo: mapram-vm exited %d: %s' % (rc, src.stderr[-2000:]))
    finally:
        src.kill()


def save(work, name, mapped):
    path = os.path.join(work, name)
    src = vm()
    try:
        wait_for_serial(src.serial)
        src.qmp.cmd('stop')
        if mapped:
            src.qmp.cmd('migrate-set-capabilities', {'capabilities': [
                {'capability': 'mapped-ram', 'state': True}]})
        src.qmp.cmd('migrate', {'uri': 'file:' + path})
        if wait_status(src.qmp, ('completed', 'failed'),
                       'save')['status'] != 'completed':
            fail('save %s failed' % name)
    finally:
        src.kill()
    return path


def mount_tmpfs(d, size):
    os.makedirs(d)
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=0700'
                        % size, 'tmpfs', d], capture_output=True)
    return r.returncode == 0


def load_unbacked(small, path, mapped, what):
    """The destination's RAM file lives on the small tmpfs."""
    old = tempfile.tempdir
    tempfile.tempdir = small
    try:
        dst = vm(['-incoming', 'defer'])
    finally:
        tempfile.tempdir = old
    try:
        if mapped:
            dst.qmp.cmd('migrate-set-capabilities', {'capabilities': [
                {'capability': 'mapped-ram', 'state': True}]})
        dst.qmp.cmd('migrate-incoming', {'uri': 'file:' + path,
                                         'exit-on-error': False})
        deadline = time.monotonic() + 60
        while True:
            if dst.proc.poll() is not None:
                fail('%s: the destination died (status %d): %s'
                     % (what, dst.proc.returncode,
                        dst.proc.stderr.read().decode()[-2000:]))
            info = dst.qmp.cmd('query-migrate')
            if info.get('status') in ('completed', 'failed'):
                break
            if time.monotonic() > deadline:
                fail('%s: load still %r' % (what, info))
            time.sleep(0.01)
        if info['status'] != 'failed' or not info.get('error-desc'):
            fail('%s: expected a failed load with an error, got %r'
                 % (what, info))
        print('%s: %s' % (what, info['error-desc']))
        if dst.qmp.cmd('query-status')['running']:
            fail('%s: the guest runs after a failed load' % what)
    finally:
        dst.kill()


def case_sigbus(work):
    small = os.path.join(work, 'small')
    if not mount_tmpfs(small, '16M'):
        print('SKIP: cannot mount a small tmpfs (not root?)')
        return SKIP
    try:
        legacy = save(work, 'legacy.sav', False)
        mapped = save(work, 'mapped.sav', True)
        load_unbacked(small, mapped, True, 'mapped-ram')
        load_unbacked(small, legacy, False, 'legacy')
    finally:
        subprocess.run(['umount', '-l', small])
    return 0


CASES = {'fifo': case_fifo, 'sigbus': case_sigbus}

if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[1] not in CASES:
        sys.exit('usage: test_loader.py {%s}' % ','.join(CASES))
    work = tempfile.mkdtemp(prefix='mapram-loader-')
    try:
        rc = CASES[sys.argv[1]](work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(rc or 0)
