#!/usr/bin/env python3
"""`mapram restore --transport socket` into a real QEMU 10 waiting with
`-incoming defer`: the tool reads the file, verifies every extent against
its checksum trailer and sends it over multifd UNIX sockets.  Files: a
mapram save of a QEMU guest (sealed with `mapram seal`) and QEMU's own bare
`file:` mapped-ram save; 1, 2 and 4 channels, paused and running.  Guest
RAM is compared byte for byte with the source's (pmemsave).  Bad files and
faults (a corrupt extent, a truncated file, a peer that is not the VM,
SIGINT and SIGKILL of the tool, EIO on read) never let the guest run.
Usage: test_peer_restore.py CASE  (meson runs one test per case).
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'lib'))
from mrtest import (Qemu, QMPProxy, run_mapram, same_file, main,  # noqa: E402
                    mapram_bin, SKIP)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def qemu_save(src, path):
    """QEMU's own `migrate file:PATH` with mapped-ram (a bare save)."""
    src.qmp.cmd('migrate-set-capabilities', {'capabilities': [
        {'capability': 'mapped-ram', 'state': True}]})
    src.qmp.cmd('migrate', {'uri': 'file:' + path})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = src.qmp.cmd('query-migrate').get('status')
        if st == 'completed':
            return
        check(st not in ('failed', 'cancelled'), 'save %s' % st)
        time.sleep(0.05)
    raise AssertionError('save did not finish')


def mapram_save(src, path, seal=True):
    run_mapram('save', '--qmp', src.sock_path, path, '--channels', 2,
               '--transport', 'file', expect_rc=0) \
        if save_has_transport() else \
        run_mapram('save', '--qmp', src.sock_path, path, '--channels', 2,
                   expect_rc=0)
    if seal:
        run_mapram('seal', path, expect_rc=0)


def save_has_transport():
    res = subprocess.run([mapram_bin(), 'save', '--help'],
                         capture_output=True, text=True)
    return '--transport' in res.stdout


def pmem(vm, workdir, name):
    path = os.path.join(workdir, name)
    vm.qmp.cmd('pmemsave', {'val': 0, 'size': vm.ram_mib << 20,
                            'filename': path})
    with open(path, 'rb') as f:
        return f.read()


def migrate_status(vm):
    return vm.qmp.cmd('query-migrate').get('status', 'none')


def restore(dst, path, *args, expect_rc=0):
    return run_mapram('restore', '--qmp', dst.sock_path, path,
                      '--transport', 'socket', *args, expect_rc=expect_rc)


def roundtrip(workdir, kind, channels, running=False):
    path = os.path.join(workdir, 'vm.sav')
    os.environ['XDG_RUNTIME_DIR'] = workdir   # where the 0700 dir goes
    with Qemu(workdir, 'src', prefill=True) as src:
        if kind == 'mapram':
            mapram_save(src, path)
        else:
            qemu_save(src, path)
        want = pmem(src, workdir, 'src.pmem')
        with Qemu(workdir, 'dst', incoming=True) as dst:
            res = restore(dst, path, '--channels', channels, '--json',
                          '--running' if running else '--paused')
            done = json.loads(res.stdout.splitlines()[-1])
            check(done['event'] == 'done' and done['transport'] == 'socket',
                  repr(done))
            unverified = 'no checksum trailer' in res.stderr
            check(unverified == (kind == 'bare'),
                  'trailer note: %r' % res.stderr)
            check(migrate_status(dst) == 'completed', migrate_status(dst))
            if running:
                check(dst.status() == 'running', dst.status())
                dst.qmp.cmd('stop')
            else:
                check(dst.status() in ('paused', 'prelaunch'), dst.status())
            got = pmem(dst, workdir, 'dst.pmem')
            if not running:
                check(got == want, 'guest RAM differs after restore')
            else:  # the firmware ran: compare the test pattern above 1 MiB
                check(got[1 << 20:] == want[1 << 20:],
                      'guest RAM differs after a running restore')
            check(same_file(src.ram_path, dst.ram_path) or running,
                  'RAM files differ')
            check(not [e for e in os.listdir(workdir)
                       if e.startswith('mapram.')],
                  'rendezvous directory left: %r' % os.listdir(workdir))
    print('OK: %s restore over %d sockets (%s)' %
          (kind, channels, 'running' if running else 'paused'))


def never_ran(dst, what):
    st = dst.status()
    check(st != 'running', '%s: the guest runs (%s)' % (what, st))
    check(migrate_status(dst) in ('failed', 'none', 'setup'),
          '%s: migration %s' % (what, migrate_status(dst)))


def flip_page_byte(path):
    """A byte of the first present page of block 'mem', via inspect."""
    res = run_mapram('inspect', '--json', path, expect_rc=0)
    blocks = json.loads(res.stdout)['ram']['blocks']
    mem = [b for b in blocks if b['name'] == 'mem'][0]
    off = mem['pages_offset'] + (2 << 20) + 123  # in the test pattern
    with open(path, 'r+b') as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x5a]))


def case_corrupt(workdir):
    path = os.path.join(workdir, 'vm.sav')
    with Qemu(workdir, 'src', prefill=True) as src:
        mapram_save(src, path)
    flip_page_byte(path)
    with Qemu(workdir, 'dst', incoming=True) as dst:
        res = restore(dst, path, '--channels', 2, expect_rc=1)
        check('checksum mismatch in RAM block mem extent 2' in res.stderr,
              res.stderr)
        never_ran(dst, 'corrupt extent')
        check(migrate_status(dst) == 'failed', migrate_status(dst))


def case_corrupt_device_state(workdir):
    """A flipped byte in a device section of a sealed file: the stream
    CRC refuses it before anything is sent, with the default transport
    too (never handed to the file path)."""
    path = os.path.join(workdir, 'vm.sav')
    with Qemu(workdir, 'src', prefill=True) as src:
        mapram_save(src, path)
    res = run_mapram('inspect', '--json', path, expect_rc=0)
    full = [x for x in json.loads(res.stdout)['sections']
            if x['type'] == 'FULL' and x['end'] - x['start'] > 200][-1]
    with open(path, 'r+b') as f:
        f.seek(full['start'] + 150)
        b = f.read(1)
        f.seek(full['start'] + 150)
        f.write(bytes([b[0] ^ 1]))
    with Qemu(workdir, 'dst', incoming=True) as dst:
        res = run_mapram('restore', '--qmp', dst.sock_path, path,
                         expect_rc=1)
        check('stream checksum mismatch' in res.stderr, res.stderr)
        never_ran(dst, 'corrupt device state')
        check(migrate_status(dst) == 'none', migrate_status(dst))


def case_truncated(workdir):
    path = os.path.join(workdir, 'vm.sav')
    with Qemu(workdir, 'src', prefill=True) as src:
        mapram_save(src, path)
    size = os.path.getsize(path)
    os.truncate(path, size // 2)
    with Qemu(workdir, 'dst', incoming=True) as dst:
        res = restore(dst, path, expect_rc=1)
        check(res.stderr.strip(), 'no message')
        never_ran(dst, 'truncated file')
        check(migrate_status(dst) == 'none', 'something was sent: %s'
              % migrate_status(dst))


def case_foreign_peer(workdir):
    """QMP through a proxy: the migration socket's peer (QEMU) is not the
    monitor's peer (this process), so every connection is refused."""
    path = os.path.join(workdir, 'vm.sav')
    with Qemu(workdir, 'src', prefill=True) as src:
        mapram_save(src, path)
    with Qemu(workdir, 'dst', incoming=True) as dst:
        proxy_path = os.path.join(workdir, 'proxy.sock')
        proxy = QMPProxy(proxy_path, dst.sock_path)
        try:
            res = run_mapram('restore', '--qmp', proxy_path, path,
                             '--transport', 'socket', expect_rc=1)
        finally:
            proxy.close()
        check('not the VM (pid %d)' % os.getpid() in res.stderr, res.stderr)
        never_ran(dst, 'foreign peer')


def background_restore(dst, path, *args, env=None):
    return subprocess.Popen([mapram_bin(), 'restore', '--qmp', dst.sock_path,
                             path, '--transport', 'socket', '--json'] +
                            [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_sending(proc):
    """Until the tool reports a first progress line of its own sending."""
    for line in proc.stdout:
        ev = json.loads(line)
        if ev.get('event') == 'progress' and ev.get('status') == 'active':
            return
    raise AssertionError('no progress before the end: %s' % proc.stderr.read())


def signal_case(workdir, signo):
    """The signal lands while pages are sent: the destination is stopped
    (SIGSTOP) from the tool's first progress line until after the signal,
    so the send cannot have finished."""
    path = os.path.join(workdir, 'vm.sav')
    with Qemu(workdir, 'src', ram_mib=256, prefill=True) as src:
        mapram_save(src, path)
    with Qemu(workdir, 'dst', ram_mib=256, incoming=True) as dst:
        proc = background_restore(dst, path, '--channels', 2, '--running')
        wait_sending(proc)
        os.kill(dst.proc.pid, signal.SIGSTOP)
        proc.send_signal(signo)
        time.sleep(0.5)
        os.kill(dst.proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
        print('rc=%d\n%s%s' % (proc.returncode, out, err))
        check(proc.returncode != 0, 'the tool succeeded')
        deadline = time.monotonic() + 20
        while migrate_status(dst) not in ('failed',) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        never_ran(dst, 'signal %d' % signo)
        check(migrate_status(dst) == 'failed', migrate_status(dst))
        if signo == signal.SIGINT:
            check('interrupted' in err, err)


def case_sigint(workdir):
    signal_case(workdir, signal.SIGINT)


def case_sigkill(workdir):
    signal_case(workdir, signal.SIGKILL)


def case_eio(workdir):
    """MAPRAM_FAULT fails a page read (fault-injection builds only)."""
    path = os.path.join(workdir, 'vm.sav')
    with Qemu(workdir, 'src', prefill=True) as src:
        mapram_save(src, path)
    with Qemu(workdir, 'dst', incoming=True) as dst:
        env = dict(os.environ, MAPRAM_FAULT='pread:3:eio')
        proc = background_restore(dst, path, '--channels', 2, env=env)
        out, err = proc.communicate(timeout=60)
        print('rc=%d\n%s%s' % (proc.returncode, out, err))
        if proc.returncode == 0:
            print('SKIP: not a fault-injection build')
            return SKIP
        check('Unable to read from file: Input/output error' in err, err)
        never_ran(dst, 'EIO')


def case_dest_closes(workdir):
    """The destination dies while pages are sent: a clear error."""
    path = os.path.join(workdir, 'vm.sav')
    with Qemu(workdir, 'src', ram_mib=256, prefill=True) as src:
        mapram_save(src, path)
    with Qemu(workdir, 'dst', ram_mib=256, incoming=True) as dst:
        proc = background_restore(dst, path, '--channels', 2)
        wait_sending(proc)
        os.kill(dst.proc.pid, signal.SIGSTOP)   # it cannot finish first
        dst.proc.kill()
        out, err = proc.communicate(timeout=60)
        print('rc=%d\n%s%s' % (proc.returncode, out, err))
        check(proc.returncode == 1, 'rc %d' % proc.returncode)
        check('the destination closed' in err, err)


CASES = {'dest-closes': case_dest_closes, 'corrupt': case_corrupt,
         'truncated': case_truncated,
         'corrupt-device-state': case_corrupt_device_state, 'foreign-peer': case_foreign_peer,
         'sigint': case_sigint, 'sigkill': case_sigkill, 'eio': case_eio}
for _k in ('mapram', 'bare'):
    for _n in (1, 2, 4):
        CASES['%s-%d' % (_k, _n)] = (
            lambda w, k=_k, n=_n: roundtrip(w, k, n))
    CASES['%s-running' % _k] = (
        lambda w, k=_k: roundtrip(w, k, 2, running=True))

if __name__ == '__main__':
    sys.exit(main(CASES))
