"""The socket-migration benchmark (bench/README.md, "Socket migration"):
a paused guest of SIZE migrated from VM to VM over TCP on loopback,
mapram-vm and QEMU 10 alternating, for each multifd channel count of
NET_CHANNELS (0: no multifd).  Figures: wall time from `migrate` to the
destination's `completed`, GB/s, CPU seconds of source and destination,
min and median over REPS, mapram over QEMU; a PNG plot, and the report
between the `net:begin`/`net:end` markers of docs/performance.md.
"""
import json
import os
import shutil
import statistics
import tempfile
import time

import host
from host import log
import report
import vms

GIB = 1 << 30


def setup(vm, channels):
    caps = [{'capability': 'mapped-ram', 'state': False},
            {'capability': 'multifd', 'state': channels > 0}]
    vm.qmp.cmd('migrate-set-capabilities', {'capabilities': caps})
    params = {'max-bandwidth': 0}
    if channels:
        params['multifd-channels'] = channels
    vm.qmp.cmd('migrate-set-parameters', params)


def one_rep(cfg, peer, channels, srcmem):
    dstmem = os.path.join(cfg.shmdir, 'net-dst.mem')
    if os.path.exists(dstmem):
        os.unlink(dstmem)
    host.prepare_destination_memory(cfg)
    r = {'load_avg': host.loadavg()}
    src = vms.start(peer, cfg, srcmem, 'net-src', prealloc=cfg.prealloc_src)
    dst = None
    try:
        dst = vms.start(peer, cfg, dstmem, 'net-dst', incoming=True)
        for vm in (src, dst):
            setup(vm, channels)
        uri = 'tcp:127.0.0.1:%d' % vms.mrtest.free_port()
        dst.qmp.cmd('migrate-incoming', {'uri': uri})
        c0 = [host.cpu_seconds(v.proc.pid) for v in (src, dst)]
        t0 = time.monotonic()
        src.qmp.cmd('migrate', {'uri': uri})
        info = vms.wait_migration(dst, cfg.timeout)
        r['s'] = time.monotonic() - t0
        r['src_cpu_s'], r['dst_cpu_s'] = [
            host.cpu_seconds(v.proc.pid) - c for v, c in zip((src, dst), c0)]
        if info.get('status') != 'completed':
            r['error'] = info.get('error-desc', info.get('status'))
            return r
        sinfo = vms.wait_migration(src, cfg.timeout)
        if sinfo.get('status') != 'completed':
            r['error'] = 'source: %s' % sinfo.get('error-desc')
            return r
    finally:
        vms.stop(src)
        if dst:
            vms.stop(dst)
    if cfg.verify:
        r['verified'] = host.same_content(srcmem, dstmem)
        if not r['verified']:
            r['error'] = 'destination memory differs from the source'
    os.unlink(dstmem)
    return r


def summary(cfg, results, name, channels):
    rs = [r for r in results if r['vm'] == name and
          r['channels'] == channels and 'error' not in r]
    if not rs:
        return None
    t = [r['s'] for r in rs]
    return {'min_s': min(t), 'median_s': statistics.median(t),
            'gbps': cfg.size / min(t) / 1e9,
            'src_cpu': statistics.median(r['src_cpu_s'] for r in rs) /
            (cfg.size / GIB),
            'dst_cpu': statistics.median(r['dst_cpu_s'] for r in rs) /
            (cfg.size / GIB), 'n': len(rs)}


def report_text(cfg, data):
    results = data['results']
    lines = ['Run %s: guest %d MiB paused, %s layout, %d repetition(s), '
             'TCP on 127.0.0.1, load average %s at the start.' % (
                 data['started'], cfg.size >> 20, cfg.net_layout, cfg.reps,
                 data['load_start']), '',
             '| channels | VM | min s | median s | GB/s | src CPU-s/GiB | '
             'dst CPU-s/GiB | x QEMU |', '|---|---|---|---|---|---|---|---|']
    for ch in cfg.net_channels:
        q = summary(cfg, results, 'qemu', ch)
        for name in ('mapram', 'qemu'):
            s = summary(cfg, results, name, ch)
            if not s:
                errs = [r.get('error') for r in results
                        if r['vm'] == name and r['channels'] == ch]
                lines.append('| %d | %s | failed: %s | | | | | |' % (
                    ch, name, '; '.join(sorted(set(map(str, errs))))))
                continue
            ratio = ('%.2f' % (q['min_s'] / s['min_s'])
                     if q and name == 'mapram' else '')
            lines.append('| %d | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %s |'
                         % (ch, name, s['min_s'], s['median_s'], s['gbps'],
                            s['src_cpu'], s['dst_cpu'], ratio))
    m4, q4 = (summary(cfg, results, v, 4) for v in ('mapram', 'qemu'))
    lines.append('')
    if m4 and q4:
        lines.append('Target (issue 12): mapram-vm to mapram-vm over TCP with '
                     'multifd 4 at least 1.0x QEMU to QEMU: %.2fx (%s).' % (
                         q4['min_s'] / m4['min_s'],
                         'met' if q4['min_s'] >= m4['min_s'] else 'missed'))
    return '\n'.join(lines)


PLOT = '''set terminal pngcairo size 800,450
set output '%s'
set title 'VM to VM over TCP loopback, paused %s guest'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel 'GB/s of guest RAM (best of the repetitions)'
set xlabel 'multifd channels (0: none)'
set yrange [0:*]
set key top left
plot '%s' using 2:xtic(1) title 'mapram-vm', '' using 3 title 'QEMU 10'
'''


def plot(cfg, results):
    png = os.path.join(cfg.plotdir, 'net-tcp.png')
    if not shutil.which('gnuplot'):
        log('gnuplot not found: no plot')
        return None
    with tempfile.NamedTemporaryFile('w', suffix='.dat', delete=False) as f:
        for ch in cfg.net_channels:
            vals = []
            for name in ('mapram', 'qemu'):
                s = summary(cfg, results, name, ch)
                vals.append('%.3f' % s['gbps'] if s else 'NaN')
            f.write('%d %s\n' % (ch, ' '.join(vals)))
        dat = f.name
    os.makedirs(cfg.plotdir, exist_ok=True)
    script = PLOT % (png, '%d MiB' % (cfg.size >> 20), dat)
    ok = report.run_gnuplot(cfg, script)
    os.unlink(dat)
    return png if ok else None


def write_doc(cfg, text, png):
    begin, end = '<!-- net:begin -->', '<!-- net:end -->'
    with open(cfg.docfile) as f:
        old = f.read()
    body = text + ('\n\n![VM to VM over TCP](perf/%s)' % os.path.basename(png)
                   if png else '')
    block = '%s\n%s\n%s' % (begin, body, end)
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) +
                                                    len(end):]
    else:
        new = old.rstrip('\n') + '\n\n## VM to VM over a socket\n\n' + \
            block + '\n'
    with open(cfg.docfile, 'w') as f:
        f.write(new)


def run(cfg):
    """Measure, alternating the VMs in every repetition, and publish."""
    cfg.net_channels = [int(c) for c in os.environ.get(
        'NET_CHANNELS', '0,1,4').split(',')]
    cfg.net_layout = os.environ.get('NET_LAYOUT', 'scattered')
    peers = [vms.Peer('mapram', 'mapram', cfg.vm_bin),
             vms.Peer('qemu', 'qemu')]
    for p in (cfg.datadir, cfg.shmdir, cfg.workdir):
        os.makedirs(p, exist_ok=True)
    srcmem = os.path.join(cfg.shmdir, 'net-src.mem')
    host.prefill(cfg, srcmem, cfg.net_layout)
    data = {'started': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
            'load_start': host.loadavg(), 'results': []}
    try:
        for i in range(cfg.reps):
            for ch in cfg.net_channels:
                order = peers if i % 2 == 0 else peers[::-1]
                for peer in order:
                    try:
                        r = one_rep(cfg, peer, ch, srcmem)
                    except Exception as e:   # a broken case must not stop
                        r = {'error': ' '.join(str(e).split())}
                    r.update(vm=peer.name, channels=ch, rep=i + 1)
                    log('net %s ch=%d #%d: %s' % (peer.name, ch, i + 1, r))
                    data['results'].append(r)
    finally:
        os.unlink(srcmem)
    path = os.path.join(cfg.datadir, 'net-results.json')
    with open(path, 'w') as f:
        json.dump(data, f, indent=1)
    text = report_text(cfg, data)
    print(text)
    png = plot(cfg, data['results'])
    write_doc(cfg, text, png)
    return data
