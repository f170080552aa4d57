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
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'lib'))
from mrtest import (Qemu, QMPProxy, run_mapram, read_header,  # noqa: E402
                    same_file, main, mapram_bin, STATE_DONE, SKIP)

FAULTS = False      # argv[2] == '1': the tool has the fault seam

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


def pmemsave(q, workdir):
    """The guest-physical view of RAM, as QEMU dumps it."""
    out = os.path.join(workdir, q.name + '.pmem')
    q.qmp.cmd('pmemsave', {'val': 0, 'size': RAM, 'filename': out})
    return out


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


def roundtrip(workdir, channels, live, params=None):
    path = os.path.join(workdir, 'vm.sav')
    extra = dirtier_bios(workdir) if live else []
    with Qemu(workdir, 'src', prefill=True, paused=not live,
              extra=extra) as src, \
         Qemu(workdir, 'dst', incoming=True, extra=extra) as dst, \
         Qemu(workdir, 'dst2', incoming=True, extra=extra) as dst2:
        args = ['save', '--qmp', src.sock_path, path, '--channels', channels,
                '--transport', 'socket', '--json']
        if params:
            src.qmp.cmd('migrate-set-parameters', params)
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
        check(same_file(pmemsave(src, workdir), pmemsave(dst, workdir)),
              'pmemsave of the restored guest differs from the source')
        run_mapram('restore', '--qmp', dst2.sock_path, path, '--paused',
                   *restore_args(), expect_rc=0)
        check(same_file(src.ram_path, dst2.ram_path),
              'guest RAM differs after mapram restore')


def case_rt(channels, live, params=None):
    return lambda w: roundtrip(w, channels, live, params)


# ---- faults ----------------------------------------------------------------

def save_cmd(sock, path, *extra):
    return [mapram_bin(), 'save', '--qmp', sock, path, '--transport',
            'socket', '--channels', '2'] + list(extra)


def run_env(cmd, env=None):
    e = dict(os.environ)
    e.update(env or {})
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=90,
                         env=e)
    print('$ %s\n-> rc=%d\nstdout: %sstderr: %s' % (' '.join(cmd),
          res.returncode, res.stdout, res.stderr))
    return res


def wait_idle(src):
    """The VM's migration is over (failed or cancelled), never completed."""
    deadline = time.monotonic() + 30
    while True:
        st = src.qmp.cmd('query-migrate').get('status')
        if st in ('failed', 'cancelled', 'none'):
            return st
        check(st != 'completed', 'the VM reported completed for a failed '
              'save')
        check(time.monotonic() < deadline, 'migration still %s' % st)
        time.sleep(0.05)


def check_untouched(src, was, path, workdir, old=None):
    """VM as it was, no fdset, no file that looks complete, no leftovers."""
    wait_idle(src)
    check(src.status() == was, 'source: %s, was %s' % (src.status(), was))
    check(src.fdsets() == [], 'fdsets left: %r' % src.fdsets())
    if old is None:
        check(not os.path.exists(path), 'a partial file was left')
    else:
        with open(path, 'rb') as f:
            check(f.read() == old, 'the previous file was damaged')
    left = [n for n in os.listdir(workdir) if 'mapram-partial' in n]
    check(not left, 'leftovers: %r' % left)


def fault_case(workdir, fault, message, running=True, force=False):
    if not FAULTS:
        print('SKIP: needs -Dfault_injection=true')
        return SKIP
    path = os.path.join(workdir, 'vm.sav')
    old = None
    if force:
        old = b'the previous save'
        with open(path, 'wb') as f:
            f.write(old)
    with Qemu(workdir, 'src', prefill=True, paused=not running) as src:
        was = src.status()
        extra = ['--force'] if force else []
        res = run_env(save_cmd(src.sock_path, path, *extra),
                      {'MAPRAM_FAULT': fault})
        expect_error(res, message)
        check_untouched(src, was, path, workdir, old)


class Relay:
    """Between QEMU and the tool on the migration sockets: the proxy's
    `migrate` hook points QEMU here, each connection is forwarded to the
    tool's socket (the tool accepts them: they come from this process,
    which is its monitor's peer), and `policy` alters the bytes."""

    def __init__(self, workdir, src, policy):
        self.path = os.path.join(workdir, 'relay.sock')
        self.src, self.policy = src, policy
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(self.path)
        self.lsock.listen(16)
        self.target = None
        self.threads = []

    def migrate_hook(self, proxy, args):
        self.target = args['uri'][len('unix:'):]
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.src.qmp.cmd('migrate', {'uri': 'unix:' + self.path})
        return {'return': {}}

    def _accept(self):
        while True:
            try:
                q, _ = self.lsock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._conn, args=(q,), daemon=True)
            t.start()

    def _conn(self, q):
        head = b''
        while len(head) < 4:
            head = q.recv(64, socket.MSG_PEEK)
            if not head:
                return
        kind = 'main' if head[:4] == b'QEVM' else 'chan'
        if kind == 'chan':
            while len(head) < 64:
                head = q.recv(64, socket.MSG_PEEK)
        t = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if kind == 'main' and self.policy == 'extra':
            deadline = time.monotonic() + 10
            while not hasattr(self, 'chan0') and time.monotonic() < deadline:
                time.sleep(0.01)
            # a second connection claiming channel 0, before the main one
            dup = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            dup.connect(self.target)
            dup.sendall(self.chan0)
            self.threads.append(dup)
        if kind == 'chan' and head[24] == 0:
            self.chan0 = head[:64]
        try:
            t.connect(self.target)
        except OSError:
            q.close()
            return
        back = threading.Thread(target=self._pump, args=(t, q, None),
                                daemon=True)
        back.start()
        self._pump(q, t, kind if kind == 'main' else head[24])

    def _pump(self, a, b, what):
        """a -> b; `what` is 'main', a channel id, or None (tool -> VM)."""
        sent, held = 0, b''
        cut_main = what == 'main' and self.policy == 'no-eof'
        a.settimeout(0.5 if cut_main else None)
        while True:
            try:
                data = a.recv(1 << 16)
            except socket.timeout:
                j = held.rfind(b'\x00\x06')
                if j > 5 and len(held) - j - 6 == int.from_bytes(
                        held[j + 2:j + 6], 'big'):
                    # QEMU is done: forward all but the EOF record and
                    # the VMDESCRIPTION after it
                    b.sendall(held[:j])
                    held = b''
                    b.shutdown(socket.SHUT_WR)
                elif held:
                    b.sendall(held)
                    held = b''
                continue
            except OSError:
                data = b''
            if not data:
                break
            if cut_main:
                held += data
                if len(held) > 1 << 20:
                    b.sendall(held[:-(1 << 19)])
                    held = held[-(1 << 19):]
                continue
            if what == 0 and self.policy == 'cut-channel' and \
                    sent + len(data) > 64 + 1344 + 4096 * 40:
                b.sendall(data[:64 + 1344 + 4096 * 40 - sent])
                break
            try:
                b.sendall(data)
            except OSError:
                break
            sent += len(data)
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.lsock.close()


def relay_case(workdir, policy, message):
    path = os.path.join(workdir, 'vm.sav')
    proxy_path = os.path.join(workdir, 'proxy.sock')
    with Qemu(workdir, 'src', prefill=True, paused=False) as src:
        relay = Relay(workdir, src, policy)
        proxy = QMPProxy(proxy_path, src.sock_path,
                         hooks={'migrate': relay.migrate_hook})
        try:
            res = run_env(save_cmd(proxy_path, path))
        finally:
            proxy.close()
            relay.close()
        expect_error(res, message)
        check_untouched(src, 'running', path, workdir)


def case_foreign_peer(workdir):
    """The monitor's peer is a proxy (this process), so QEMU's own
    connections come from a process that is not the monitor's peer."""
    path = os.path.join(workdir, 'vm.sav')
    proxy_path = os.path.join(workdir, 'proxy.sock')
    with Qemu(workdir, 'src', prefill=True, paused=False) as src:
        proxy = QMPProxy(proxy_path, src.sock_path)
        try:
            res = run_env(save_cmd(proxy_path, path))
        finally:
            proxy.close()
        expect_error(res, 'refused a migration connection from pid %d: only '
                     'the VM (pid %d) may connect' % (src.proc.pid,
                                                      os.getpid()))
        check_untouched(src, 'running', path, workdir)


def case_signal(workdir, sig):
    """SIGINT: cancelled, VM running again, file removed.  SIGKILL: the
    VM's migration fails (or it sits paused) and the file stays PART."""
    path = os.path.join(workdir, 'vm.sav')
    with Qemu(workdir, 'src', ram_mib=1024, paused=False) as src:
        p = subprocess.Popen(save_cmd(src.sock_path, path, '--json'),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        for line in p.stdout:
            if '"written_bytes"' in line and '"written_bytes":0' not in line:
                break
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
        print('rc=%d stderr=%s' % (p.returncode, err))
        if sig == signal.SIGINT:
            if p.returncode == 0:
                check(read_header(path)['state'] == STATE_DONE, 'DONE?')
                return
            check(err.strip().endswith('interrupted by SIGINT'), err)
            check_untouched(src, 'running', path, workdir)
            return
        # killed: nobody resumes the VM it paused, and a QEMU that had
        # already sent everything takes the closed return path for success
        # (docs/peer-save.md); but the file never looks complete and no
        # fdset is left
        deadline = time.monotonic() + 30
        while True:
            st = src.qmp.cmd('query-migrate').get('status')
            if st in ('failed', 'cancelled', 'completed'):
                break
            check(time.monotonic() < deadline, 'migration still %s' % st)
            time.sleep(0.05)
        print('after SIGKILL: migration %s, VM %s' % (st, src.status()))
        check(src.fdsets() == [], 'fdsets left')
        res = run_mapram('verify', path)
        if read_header(path)['state'] == STATE_DONE:
            # the save won the race: then the file must be whole
            check(res.returncode == 0, 'a DONE file that does not verify')
            return
        check(res.returncode != 0, 'verify accepted a killed save')


CASES = {
    'paused-1': case_rt(1, False),
    'paused-2': case_rt(2, False),
    'paused-4': case_rt(4, False),
    'live-1': case_rt(1, True),
    'live-2': case_rt(2, True),
    'live-4': case_rt(4, True),
    # zero pages as ZERO records on the main socket, or as data
    'zero-legacy': case_rt(2, True, {'zero-page-detection': 'legacy'}),
    'zero-none': case_rt(2, False, {'zero-page-detection': 'none'}),
    'err-enospc': lambda w: fault_case(w, 'pwrite:12:enospc',
                                       'No space left on device'),
    'err-eio': lambda w: fault_case(w, 'pwrite:12:eio',
                                    'Input/output error'),
    'err-sync-eio': lambda w: fault_case(w, 'fdatasync:1:eio',
                                         'cannot sync the file'),
    'err-paused-eio': lambda w: fault_case(w, 'pwrite:12:eio',
                                           'Input/output error',
                                           running=False),
    'err-force-keeps-old': lambda w: fault_case(w, 'pwrite:12:enospc',
                                                'No space left on device',
                                                force=True),
    'err-foreign-peer': case_foreign_peer,
    # QEMU's own error always: the cut may leave the tool's channel held
    # at a SYNC, so whether the tool also names it is a race
    'err-channel-cut': lambda w: relay_case(
        w, 'cut-channel', 'migration failed: Unable to write to socket'),
    'err-extra-connection': lambda w: relay_case(
        w, 'extra', "multifd: received id '0' already setup'"),
    'err-no-eof': lambda w: relay_case(w, 'no-eof', 'without its EOF record'),
    'sigint': lambda w: case_signal(w, signal.SIGINT),
    'sigkill': lambda w: case_signal(w, signal.SIGKILL),
}

if __name__ == '__main__':
    if len(sys.argv) == 3:
        FAULTS = sys.argv.pop() == '1'
    main(CASES)
