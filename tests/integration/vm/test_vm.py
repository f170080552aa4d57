#!/usr/bin/env python3
"""mapram-vm as a process, through QMP, the memory file and the serial
file: test_vm.py kvm|thread.  Exit 77 (skip) for kvm without /dev/kvm."""
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'lib'))
from mrtest import (VM, QMPError, binary, check_guest_ram, fail, have_kvm,  # noqa: E402
                    pmemsave, wait_for_serial)

ACCEL = sys.argv[1] if len(sys.argv) > 1 else 'thread'


def wait_counter_change(vm, timeout=20.0):
    first = vm.counter()
    deadline = time.monotonic() + timeout
    while vm.counter() == first:
        if time.monotonic() > deadline:
            fail('pass counter stuck at %d' % first)
        time.sleep(0.01)


def test_run_stop_cont():
    vm = VM(ACCEL, extra=['-name', 'source,debug-threads=on'])
    try:
        q = vm.qmp
        assert q.cmd('query-status') == {'running': True, 'status': 'running'}
        assert q.cmd('query-name') == {'name': 'source'}
        assert q.hmp('info name') == 'source\r\n'
        wait_for_serial(vm.serial)
        assert q.cmd('stop') == {}
        q.wait_event('STOP')
        assert q.cmd('query-status') == {'running': False, 'status': 'paused'}
        assert q.hmp('info status') == 'VM status: paused\r\n'
        a = pmemsave(vm, 'a', vm.start, vm.end)
        time.sleep(0.2)
        b = pmemsave(vm, 'b', vm.start, vm.end)
        if a != b:
            fail('guest memory changed while stopped')
        if vm.memory(vm.start, vm.end) != a:
            fail('pmemsave differs from the memory backend file')
        bad = check_guest_ram(a, vm.start, vm.end, vm.start)
        if bad:
            fail('RAM check failed at %s' % [hex(x) for x in bad[:10]])
        # memsave: virtual = physical
        path = os.path.join(vm.dir, 'v')
        q.cmd('memsave', {'val': vm.start, 'size': 4096, 'filename': path})
        assert open(path, 'rb').read() == a[:4096]
        assert q.cmd('stop') == {}        # idempotent, no second STOP
        assert q.cmd('cont') == {}
        q.wait_event('RESUME')
        assert q.hmp('info status') == 'VM status: running\r\n'
        wait_counter_change(vm)
        assert q.hmp('stop') == ''
        q.wait_event('STOP')
        c = pmemsave(vm, 'c', vm.start, vm.end)
        if c == a:
            fail('guest memory did not advance after cont')
        bad = check_guest_ram(c, vm.start, vm.end, vm.start)
        if bad:
            fail('RAM check failed after cont at %s'
                 % [hex(x) for x in bad[:10]])
        assert [ev['event'] for ev in q.events] == [], q.events
        assert q.hmp('cont') == ''
        q.wait_event('RESUME')
        assert vm.quit() == 0
        with open(vm.serial, 'rb') as f:
            serial = f.read()
        if not serial.startswith(b'AB') or set(serial[1:]) != {ord('B')}:
            fail('serial output %r' % serial[:20])
    finally:
        vm.kill()


def test_pmemsave_errors():
    vm = VM(ACCEL, extra=['-S'])
    try:
        q = vm.qmp
        try:
            q.cmd('pmemsave', {'val': 150 << 20, 'size': 4096,
                               'filename': os.path.join(vm.dir, 'x')})
            fail('pmemsave beyond RAM succeeded')
        except QMPError as e:
            assert e.error['desc'] == ('Invalid addr 0x0000000009600000/size '
                                       '4096 specified'), e.error
        try:
            q.cmd('memsave', {'val': 0, 'size': 1, 'cpu-index': 1,
                              'filename': os.path.join(vm.dir, 'x')})
            fail('memsave on cpu 1 succeeded')
        except QMPError as e:
            assert e.error['desc'] == "Parameter 'cpu-index' expects a CPU number"
        try:
            q.cmd('pmemsave', {'val': 0, 'size': 1,
                               'filename': '/nonexistent/x'})
            fail('pmemsave into a missing directory succeeded')
        except QMPError as e:
            assert e.error['desc'] == ("Could not open '/nonexistent/x': No "
                                       "such file or directory"), e.error
        try:
            q.cmd('pmemsave', {'val': 0, 'size': 1})
            fail('pmemsave without filename succeeded')
        except QMPError as e:
            assert e.error['desc'] == "Parameter 'filename' is missing"
        assert vm.quit() == 0
    finally:
        vm.kill()


def test_prelaunch():
    vm = VM(ACCEL, extra=['-S'])
    try:
        q = vm.qmp
        assert q.cmd('query-status') == {'running': False,
                                         'status': 'prelaunch'}
        assert q.hmp('info status') == 'VM status: paused (prelaunch)\r\n'
        assert q.cmd('query-name') == {}
        time.sleep(0.2)
        assert os.path.getsize(vm.serial) == 0
        assert vm.counter() == 0
        assert q.cmd('stop') == {}   # not running: nothing changes
        assert q.cmd('query-status')['status'] == 'prelaunch'
        assert q.events == [], q.events
        assert q.cmd('cont') == {}
        q.wait_event('RESUME')
        wait_for_serial(vm.serial)
        assert vm.quit() == 0
    finally:
        vm.kill()


def test_prefilled_memory_file():
    """A backing file full of old data boots like a reset machine: the
    stale boot area, pass counter and stop flag must not leak in."""
    vm = VM(ACCEL, ram='64M', test_range='1M,64M', prefill=0x01)
    try:
        q = vm.qmp
        wait_for_serial(vm.serial)
        wait_counter_change(vm)
        assert q.cmd('stop') == {}
        q.wait_event('STOP')
        assert q.cmd('query-status')['status'] == 'paused'
        mem = vm.memory(vm.start, vm.end)
        assert check_guest_ram(mem, vm.start, vm.end, vm.start) == []
        assert vm.quit() == 0
    finally:
        vm.kill()


def test_inmigrate():
    vm = VM(ACCEL, extra=['-incoming', 'defer'])
    try:
        q = vm.qmp
        assert q.cmd('query-status') == {'running': False,
                                         'status': 'inmigrate'}
        assert q.cmd('stop') == {}   # only clears autostart
        assert q.cmd('cont') == {}   # only sets autostart
        assert q.cmd('query-status')['status'] == 'inmigrate'
        assert q.events == [], q.events
        assert os.path.getsize(vm.serial) == 0
        assert vm.quit() == 0
    finally:
        vm.kill()


def test_sigterm_and_fdsets():
    vm = VM(ACCEL)
    try:
        assert vm.qmp.cmd('query-fdsets') == []
        fd = os.open(vm.mem, os.O_RDONLY)
        ret = vm.qmp.cmd('add-fd', {'fdset-id': 1}, fds=[fd])
        os.close(fd)
        assert ret['fdset-id'] == 1, ret
        assert len(vm.qmp.cmd('query-fdsets')) == 1
        wait_for_serial(vm.serial)
        vm.proc.send_signal(signal.SIGTERM)
        assert vm.wait() == 0
        assert not os.path.exists(vm.sock)
    finally:
        vm.kill()


def test_daemonize_pidfile():
    tmp = tempfile.mkdtemp(prefix='mapram-vm-test-')
    pidfile = os.path.join(tmp, 'pid')
    sock = os.path.join(tmp, 'qmp.sock')
    try:
        rc = subprocess.run([binary(), '-accel', ACCEL, '-m', '64M',
                             '-daemonize', '-pidfile', pidfile, '-qmp',
                             'unix:%s,server=on,wait=off' % sock],
                            timeout=20).returncode
        assert rc == 0
        pid = int(open(pidfile).read())
        assert os.path.exists(sock)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while os.path.exists(pidfile) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not os.path.exists(pidfile)
    finally:
        subprocess.run(['rm', '-rf', tmp])


def test_high_memory():
    """A 6 GiB guest whose test range lies above 4 GiB: the identity map
    covers all of pc.ram."""
    vm = VM(ACCEL, ram='6G', test_range='5G,5152M')
    try:
        wait_for_serial(vm.serial)
        vm.qmp.cmd('stop')
        mem = pmemsave(vm, 'high', vm.start, vm.end)
        bad_pages = check_guest_ram(mem, vm.start, vm.end, vm.start)
        if bad_pages:
            fail('RAM check failed at %s' % [hex(x) for x in bad_pages[:10]])
        # below the range nothing was touched
        assert vm.memory(vm.start - 4096, vm.start) == bytes(4096)
        assert vm.quit() == 0
    finally:
        vm.kill()


def in_namespace_without_kvm(args):
    """Run mapram-vm with /dev/kvm replaced by /dev/null (a private mount
    namespace); None when this host cannot do that."""
    script = 'mount --bind /dev/null /dev/kvm && exec "$@"'
    try:
        return subprocess.run(['unshare', '-m', 'sh', '-c', script, 'sh']
                              + args, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None


def test_kvm_fallback():
    if ACCEL != 'thread':
        return
    tmp = tempfile.mkdtemp(prefix='mapram-vm-test-')
    pidfile = os.path.join(tmp, 'pid')
    try:
        r = in_namespace_without_kvm([binary(), '-m', '64M', '-daemonize',
                                      '-pidfile', pidfile])
        if r is None or (r.returncode != 0 and b'mount' in r.stderr):
            print('skip: cannot hide /dev/kvm here')
            return
        assert r.returncode == 0, r
        lines = r.stderr.decode().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith('mapram-vm: kvm not usable ('), lines
        assert lines[0].endswith('), falling back to -accel thread'), lines
        os.kill(int(open(pidfile).read()), signal.SIGTERM)
        r = in_namespace_without_kvm([binary(), '-m', '64M', '-accel', 'kvm'])
        assert r.returncode == 1, r
        assert r.stderr.decode() == ('mapram-vm: /dev/kvm is not a KVM device or '
                                   'speaks another API version\n'), r
    finally:
        subprocess.run(['rm', '-rf', tmp])


def mount_small_tmpfs(size):
    """A private tmpfs of `size` (None, with the reason, when this host
    does not let us mount one)."""
    tmp = tempfile.mkdtemp(prefix='mapram-vm-tmpfs-')
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=' + size,
                        'mapram-test', tmp], capture_output=True)
    if r.returncode != 0:
        os.rmdir(tmp)
        return None, r.stderr.decode().strip() or 'mount failed'
    return tmp, None


def test_ram_cannot_be_backed():
    """pc.ram in a file on an almost full tmpfs: the guest's first write
    to a page the filesystem cannot back stops the VM in internal-error,
    as QEMU does under KVM, and the monitor keeps serving."""
    tmp, why = mount_small_tmpfs('16M')
    if tmp is None:
        print('skip: cannot mount a tmpfs here (%s)' % why)
        return
    vm = None
    try:
        vm = VM(ACCEL, ram='64M', test_range='1M,64M', mem_dir=tmp)
        q = vm.qmp
        # The STOP event may come before this client negotiated: poll.
        deadline = time.monotonic() + 20
        while q.cmd('query-status')['status'] == 'running':
            if time.monotonic() > deadline:
                fail('the guest filled the tmpfs and kept running')
            time.sleep(0.01)
        assert q.cmd('query-status') == {'running': False,
                                         'status': 'internal-error'}
        assert q.hmp('info status') == \
            'VM status: paused (internal-error)\r\n'
        try:
            q.cmd('cont')
            fail('cont after internal-error succeeded')
        except QMPError as e:
            assert e.error['desc'] == ('Resetting the Virtual Machine is '
                                       'required'), e.error
        assert q.cmd('query-status')['status'] == 'internal-error'
        assert vm.quit() == 0, vm.stderr
        assert 'the vCPU stopped' in vm.stderr, vm.stderr
    finally:
        if vm:
            vm.kill()
        subprocess.run(['umount', '-l', tmp])
        os.rmdir(tmp)


def bad(args, message):
    r = subprocess.run([binary()] + args, capture_output=True, timeout=20)
    assert r.returncode == 1, (args, r.returncode)
    assert r.stderr.decode() == 'mapram-vm: %s\n' % message, r.stderr


def test_bad_options():
    bad(['-frobnicate'], '-frobnicate: invalid option')
    bad(['-m'], '-m: requires an argument')
    bad(['-m', '1000G'], '-m 1000G: RAM size must be between 64M and 64G')
    bad(['-object', 'memory-backend-ram,id=m,size=64M', '-m', '128M',
         '-machine', 'memory-backend=m'],
        'Machine memory size does not match the size of the memory backend')
    bad(['-accel', 'hax'], '-accel hax: invalid accelerator hax')
    bad(['-serial', 'file:/nonexistent/dir/serial', '-accel', ACCEL],
        "could not open '/nonexistent/dir/serial': No such file or directory")


def main():
    if ACCEL == 'kvm' and not have_kvm():
        print('no usable /dev/kvm: skipped')
        return 77
    tests = [v for k, v in sorted(globals().items()) if k.startswith('test_')]
    failed = 0
    for t in tests:
        try:
            t()
            print('ok   %s/%s' % (ACCEL, t.__name__))
        except Exception as e:  # report every case, then fail
            failed += 1
            print('FAIL %s/%s: %r' % (ACCEL, t.__name__, e))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
