#!/usr/bin/env python3
"""The save/restore benchmark: mapram-vm against a real QEMU 10, same run.

Called by bench/run.sh (see bench/README.md for the knobs).  For every
selected case it starts the VM with prefilled guest memory, saves it to a
file on the bench directory over QMP, drops the caches, restores the file
into a fresh VM, checks the restored memory against the source, and
records wall time, CPU seconds of the VM process, page-cache growth and the
file's apparent/allocated size.  Device limits (fio, memcpy, populate) are
measured in the same run.  Results go to a JSON file, a Markdown report
(stdout and docs/performance.md between the bench markers) and gnuplot PNGs.
"""
import fnmatch
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf('SC_CLK_TCK')
QEMU = '/usr/bin/qemu-system-x86_64'
GIB = 1 << 30


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_size(s):
    mult = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
    s = s.strip().upper().rstrip('B').rstrip('I')
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


# ---------------------------------------------------------------- QMP ----

class Qmp:
    def __init__(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise RuntimeError('no QMP socket at %s' % path)
                time.sleep(0.05)
        self.buf = b''
        self.events = []
        self._read()                       # greeting
        self.cmd('qmp_capabilities')

    def _read(self):
        while b'\n' not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError('QMP connection closed')
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {'execute': name}
        if args:
            msg['arguments'] = args
        self.sock.sendall(json.dumps(msg).encode() + b'\n')
        while True:
            r = self._read()
            if 'event' in r:
                self.events.append(r)
                continue
            if 'error' in r:
                raise RuntimeError('%s: %s' % (name, r['error'].get('desc')))
            return r.get('return')

    def close(self):
        self.sock.close()


# ------------------------------------------------------- measurements ----

def meminfo():
    out = {}
    with open('/proc/meminfo') as f:
        for line in f:
            k, v = line.split(':')
            out[k] = int(v.split()[0]) * 1024
    return out


def pagecache_bytes():
    """Page cache without tmpfs: the guest memory files live in /dev/shm
    and would otherwise count as cache growth on the destination."""
    m = meminfo()
    return m['Cached'] - m['Shmem']


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def file_cached_bytes(path):
    """How much of `path` sits in the page cache (mincore, via fincore)."""
    try:
        out = subprocess.check_output(['fincore', '--bytes', '--noheadings',
                                       '--output', 'RES', path], text=True)
        return int(out.split()[0])
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return -1


def drop_caches():
    os.sync()
    try:
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('3\n')
    except OSError as e:
        log('cannot drop caches (%s); figures include cached data' % e)


def loadavg():
    with open('/proc/loadavg') as f:
        return f.read().split()[0]


# ---------------------------------------------------------------- VMs ----

class Vm:
    """One VM process (mapram-vm or QEMU) with its QMP connection."""

    def __init__(self, kind, cfg, memfile, incoming=False, paused=True,
                 live_range=None, prealloc=False):
        self.kind = kind
        self.sockpath = os.path.join(cfg.workdir, 'qmp-%s-%s.sock' % (
            kind, 'dst' if incoming else 'src'))
        if os.path.exists(self.sockpath):
            os.unlink(self.sockpath)
        size = cfg.size
        backend = ('memory-backend-file,id=mem,size=%d,mem-path=%s,share=on'
                   % (size, memfile))
        if prealloc:
            # a running guest has its memory mapped: fault it in before
            # the timer starts, on both VMs alike
            backend += ',prealloc=on'
        if kind == 'qemu':
            argv = [QEMU, '-machine', 'q35', '-accel', 'kvm',
                    '-m', '%dM' % (size >> 20), '-object', backend,
                    '-machine', 'memory-backend=mem', '-nographic',
                    '-nodefaults', '-S']
        else:
            argv = [cfg.vm_bin, '-m', '%dM' % (size >> 20), '-object',
                    backend, '-machine', 'memory-backend=mem',
                    '-accel', 'kvm', '-accel', 'thread', '-serial', 'none']
            if paused:
                argv.append('-S')
            if live_range:
                argv += ['-test-range', live_range]
        argv += ['-qmp', 'unix:%s,server=on,wait=off' % self.sockpath]
        if incoming:
            argv += ['-incoming', 'defer']
        self.log = open(os.path.join(cfg.workdir, '%s-%s.log' % (
            kind, 'dst' if incoming else 'src')), 'w')
        self.proc = subprocess.Popen(argv, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            self.qmp = Qmp(self.sockpath)
        except Exception:
            self.kill()
            raise

    def setup(self, case, cfg):
        caps = [{'capability': 'mapped-ram', 'state': case.mapped_ram},
                {'capability': 'multifd', 'state': case.channels > 0}]
        self.qmp.cmd('migrate-set-capabilities', capabilities=caps)
        params = {'max-bandwidth': 0}
        if case.channels:
            params['multifd-channels'] = case.channels
        if case.dio:
            params['direct-io'] = True
        self.qmp.cmd('migrate-set-parameters', **params)

    def wait_migration(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            info = self.qmp.cmd('query-migrate')
            st = info.get('status')
            if st in ('completed', 'failed', 'cancelled'):
                return info
            if time.monotonic() > deadline:
                self.qmp.cmd('migrate_cancel')
                while self.qmp.cmd('query-migrate').get('status') not in (
                        'cancelled', 'failed', 'completed'):
                    time.sleep(0.05)
                return {'status': 'timeout', 'error-desc': 'no completion '
                        'after %.0f s' % timeout, **info}
            time.sleep(0.01)

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self.log.close()

    def quit(self):
        try:
            self.qmp.cmd('quit')
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


# -------------------------------------------------------------- cases ----

class Case:
    def __init__(self, name):
        self.name = name
        self.live = name.endswith('-live')
        base = name[:-5] if self.live else name
        self.dio = base.endswith('-dio')
        base = base[:-4] if self.dio else base
        self.mapped_ram = base != 'legacy'
        self.channels = int(base[2:]) if base.startswith('mf') else 0


def case_names(cfg):
    names = ['legacy', 'mr']
    for ch in cfg.channels:
        names += ['mf%d' % ch, 'mf%d-dio' % ch]
    return names


def selected(cfg):
    out = []
    for vm in cfg.vms:
        for layout in cfg.layouts:
            for live in ([False, True] if vm == 'mapram' and cfg.live
                         else [False]):
                for n in case_names(cfg):
                    full = n + ('-live' if live else '')
                    key = '%s/%s/%s' % (vm, layout, full)
                    if any(fnmatch.fnmatch(key, p) for p in cfg.cases):
                        out.append((vm, layout, Case(full)))
    return out


def file_sizes(path):
    st = os.stat(path)
    return st.st_size, st.st_blocks * 512


def compare(a, b):
    return subprocess.call(['cmp', '-s', a, b]) == 0


def timed_migration(cfg, vm, command, savefile, op, r):
    """Run `command` (migrate / migrate-incoming) on the file until it
    ends; record wall time, the VM's CPU seconds, page-cache growth and
    how much of the file is cached as r[op + '_...']."""
    c0, p0, t0 = cpu_seconds(vm.proc.pid), pagecache_bytes(), time.monotonic()
    vm.qmp.cmd(command, uri='file:' + savefile)
    info = vm.wait_migration(cfg.timeout)
    r[op + '_s'] = time.monotonic() - t0
    r[op + '_cpu_s'] = cpu_seconds(vm.proc.pid) - c0
    r[op + '_cache_bytes'] = pagecache_bytes() - p0
    r[op + '_file_cached_bytes'] = file_cached_bytes(savefile)
    return info


def one_rep(cfg, vm_kind, layout, case, srcmem):
    """Save then restore once; returns a dict of figures."""
    savefile = os.path.join(cfg.datadir, 'save.img')
    dstmem = os.path.join(cfg.shmdir, 'dst.mem')
    for p in (savefile, dstmem):
        if os.path.exists(p):
            os.unlink(p)
    if case.live:
        prefill(cfg, srcmem, layout)
    r = {'load_avg': loadavg()}
    drop_caches()
    src = Vm(vm_kind, cfg, srcmem, paused=not case.live,
             live_range=cfg.live_range if case.live else None,
             prealloc=cfg.prealloc_src)
    try:
        src.setup(case, cfg)
        if case.live:
            time.sleep(cfg.live_warmup)
        info = timed_migration(cfg, src, 'migrate', savefile, 'save', r)
        r['save_status'] = info.get('status')
        if info.get('status') != 'completed':
            r['error'] = 'save: %s' % info.get('error-desc', info['status'])
            return r
        ram = info.get('ram', {})
        r['dirty_sync_count'] = ram.get('dirty-sync-count')
        r['downtime_ms'] = info.get('downtime')
    finally:
        src.quit()
    r['file_bytes'], r['file_alloc_bytes'] = file_sizes(savefile)
    drop_caches()
    prepare_destination_memory(cfg)
    dst = Vm(vm_kind, cfg, dstmem, incoming=True)
    try:
        dst.setup(case, cfg)
        info = timed_migration(cfg, dst, 'migrate-incoming', savefile,
                               'restore', r)
        if info.get('status') != 'completed':
            r['error'] = 'restore: %s' % info.get('error-desc',
                                                   info['status'])
            return r
    finally:
        dst.quit()
    if cfg.verify:
        r['verified'] = compare(srcmem, dstmem)
        if not r['verified']:
            r['error'] = 'restored memory differs from the source'
    os.unlink(dstmem)
    os.unlink(savefile)
    return r


def populate(cfg, threads):
    out = subprocess.check_output([cfg.memtool, 'populate', str(cfg.size),
                                   str(threads), 'shm'], text=True)
    return float(out.split()[1])


def prepare_destination_memory(cfg):
    """Put the host in the same state before every restore, for both VMs.

    This machine is itself a VM whose free memory the host takes back
    (virtio-balloon free page reporting, ~2 s after it is freed): the
    first touch of such "cold" memory costs a host fault and runs at less
    than half the rate of memory freed a moment ago.  Which one a restore
    gets would otherwise depend on timing.  warm: touch and free SIZE
    bytes right before; cold: let the host reclaim first."""
    if cfg.dst_memory == 'cold':
        time.sleep(cfg.cold_wait)
    else:
        populate(cfg, os.cpu_count())


def prefill(cfg, path, layout):
    out = subprocess.check_output([cfg.memtool, 'prefill', path,
                                   str(cfg.size), layout], text=True)
    return dict(line.split() for line in out.splitlines())


# ------------------------------------------------------- device limits --

def fio(cfg, rw, bs='1M', depth=16):
    """GB/s of data moved; rw 'write:4k' skips 4 KiB after every block."""
    path = os.path.join(cfg.datadir, 'fio.tmp')
    out = subprocess.check_output([
        'fio', '--name=limit', '--filename=' + path, '--rw=' + rw,
        '--bs=' + bs, '--direct=1', '--ioengine=libaio',
        '--iodepth=%d' % depth, '--size=%d' % cfg.size,
        '--output-format=json'], text=True)
    job = json.loads(out)['jobs'][0]['read' if rw == 'read' else 'write']
    return job['bw_bytes'] / 1e9


def fio_again(cfg, lim):
    """The disk behind this VM drifts (host caching): measure it again at
    the end, and rate against the best figure seen."""
    drop_caches()
    lim['fio_write_end_gbps'] = fio(cfg, 'write')
    drop_caches()
    lim['fio_read_end_gbps'] = fio(cfg, 'read')
    os.unlink(os.path.join(cfg.datadir, 'fio.tmp'))
    lim['fio_write_gbps'] = max(lim['fio_write_gbps'],
                                lim['fio_write_end_gbps'])
    lim['fio_read_gbps'] = max(lim['fio_read_gbps'], lim['fio_read_end_gbps'])


def device_limits(cfg):
    lim = {'load_avg_start': loadavg()}
    drop_caches()
    w = [fio(cfg, 'write') for _ in range(cfg.reps)]
    drop_caches()
    rd = [fio(cfg, 'read') for _ in range(cfg.reps)]
    os.unlink(os.path.join(cfg.datadir, 'fio.tmp'))
    lim['fio_write_gbps'] = lim['fio_write_start_gbps'] = max(w)
    lim['fio_read_gbps'] = lim['fio_read_start_gbps'] = max(rd)
    # The best a writer that skips every isolated zero page can do: 16 KiB
    # of data, a 4 KiB hole, and so on (scattered runs average 5 pages).
    lim['fio_holes_write_gbps'] = max(
        fio(cfg, 'write:4k', bs='16k', depth=64) for _ in range(cfg.reps))
    os.unlink(os.path.join(cfg.datadir, 'fio.tmp'))
    out = subprocess.check_output([cfg.memtool, 'memcpy',
                                   str(min(cfg.size, 1 << 30))], text=True)
    lim['memcpy_gbps'] = float(out.split()[1])
    for threads in sorted({1, os.cpu_count()}):
        populate(cfg, threads)          # warm: memory freed just before
        lim['populate_%d_gbps' % threads] = max(
            populate(cfg, threads) for _ in range(cfg.reps))
    cold = []
    for _ in range(cfg.reps):
        time.sleep(cfg.cold_wait)
        cold.append(populate(cfg, os.cpu_count()))
    lim['populate_cold_gbps'] = max(cold)
    lim['populate_all_gbps'] = (lim['populate_cold_gbps']
                                if cfg.dst_memory == 'cold' else
                                lim['populate_%d_gbps' % os.cpu_count()])
    return lim


# -------------------------------------------------------------- report --

def summarise(reps, key):
    vals = [r[key] for r in reps if key in r and 'error' not in r]
    if not vals:
        return None
    return {'min': min(vals), 'median': statistics.median(vals)}


def gbps(cfg, secs):
    return cfg.size / secs / 1e9 if secs else 0.0


def fmt(v, spec='%.2f'):
    return '-' if v is None else spec % v


def build_rows(cfg, results, lim):
    rows = []
    by_key = {(x['vm'], x['layout'], x['case']): x for x in results}
    for x in results:
        row = dict(x)
        for op in ('save', 'restore'):
            t = summarise(x['reps'], op + '_s')
            if not t:
                continue
            row[op + '_min_s'] = t['min']
            row[op + '_med_s'] = t['median']
            row[op + '_gbps'] = gbps(cfg, t['min'])
            dev = lim['fio_write_gbps'] if op == 'save' else min(
                lim['fio_read_gbps'], lim['populate_all_gbps'])
            row[op + '_dev_ratio'] = row[op + '_gbps'] / dev
            q = by_key.get(('qemu', x['layout'], x['case']))
            qt = q and summarise(q['reps'], op + '_s')
            if qt:
                row[op + '_qemu_ratio'] = qt['min'] / t['min']
            cpu = summarise(x['reps'], op + '_cpu_s')
            row[op + '_cpu_per_gib'] = cpu['median'] / (cfg.size / GIB)
            cache = summarise(x['reps'], op + '_cache_bytes')
            row[op + '_syscache_mib'] = cache['median'] / (1 << 20)
            cache = summarise(x['reps'], op + '_file_cached_bytes')
            row[op + '_cache_mib'] = cache['median'] / (1 << 20)
        fb = summarise(x['reps'], 'file_bytes')
        fa = summarise(x['reps'], 'file_alloc_bytes')
        if fb:
            row['file_mib'] = fb['median'] / (1 << 20)
            row['alloc_mib'] = fa['median'] / (1 << 20)
        row['errors'] = sorted({r['error'] for r in x['reps'] if 'error'
                                in r})
        rows.append(row)
    return rows


def table(rows, op):
    head = ('| VM | layout | case | min s | median s | GB/s | x device | '
            'x QEMU | CPU-s/GiB | file cached MiB | sys cache MiB |')
    lines = [head, '|' + '---|' * 11]
    for r in rows:
        if op + '_min_s' not in r:
            lines.append('| %s | %s | %s | failed: %s ||||||||' % (
                r['vm'], r['layout'], r['case'], '; '.join(r['errors'])))
            continue
        lines.append('| %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %s | %.2f '
                     '| %.0f | %.0f |' % (
                         r['vm'], r['layout'], r['case'], r[op + '_min_s'],
                         r[op + '_med_s'], r[op + '_gbps'],
                         r[op + '_dev_ratio'],
                         fmt(r.get(op + '_qemu_ratio')),
                         r[op + '_cpu_per_gib'], r[op + '_cache_mib'],
                         r[op + '_syscache_mib']))
    return '\n'.join(lines)


def file_table(rows):
    lines = ['| VM | layout | case | apparent MiB | allocated MiB |',
             '|---|---|---|---|---|']
    for r in rows:
        if 'file_mib' in r and not r['case'].endswith('-live'):
            lines.append('| %s | %s | %s | %.0f | %.0f |' % (
                r['vm'], r['layout'], r['case'], r['file_mib'],
                r['alloc_mib']))
    return '\n'.join(lines)


def ceiling_line(cfg, lim, data_gbps):
    """What any writer can reach with isolated zero pages on this device:
    write the zeros too (the data is data_share of what moves) or skip
    them with small requests (fio's holes figure)."""
    whole = cfg.data_share * lim['fio_write_gbps']
    ceiling = max(whole, lim['fio_holes_write_gbps'])
    return ('  - ceiling for any writer here: %.2f GB/s of data = %.2fx fio '
            'write (%s); this case reaches %.2f of it' % (
                ceiling, ceiling / lim['fio_write_gbps'],
                'writing the zero pages too' if whole >= ceiling else
                'skipping them in 16 KiB requests', data_gbps / ceiling))


def target_lines(cfg, rows, lim):
    """The issue's targets, each with its measured value and margin."""
    out = []

    def best(vm, op, layout, pred=lambda r: True):
        c = [r for r in rows if r['vm'] == vm and r['layout'] == layout and
             op + '_gbps' in r and not r['case'].endswith('-live') and
             pred(r)]
        return max(c, key=lambda r: r[op + '_gbps']) if c else None

    def check(label, value, goal, unit='x'):
        ok = value >= goal if unit == 'x' else value <= goal
        out.append('- %s: %.2f%s (target %s %.2f%s) %s' % (
            label, value, unit if unit == 'x' else ' ' + unit,
            '>=' if unit == 'x' else '<=', goal,
            unit if unit == 'x' else ' ' + unit,
            'met' if ok else 'MISSED by %.0f %%' % (
                abs(value - goal) / goal * 100)))

    for layout in cfg.layouts:
        out.append('\n%s layout:\n' % layout)
        q = best('qemu', 'save', layout)
        dio = lambda r: r['case'].endswith('-dio')
        for label, m in (('best', best('mapram', 'save', layout)),
                         ('best direct-io', best('mapram', 'save', layout,
                                                 dio))):
            if not m:
                continue
            # the data share of the guest: the non-zero bytes saved per s
            data_gbps = m['save_gbps'] * cfg.data_share
            check('save, %s mapram (%s), non-zero data rate vs fio write'
                  % (label, m['case']), data_gbps / lim['fio_write_gbps'],
                  0.95)
            if layout == 'scattered' and 'fio_holes_write_gbps' in lim:
                out.append(ceiling_line(cfg, lim, data_gbps))
            if q:
                check('save, %s mapram (%s) vs best QEMU (%s)' % (
                      label, m['case'], q['case']),
                      m['save_gbps'] / q['save_gbps'], 1.3)
        m = best('mapram', 'restore', layout)
        q = best('qemu', 'restore', layout)
        if m:
            dev = min(lim['fio_read_gbps'], lim['populate_all_gbps'])
            check('restore, best mapram (%s) vs min(fio read, populate)'
                  % m['case'], m['restore_gbps'] / dev,
                  0.9)
            if q:
                check('restore, best mapram (%s) vs best QEMU (%s)' % (
                      m['case'], q['case']),
                      m['restore_gbps'] / q['restore_gbps'], 1.3)
        for r in rows:
            if (r['vm'] == 'mapram' and r['layout'] == layout and
                    r['case'].endswith('-dio') and 'save_gbps' in r):
                check('page-cache growth, %s save' % r['case'],
                      r['save_cache_mib'], 16 * cfg.size / (4 * GIB),
                      'MiB')
                if 'restore_cache_mib' in r:
                    check('page-cache growth, %s restore' % r['case'],
                          r['restore_cache_mib'],
                          16 * cfg.size / (4 * GIB), 'MiB')
                check('CPU per GiB, %s save' % r['case'],
                      r['save_cpu_per_gib'], 0.25, 'CPU-s')
        for r in rows:
            if (r['vm'] == 'mapram' and r['layout'] == layout and
                    r['case'].endswith('-live') and 'save_min_s' in r):
                paused = next((p for p in rows if p['vm'] == 'mapram' and
                               p['layout'] == layout and 'save_min_s' in p
                               and p['case'] == r['case'][:-5]), None)
                if paused:
                    check('live save %s time vs paused' % r['case'],
                          r['save_med_s'] / paused['save_med_s'], 1.5,
                          'x paused')
    return '\n'.join(out)


def plots(cfg, rows, lim):
    if not shutil.which('gnuplot'):
        log('gnuplot not found: no plots')
        return []
    os.makedirs(cfg.plotdir, exist_ok=True)
    made = []
    for op in ('save', 'restore'):
        dev = lim['fio_write_gbps'] if op == 'save' else min(
            lim['fio_read_gbps'], lim['populate_all_gbps'])
        for layout in cfg.layouts:
            # per case: mapram beside QEMU
            dat = os.path.join(cfg.workdir, 'cases-%s-%s.dat' % (op, layout))
            names = [n for n in case_names(cfg)]
            with open(dat, 'w') as f:
                for n in names:
                    vals = []
                    for vm in ('mapram', 'qemu'):
                        r = next((r for r in rows if r['vm'] == vm and
                                  r['layout'] == layout and r['case'] == n
                                  and op + '_gbps' in r), None)
                        vals.append('%.3f' % r[op + '_gbps'] if r else '0')
                    f.write('%s %s\n' % (n, ' '.join(vals)))
            png = os.path.join(cfg.plotdir, '%s-cases-%s.png' % (op, layout))
            gp = '''set terminal pngcairo size 900,450
set output '%s'
set title '%s, %s layout, %s guest (best of %d): GB/s per case'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:*]
set ylabel 'GB/s'
set xtics rotate by -30
set key below horizontal
plot '%s' using 2:xtic(1) title 'mapram-vm', '' using 3 title 'QEMU 10.0.2', %.3f with lines lw 2 dt 2 title 'device limit'
''' % (png, op, layout, human(cfg.size), cfg.reps, dat, dev)
            if run_gnuplot(cfg, gp):
                made.append(png)
            # per channel count, dio and not
            dat = os.path.join(cfg.workdir, 'ch-%s-%s.dat' % (op, layout))
            with open(dat, 'w') as f:
                for ch in cfg.channels:
                    vals = []
                    for vm in ('mapram', 'qemu'):
                        for suf in ('', '-dio'):
                            r = next((r for r in rows if r['vm'] == vm and
                                      r['layout'] == layout and
                                      r['case'] == 'mf%d%s' % (ch, suf) and
                                      op + '_gbps' in r), None)
                            vals.append('%.3f' % r[op + '_gbps'] if r
                                        else 'NaN')
                    f.write('%d %s\n' % (ch, ' '.join(vals)))
            png = os.path.join(cfg.plotdir, '%s-channels-%s.png' % (op,
                                                                   layout))
            gp = '''set terminal pngcairo size 800,450
set output '%s'
set title '%s, %s layout, %s guest: GB/s per multifd channel count'
set logscale x 2
set xlabel 'channels'
set ylabel 'GB/s'
set yrange [0:*]
set key below horizontal
plot '%s' using 1:2 with linespoints title 'mapram-vm', '' using 1:3 with linespoints title 'mapram-vm direct-io', '' using 1:4 with linespoints title 'QEMU', '' using 1:5 with linespoints title 'QEMU direct-io', %.3f with lines lw 2 dt 2 title 'device limit'
''' % (png, op, layout, human(cfg.size), dat, dev)
            if run_gnuplot(cfg, gp):
                made.append(png)
    return made


def run_gnuplot(cfg, script):
    r = subprocess.run(['gnuplot'], input=script, text=True,
                       capture_output=True)
    if r.returncode != 0 and 'pngcairo' in script:
        r = subprocess.run(['gnuplot'], input=script.replace(
            'pngcairo', 'png'), text=True, capture_output=True)
    if r.returncode != 0:
        log('gnuplot failed: %s' % r.stderr.strip())
    return r.returncode == 0


def human(n):
    return '%d GiB' % (n >> 30) if n % GIB == 0 else '%d MiB' % (n >> 20)


def limits_text(cfg, lim):
    fio_txt = 'write %.2f GB/s, read %.2f GB/s' % (lim['fio_write_gbps'],
                                                   lim['fio_read_gbps'])
    if 'fio_write_end_gbps' in lim:
        fio_txt = ('write %.2f GB/s at the start, %.2f at the end; read %.2f '
                   'and %.2f (ratios use the higher)' % (
                       lim['fio_write_start_gbps'], lim['fio_write_end_gbps'],
                       lim['fio_read_start_gbps'], lim['fio_read_end_gbps']))
    txt = ('Device limits (bench directory `%s`): fio O_DIRECT 1 MiB QD16 %s'
           % (cfg.datadir, fio_txt))
    if 'fio_holes_write_gbps' in lim:
        txt += ('; fio O_DIRECT 16 KiB writes with a 4 KiB hole after each, '
                'QD64, %.2f GB/s of data' % lim['fio_holes_write_gbps'])
    txt += '; memcpy %.2f GB/s; first touch (MADV_POPULATE_WRITE, /dev/shm) ' \
        % lim['memcpy_gbps']
    txt += ', '.join('%s thread(s) %.2f GB/s' % (k.split('_')[1], v)
                     for k, v in sorted(lim.items())
                     if k.startswith('populate_') and k[9].isdigit())
    if 'populate_cold_gbps' in lim:
        txt += (' on memory freed just before ("warm"), %.2f GB/s with all '
                'CPUs on memory the host had reclaimed ("cold", after %.0f s '
                'idle)' % (lim['populate_cold_gbps'], cfg.cold_wait))
    txt += '.'
    if 'populate_cold_gbps' in lim:
        txt += (' Every restore of both VMs starts on %s memory '
                '(DST_MEMORY), and its device line uses the same figure.'
                % getattr(cfg, 'dst_memory', 'warm'))
    return txt


def report(cfg, data):
    lim = data['limits']
    rows = build_rows(cfg, data['results'], lim)
    pngs = plots(cfg, rows, lim)
    md = []
    md.append('Run %s on %s: guest %s, %d repetition(s), layouts %s, '
              'cases `%s`, load average %s at the start and %s at the end '
              '(%d CPUs shared with other jobs).' % (
                  data['started'], data['host'], human(cfg.size), cfg.reps,
                  ', '.join(cfg.layouts), ','.join(cfg.cases),
                  lim['load_avg_start'], data['load_avg_end'],
                  os.cpu_count()))
    md.append('')
    md.append(limits_text(cfg, lim))
    md.append('')
    md.append('GB/s = guest RAM size / min wall time; "x device" = GB/s over '
              'fio write (save) or min(fio read, populate) (restore); '
              '"x QEMU" = QEMU\'s min time over mapram\'s for the same case '
              '(> 1: mapram faster); CPU = user+sys of the VM process per GiB '
              'of guest RAM (median); file cached = bytes of the save file '
              'in the page cache right after the save or restore (mincore, '
              'median); sys cache = growth of Cached-Shmem in /proc/meminfo '
              '(median; includes every other process on the machine, and the '
              'VM binary and libraries paged in after the cache drop).')
    for op in ('save', 'restore'):
        md.append('\n### %s\n' % op)
        md.append(table(rows, op))
    md.append('\n### file sizes\n')
    md.append(file_table(rows))
    md.append('\n### targets\n')
    md.append(target_lines(cfg, rows, lim))
    if pngs:
        md.append('\n### plots\n')
        for p in pngs:
            rel = os.path.relpath(p, os.path.dirname(cfg.docfile))
            md.append('![%s](%s)' % (os.path.basename(p), rel))
    errs = [(r['vm'], r['layout'], r['case'], e) for r in rows
            for e in r['errors']]
    if errs:
        md.append('\n### errors\n')
        for e in errs:
            md.append('- %s/%s/%s: %s' % e)
    return '\n'.join(md) + '\n'


def write_doc(cfg, text):
    begin, end = '<!-- bench:begin -->', '<!-- bench:end -->'
    old = ''
    if os.path.exists(cfg.docfile):
        with open(cfg.docfile) as f:
            old = f.read()
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1]
    else:
        head, tail = '# Performance\n\n', '\n'
    with open(cfg.docfile, 'w') as f:
        f.write(head + begin + '\n' + text + end + tail)


# ---------------------------------------------------------------- main --

class Cfg:
    pass


def config(build_dir):
    env = os.environ
    cfg = Cfg()
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg.vm_bin = os.path.join(build_dir, 'src/vm/mapram-vm')
    cfg.memtool = os.path.join(build_dir, 'bench/memtool')
    cfg.size = parse_size(env.get('SIZE', '4G'))
    cfg.reps = int(env.get('REPS', '3'))
    cfg.cases = env.get('CASES', '*').split(',')
    cfg.vms = env.get('VMS', 'mapram,qemu').split(',')
    cfg.layouts = env.get('LAYOUTS', 'scattered,clustered').split(',')
    cfg.channels = [int(c) for c in env.get('CHANNELS', '1,2,4,8').split(',')]
    cfg.live = env.get('LIVE', '1') == '1'
    cfg.live_range = env.get('LIVE_RANGE', '1M,100M')
    cfg.live_warmup = float(env.get('LIVE_WARMUP', '1'))
    cfg.verify = env.get('VERIFY', '1') == '1'
    cfg.prealloc_src = env.get('PREALLOC_SRC', '1') == '1'
    cfg.timeout = float(env.get('TIMEOUT', '300'))
    cfg.datadir = env.get('BENCH_DIR', '/var/tmp/mapram-bench')
    cfg.shmdir = env.get('SHM_DIR', '/dev/shm/mapram-bench')
    cfg.workdir = os.path.join(cfg.shmdir, 'work')
    cfg.docfile = env.get('DOC', os.path.join(src, 'docs/performance.md'))
    cfg.plotdir = env.get('PLOTS', os.path.join(src, 'docs/perf'))
    cfg.json = env.get('JSON', os.path.join(cfg.datadir, 'results.json'))
    cfg.data_share = 0.8
    cfg.dst_memory = env.get('DST_MEMORY', 'warm')
    if cfg.dst_memory not in ('warm', 'cold'):
        raise SystemExit('DST_MEMORY must be warm or cold')
    cfg.cold_wait = float(env.get('COLD_WAIT', '12'))
    return cfg


def main():
    if len(sys.argv) < 2:
        print('usage: bench.py BUILD_DIR | --report RESULTS.json',
              file=sys.stderr)
        return 2
    if sys.argv[1] == '--report':
        cfg = config(os.environ.get('BUILD', 'build'))
        with open(sys.argv[2]) as f:
            data = json.load(f)
        for k, v in data['cfg'].items():
            setattr(cfg, k, v)
        text = report(cfg, data)
        print(text)
        write_doc(cfg, text)
        return 0
    cfg = config(sys.argv[1])
    for p in (cfg.datadir, cfg.shmdir, cfg.workdir):
        os.makedirs(p, exist_ok=True)
    if os.geteuid() != 0:
        log('not root: page caches cannot be dropped and /dev/kvm may be '
            'unusable')
    cases = selected(cfg)
    data = {'started': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
            'host': os.uname().nodename, 'results': [],
            'cfg': {k: getattr(cfg, k) for k in (
                'size', 'reps', 'cases', 'vms', 'layouts', 'channels',
                'live', 'live_range', 'data_share', 'prealloc_src',
                'dst_memory')}}
    log('device limits ...')
    data['limits'] = device_limits(cfg)
    log('  %s' % data['limits'])
    srcmem = {}
    for vm, layout, case in cases:
        if layout not in srcmem:
            srcmem[layout] = os.path.join(cfg.shmdir, 'src-%s.mem' % layout)
            prefill(cfg, srcmem[layout], layout)
        entry = {'vm': vm, 'layout': layout, 'case': case.name, 'reps': []}
        for i in range(cfg.reps):
            try:
                r = one_rep(cfg, vm, layout, case, srcmem[layout])
            except Exception as e:      # a broken case must not stop the run
                r = {'error': str(e)}
            entry['reps'].append(r)
            log('%s/%s/%s #%d: %s' % (vm, layout, case.name, i + 1, ' '.join(
                '%s=%s' % (k, ('%.3f' % v) if isinstance(v, float) else v)
                for k, v in r.items())))
            if 'error' in r:
                break
        data['results'].append(entry)
        with open(cfg.json, 'w') as f:
            json.dump(data, f, indent=1)
    fio_again(cfg, data['limits'])
    data['load_avg_end'] = loadavg()
    with open(cfg.json, 'w') as f:
        json.dump(data, f, indent=1)
    for p in srcmem.values():
        os.unlink(p)
    text = report(cfg, data)
    print(text)
    write_doc(cfg, text)
    log('results: %s, report: %s' % (cfg.json, cfg.docfile))
    return 0


if __name__ == '__main__':
    sys.exit(main())
