"""Measuring: the knobs (config), one save + restore repetition of a case,
and the two plans, the full matrix and an A/B comparison of
two build directories.  Results go to a JSON file; report.py reads it.
"""
import hashlib
import json
import os
import resource
import subprocess
import time

import host
from host import log
import vms
from cases import selected, socket_save_args, SOCKET_SAVE_VM

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Cfg:
    pass


def parse_size(s):
    return vms.mrtest.parse_size(s.strip().upper().rstrip('B').rstrip('I'))


# What an A/B run measures unless the environment says otherwise: enough
# to show a change kept its speed, short enough to repeat.
AB_DEFAULTS = {'SIZE': '1G', 'CASES': '*/*/legacy,*/*/mf2-dio,*/*/mf4-dio'}


def config(build_dir, defaults=None, json_name='results.json'):
    env = dict(defaults or {})
    env.update(os.environ)
    cfg = Cfg()
    cfg.vm_bin = os.path.join(build_dir, 'src/vm/mapram-vm')
    cfg.mapram_bin = os.path.join(build_dir, 'src/cli/mapram')
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
    cfg.drop_caches = env.get('DROP_CACHES', '1') == '1'
    cfg.timeout = float(env.get('TIMEOUT', '300'))
    cfg.datadir = env.get('BENCH_DIR', '/var/tmp/mapram-bench')
    cfg.shmdir = env.get('SHM_DIR', '/dev/shm/mapram-bench')
    cfg.workdir = os.path.join(cfg.shmdir, 'work')
    cfg.docfile = env.get('DOC', os.path.join(SRC, 'docs/performance.md'))
    cfg.plotdir = env.get('PLOTS', os.path.join(SRC, 'docs/perf'))
    cfg.json = env.get('JSON', os.path.join(cfg.datadir, json_name))
    cfg.data_share = 0.8
    cfg.dst_memory = env.get('DST_MEMORY', 'warm')
    if cfg.dst_memory not in ('warm', 'cold'):
        raise SystemExit('DST_MEMORY must be warm or cold')
    cfg.cold_wait = float(env.get('COLD_WAIT', '12'))
    return cfg


# --------------------------------------------------------- repetition ----

def timed_migration(cfg, vm, command, savefile, op, r, offset=0):
    """Run `command` (migrate / migrate-incoming) on the file until it
    ends; record wall time, the VM's CPU seconds, page-cache growth and
    how much of the file is cached as r[op + '_...']."""
    pid = vm.proc.pid
    c0, p0 = host.cpu_seconds(pid), host.pagecache_bytes()
    t0 = time.monotonic()
    vm.qmp.cmd(command, {'uri': 'file:' + savefile +
                         (',offset=%d' % offset if offset else '')})
    info = vms.wait_migration(vm, cfg.timeout)
    r[op + '_s'] = time.monotonic() - t0
    r[op + '_cpu_s'] = host.cpu_seconds(pid) - c0
    r[op + '_cache_bytes'] = host.pagecache_bytes() - p0
    r[op + '_file_cached_bytes'] = host.file_cached_bytes(savefile)
    return info


def socket_save(cfg, src, case, savefile, r):
    """`mapram save` over sockets (cases.py, save cases): the tool's wall
    time, and CPU seconds of QEMU and of the tool apart."""
    cmd = [cfg.mapram_bin, 'save', '--qmp', src.sock_path, savefile,
           '--force'] + socket_save_args(case)
    c0, p0 = host.cpu_seconds(src.proc.pid), host.pagecache_bytes()
    t0 = time.monotonic()
    errlog = os.path.join(cfg.workdir, 'msave.err')
    with open(errlog, 'w') as ef:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=ef)
        _, _, ru = os.wait4(proc.pid, 0)
    r['save_s'] = time.monotonic() - t0
    r['save_cpu_s'] = host.cpu_seconds(src.proc.pid) - c0
    r['tool_cpu_s'] = ru.ru_utime + ru.ru_stime
    r['save_cache_bytes'] = host.pagecache_bytes() - p0
    r['save_file_cached_bytes'] = host.file_cached_bytes(savefile)
    proc.returncode = 0
    with open(errlog) as ef:
        err = ef.read()
    info = src.qmp.cmd('query-migrate')
    if info.get('status') != 'completed':
        info['error-desc'] = err.strip().splitlines()[-1:] or info.get(
            'status')
    return info


def save_half(cfg, peer, case, srcmem, savefile, r):
    """Start the source, save; True when the save completed."""
    live = cfg.live_range if case.live else None
    if peer.kind == SOCKET_SAVE_VM:
        src = vms.start(peer, cfg, srcmem, 'src', prealloc=cfg.prealloc_src)
        try:
            info = socket_save(cfg, src, case, savefile, r)
            r['save_status'] = info.get('status')
            if info.get('status') != 'completed':
                r['error'] = 'save: %s' % info.get('error-desc')
                return False
            return True
        finally:
            vms.stop(src)
    src = vms.start(peer, cfg, srcmem, 'src', live_range=live,
                    prealloc=cfg.prealloc_src)
    try:
        vms.setup(src, case)
        if case.live:
            time.sleep(cfg.live_warmup)
        info = timed_migration(cfg, src, 'migrate', savefile, 'save', r)
        r['save_status'] = info.get('status')
        if info.get('status') != 'completed':
            r['error'] = 'save: %s' % info.get('error-desc', info['status'])
            return False
        ram = info.get('ram', {})
        r['dirty_sync_count'] = ram.get('dirty-sync-count')
        r['downtime_ms'] = info.get('downtime')
        return True
    finally:
        vms.stop(src)


def tool_restore(cfg, dst, case, savefile, r):
    """socksend's restore cases: `mapram restore --transport socket` into
    the waiting QEMU; the tool's CPU seconds apart from QEMU's."""
    tool = os.path.join(os.path.dirname(os.path.dirname(cfg.vm_bin)),
                        'cli', 'mapram')
    pid = dst.proc.pid
    c0, p0 = host.cpu_seconds(pid), host.pagecache_bytes()
    u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    res = subprocess.run([tool, 'restore', '--qmp', dst.sock_path, savefile,
                          '--transport', 'socket', '--paused', '--channels',
                          str(case.channels)], capture_output=True, text=True,
                         timeout=cfg.timeout)
    r['restore_s'] = time.monotonic() - t0
    u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r['restore_cpu_s'] = host.cpu_seconds(pid) - c0
    r['restore_tool_cpu_s'] = (u1.ru_utime - u0.ru_utime +
                               u1.ru_stime - u0.ru_stime)
    r['restore_cache_bytes'] = host.pagecache_bytes() - p0
    r['restore_file_cached_bytes'] = host.file_cached_bytes(savefile)
    if res.returncode:
        return {'status': 'failed', 'error-desc': res.stderr.strip()}
    return vms.wait_migration(dst, cfg.timeout)


def restore_half(cfg, peer, case, dstmem, savefile, r):
    """Start a destination on fresh memory, restore; True when done."""
    dst = vms.start(peer, cfg, dstmem, 'dst', incoming=True)
    try:
        if case.sock_restore:
            info = tool_restore(cfg, dst, case, savefile, r)
            if info.get('status') != 'completed':
                r['error'] = 'restore: %s' % info.get('error-desc',
                                                       info['status'])
                return False
            return True
        vms.setup(dst, case)
        # a mapram save: QEMU loads the stream behind mapram's header
        offset = 4096 if peer.kind == SOCKET_SAVE_VM else 0
        info = timed_migration(cfg, dst, 'migrate-incoming', savefile,
                               'restore', r, offset)
        if info.get('status') != 'completed':
            r['error'] = 'restore: %s' % info.get('error-desc',
                                                   info['status'])
            return False
        return True
    finally:
        vms.stop(dst)


LAZY_KEYS = ('x-lazy-faults', 'x-lazy-fault-p50-us', 'x-lazy-fault-p99-us',
             'x-lazy-fault-max-us', 'x-lazy-fill-mbps', 'x-lazy-fill-bytes',
             'x-lazy-prefetched', 'x-lazy-working-set', 'x-lazy-resident-ms',
             'x-lazy-granule', 'x-lazy-fill-channels')


def event_time(ev):
    ts = ev.get('timestamp', {})
    return ts.get('seconds', 0) + ts.get('microseconds', 0) / 1e6


def lazy_restore(cfg, peer, case, dstmem, savefile, r, tag):
    """One lazy restore of the file: r[tag + '_run_ms'] from
    migrate-incoming to the postcopy-active event (the guest resumed),
    r[tag + '_full_s'] to `completed` (every page resident), and the
    x-lazy-* figures of query-migrate."""
    if os.path.exists(dstmem):
        os.unlink(dstmem)
    host.prepare_destination_memory(cfg)
    # a live guest runs on after the resume (its faults and working set)
    dst = vms.start(peer, cfg, dstmem, 'dst-' + tag, incoming=True,
                    live_range=cfg.live_range if case.live else None)
    try:
        vms.setup(dst, case, lazy=True)
        t0, w0 = time.monotonic(), time.time()
        dst.qmp.cmd('migrate-incoming', {'uri': 'file:' + savefile})
        while True:
            ev = dst.qmp.wait_event('MIGRATION', cfg.timeout)
            st = ev['data']['status']
            if st == 'postcopy-active':
                r[tag + '_run_ms'] = (event_time(ev) - w0) * 1e3
            if st in ('completed', 'failed'):
                break
        r[tag + '_full_s'] = time.monotonic() - t0
        info = dst.qmp.cmd('query-migrate')
        if st != 'completed':
            r['error'] = '%s: %s' % (tag, info.get('error-desc', st))
            return False
        for k in LAZY_KEYS:
            r['%s_%s' % (tag, k[7:].replace('-', '_'))] = \
                info.get('ram', {}).get(k)
        return True
    finally:
        vms.stop(dst)


def lazy_reps(cfg, peer, case, srcmem, dstmem, savefile, r):
    """After the eager restore of the same file: a lazy restore without a
    working set, then one with the working set the first recorded."""
    side = savefile + '.wset'
    if os.path.exists(side):
        os.unlink(side)
    for tag in ('lazy1', 'lazy2'):
        host.drop_caches(cfg)
        if not lazy_restore(cfg, peer, case, dstmem, savefile, r, tag):
            return
        if tag == 'lazy1' and cfg.verify and not case.live:
            if not host.same_content(srcmem, dstmem):
                r['error'] = 'lazily restored memory differs from the source'
                return
    if os.path.exists(side):
        os.unlink(side)


def one_rep(cfg, peer, layout, case, srcmem):
    """Save then restore once; returns a dict of figures."""
    savefile = os.path.join(cfg.datadir, 'save.img')
    dstmem = os.path.join(cfg.shmdir, 'dst.mem')
    for p in (savefile, dstmem):
        if os.path.exists(p):
            os.unlink(p)
    if case.live:
        host.prefill(cfg, srcmem, layout)
    r = {'load_avg': host.loadavg()}
    host.drop_caches(cfg)
    if not save_half(cfg, peer, case, srcmem, savefile, r):
        return r
    r['file_bytes'], r['file_alloc_bytes'] = host.file_sizes(savefile)
    host.drop_caches(cfg)
    host.prepare_destination_memory(cfg)
    if not restore_half(cfg, peer, case, dstmem, savefile, r):
        return r
    if cfg.verify:
        r['verified'] = host.same_content(srcmem, dstmem)
        if not r['verified']:
            r['error'] = 'restored memory differs from the source'
    if case.lazy and 'error' not in r:
        lazy_reps(cfg, peer, case, srcmem, dstmem, savefile, r)
    if os.path.exists(dstmem):
        os.unlink(dstmem)
    os.unlink(savefile)
    return r


def measured_rep(cfg, peer, layout, case, srcmem, i):
    try:
        r = one_rep(cfg, peer, layout, case, srcmem)
    except Exception as e:      # a broken case must not stop the run
        r = {'error': ' '.join(str(e).split())}   # one line, for the tables
    log('%s/%s/%s #%d: %s' % (peer.name, layout, case.name, i + 1, ' '.join(
        '%s=%s' % (k, ('%.3f' % v) if isinstance(v, float) else v)
        for k, v in r.items())))
    return r


# -------------------------------------------------------------- plans ----

def write_json(cfg, data, final=False):
    with open(cfg.json, 'w') as f:
        json.dump(data, f, indent=1)
    if final:
        log('results: %s' % cfg.json)


def run_data(cfg, mode, keys):
    data = {'started': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
            'host': os.uname().nodename, 'cpus': os.cpu_count(),
            'results': [],
            'cfg': {k: getattr(cfg, k) for k in keys}}
    if mode != 'matrix':
        data['mode'] = mode
    return data


class Memory:
    """The prefilled source memory file of each layout, made on first use."""

    def __init__(self, cfg):
        self.cfg, self.paths = cfg, {}

    def __getitem__(self, layout):
        if layout not in self.paths:
            self.paths[layout] = os.path.join(self.cfg.shmdir,
                                              'src-%s.mem' % layout)
            host.prefill(self.cfg, self.paths[layout], layout)
        return self.paths[layout]

    def remove(self):
        for p in self.paths.values():
            os.unlink(p)


def prepare(cfg):
    for p in (cfg.datadir, cfg.shmdir, cfg.workdir):
        os.makedirs(p, exist_ok=True)
    if os.geteuid() != 0:
        log('not root: page caches cannot be dropped and /dev/kvm may be '
            'unusable')


MATRIX_KEYS = ('size', 'reps', 'cases', 'vms', 'layouts', 'channels', 'live',
               'live_range', 'data_share', 'prealloc_src', 'dst_memory')


def run_matrix(cfg):
    """Every selected case, REPS times in a row, between device limits
    measured at the start and again at the end."""
    prepare(cfg)
    data = run_data(cfg, 'matrix', MATRIX_KEYS)
    log('device limits ...')
    data['limits'] = host.device_limits(cfg)
    log('  %s' % data['limits'])
    mem = Memory(cfg)
    peers = {'mapram': vms.Peer('mapram', 'mapram', cfg.vm_bin),
             'qemu': vms.Peer('qemu', 'qemu'),
             SOCKET_SAVE_VM: vms.Peer(SOCKET_SAVE_VM, SOCKET_SAVE_VM)}
    for vm, layout, case in selected(cfg):
        entry = {'vm': vm, 'layout': layout, 'case': case.name, 'reps': []}
        for i in range(cfg.reps):
            r = measured_rep(cfg, peers[vm], layout, case, mem[layout], i)
            entry['reps'].append(r)
            if 'error' in r:
                break
        data['results'].append(entry)
        write_json(cfg, data)
    host.fio_again(cfg, data['limits'])
    data['load_avg_end'] = host.loadavg()
    write_json(cfg, data, final=True)
    mem.remove()
    return data


# ----------------------------------------------------------------- A/B ----

def binary_digest(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()[:16]


def ab_order(rep, peers):
    """Who runs in repetition `rep`: A then B, then B then A, and so on,
    so neither build always runs first after a case starts; the QEMU peer
    (if any) last."""
    pair = peers[:2] if rep % 2 == 0 else peers[1::-1]
    return pair + peers[2:]


def ab_plan(cfg):
    """(layout, Case, [vm names]) in run order: mapram cases become A and
    B, a selected QEMU case the peer."""
    plan = {}
    for vm, layout, case in selected(cfg):
        names = plan.setdefault((layout, case.name), (layout, case, []))[2]
        names.extend(['A', 'B'] if vm == 'mapram' else ['qemu'])
    return [(layout, case, sorted(names, key=['A', 'B', 'qemu'].index))
            for layout, case, names in plan.values()]


AB_KEYS = ('size', 'reps', 'cases', 'vms', 'layouts', 'channels', 'live_range',
           'prealloc_src', 'dst_memory', 'builds')


def run_ab(cfg, build_a, build_b):
    """Each selected case REPS times; in every repetition mapram-vm of
    build A and of build B (ab_order) and QEMU, on the same prefilled
    memory, so all see the same machine state."""
    prepare(cfg)
    bins = {'A': os.path.join(build_a, 'src/vm/mapram-vm'),
            'B': os.path.join(build_b, 'src/vm/mapram-vm')}
    cfg.builds = {k: {'dir': os.path.abspath(d), 'mapram_vm_sha256':
                      binary_digest(bins[k])}
                  for k, d in (('A', build_a), ('B', build_b))}
    data = run_data(cfg, 'ab', AB_KEYS)
    data['load_avg_start'] = host.loadavg()
    peers = {'A': vms.Peer('A', 'mapram', bins['A']),
             'B': vms.Peer('B', 'mapram', bins['B']),
             'qemu': vms.Peer('qemu', 'qemu')}
    mem = Memory(cfg)
    for layout, case, names in ab_plan(cfg):
        entries = {n: {'vm': n, 'layout': layout, 'case': case.name,
                       'reps': []} for n in names}
        for i in range(cfg.reps):
            for n in ab_order(i, names):
                entries[n]['reps'].append(measured_rep(
                    cfg, peers[n], layout, case, mem[layout], i))
        data['results'].extend(entries[n] for n in names)
        write_json(cfg, data)
    data['load_avg_end'] = host.loadavg()
    write_json(cfg, data, final=True)
    mem.remove()
    return data
