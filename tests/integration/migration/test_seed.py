#!/usr/bin/env python3
"""The four seed scenarios of docs/test-guest.md, "The four seed scenarios" against real mapram-vm
processes, driven over QMP with the flow of docs/test-guest.md, "Harness flow" (stop, migrate, poll, incoming,
cont, serial liveness, offset check, fdset end hook), plus a
cross-accelerator restore and exit-on-error.

test_seed.py kvm|thread|cross.  Exit 77 when the accelerator is missing."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
from mrtest import (VM, fail, have_kvm, probe_o_direct,  # noqa: E402
                    wait_for_serial)

MODE = sys.argv[1] if len(sys.argv) > 1 else 'thread'
RAM, RANGE = '64M', '1M,60M'
OFFSET = 0x1000


def set_params(q, params):
    assert q.cmd('migrate-set-parameters', params) == {}
    got = q.cmd('query-migrate-parameters')
    for k, v in params.items():
        if got[k] != v:
            fail('read-back of %s: %r != %r' % (k, got[k], v))


def set_caps(q, **caps):
    lst = [{'capability': k.replace('_', '-'), 'state': v}
           for k, v in caps.items()]
    assert q.cmd('migrate-set-capabilities', {'capabilities': lst}) == {}


def common_hook(q):
    set_caps(q, mapped_ram=True)
    set_params(q, {'multifd-channels': 4})
    set_caps(q, multifd=True)


def poll_completed(q, what):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        info = q.cmd('query-migrate')
        st = info.get('status')
        if st == 'completed':
            return info
        if st == 'failed':
            fail('%s failed: %s' % (what, info.get('error-desc')))
        time.sleep(0.001)
    fail('%s did not complete' % what)


def add_fds(q, path, flags_list):
    for flags in flags_list:
        fd = os.open(path, flags)
        try:
            q.cmd('add-fd', {'fdset-id': 1}, fds=[fd])
        finally:
            os.close(fd)


def scenario(name, src_accel, dst_accel, fdset, dio, tmp, live=False):
    migfile = os.path.join(tmp, 'migfile-' + name.replace('/', '-'))
    uri = ('file:/dev/fdset/1,offset=%d' % OFFSET if fdset
           else 'file:' + migfile)
    src = VM(src_accel, ram=RAM, test_range=RANGE)
    dst = VM(dst_accel, ram=RAM, test_range=RANGE,
             extra=['-incoming', 'defer'] + (['-S'] if live else []))
    try:
        for q in (src.qmp, dst.qmp):
            set_caps(q, events=True)
        if fdset:
            with open(migfile, 'wb') as f:
                f.write(b'X' * OFFSET)
            add_fds(src.qmp, migfile,
                    [os.O_WRONLY, os.O_WRONLY | (os.O_DIRECT if dio else 0)])
            add_fds(dst.qmp, migfile,
                    [os.O_RDONLY, os.O_RDONLY | (os.O_DIRECT if dio else 0)])
        for q in (src.qmp, dst.qmp):
            common_hook(q)
            if dio:
                set_params(q, {'direct-io': True})
        set_params(src.qmp, {'max-bandwidth': 1000000000})
        set_params(src.qmp, {'downtime-limit': 30000})
        wait_for_serial(src.serial)
        if not live:
            assert src.qmp.cmd('stop') == {}
            src.qmp.wait_event('STOP')
        assert src.qmp.cmd('migrate', {'uri': uri}) == {}
        info = poll_completed(src.qmp, 'source')
        if info['ram']['total'] < 64 << 20:
            fail('ram.total %d' % info['ram']['total'])
        assert src.qmp.cmd('query-status')['status'] == 'postmigrate'

        set_caps(dst.qmp, events=True)
        assert dst.qmp.cmd('migrate-incoming', {'uri': uri}) == {}
        ev = dst.qmp.wait_event('MIGRATION')
        assert ev['data']['status'] == 'setup', ev
        poll_completed(dst.qmp, 'destination')
        # paused source -> paused destination; a live source with -S on
        # the destination -> paused too.  The source stopped at
        # switchover, so RAM must be identical either way.
        assert dst.qmp.cmd('query-status')['status'] == 'paused'
        if src.memory(0, src.end) != dst.memory(0, dst.end):
            fail('destination RAM differs from the source')
        size = os.path.getsize(src.mem)
        if src.memory(src.end, size) != dst.memory(dst.end, size):
            fail('destination RAM (above the test range) differs')
        assert dst.qmp.cmd('cont') == {}
        dst.qmp.wait_event('RESUME')
        wait_for_serial(dst.serial)
        if fdset:
            with open(migfile, 'rb') as f:
                head = f.read(OFFSET + 8)
            if head[:OFFSET] != b'X' * OFFSET:
                fail('header before the offset was modified')
            if int.from_bytes(head[OFFSET:OFFSET + 8], 'big') >> 32 != \
                    0x5145564D:
                fail('stream magic not at the offset')
            assert src.qmp.cmd('remove-fd', {'fdset-id': 1}) == {}
            if src.qmp.cmd('query-fdsets') != []:
                fail('fdset not empty after remove-fd')
        assert src.quit() == 0
        assert dst.quit() == 0
        print('ok %s (%s -> %s)' % (name, src_accel, dst_accel))
    finally:
        src.kill()
        dst.kill()
        if os.path.exists(migfile):
            os.unlink(migfile)


def exit_on_error(accel, tmp):
    """A truncated file: the destination prints the error and exits 1,
    the guest never ran."""
    migfile = os.path.join(tmp, 'migfile-truncated')
    src = VM(accel, ram=RAM, test_range=RANGE)
    try:
        common_hook(src.qmp)
        src.qmp.cmd('stop')
        src.qmp.cmd('migrate', {'uri': 'file:' + migfile})
        poll_completed(src.qmp, 'source')
    finally:
        src.quit()
        src.kill()
    os.truncate(migfile, 0x200000)
    dst = VM(accel, ram=RAM, test_range=RANGE, extra=['-incoming', 'defer'])
    try:
        common_hook(dst.qmp)
        # HMP migrate_incoming uses exit-on-error false: the VM survives
        out = dst.qmp.hmp('migrate_incoming file:' + migfile)
        assert out == '', out
        deadline = time.monotonic() + 30
        while dst.qmp.cmd('query-migrate').get('status') != 'failed':
            if time.monotonic() > deadline:
                fail('HMP incoming did not fail')
            time.sleep(0.01)
        desc = dst.qmp.cmd('query-migrate')['error-desc']
        if 'truncated' not in desc:
            fail('unexpected error-desc %r' % desc)
        assert dst.qmp.cmd('query-status')['status'] == 'inmigrate'
        assert dst.quit() == 0
    finally:
        dst.kill()
    dst = VM(accel, ram=RAM, test_range=RANGE, extra=['-incoming', 'defer'])
    try:
        common_hook(dst.qmp)
        try:
            # the reply races with the exit: the load fails at once
            dst.qmp.cmd('migrate-incoming', {'uri': 'file:' + migfile})
        except (EOFError, ConnectionResetError):
            pass
        rc = dst.proc.wait(30)
        err = dst.proc.stderr.read().decode()
        if rc != 1 or desc not in err:
            fail('exit-on-error: rc %d, stderr %r' % (rc, err))
    finally:
        dst.kill()
    os.unlink(migfile)
    print('ok exit-on-error (%s)' % accel)


def main():
    if MODE in ('kvm', 'cross') and not have_kvm():
        print('SKIP: no /dev/kvm')
        return 77
    tmp = tempfile.mkdtemp(prefix='mr-seed-',
                           dir=os.environ.get('MAPRAM_BUILD_DIR'))
    try:
        dio = probe_o_direct(tmp)
        if MODE == 'cross':
            scenario('mapped-ram', 'kvm', 'thread', False, False, tmp)
            scenario('mapped-ram/fdset', 'thread', 'kvm', True, False, tmp)
            return 0
        scenario('mapped-ram/live', MODE, MODE, False, False, tmp, live=True)
        for name, fdset, want_dio in [
                ('mapped-ram', False, False), ('mapped-ram/dio', False, True),
                ('mapped-ram/fdset', True, False),
                ('mapped-ram/fdset/dio', True, True)]:
            if want_dio and not dio:
                print('skip %s: Filesystem does not support O_DIRECT' % name)
                continue
            scenario(name, MODE, MODE, fdset, want_dio, tmp)
        exit_on_error(MODE, tmp)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
