"""Reporting: a results JSON (measure.py's) turned into Markdown tables,
target lines and gnuplot PNGs, and the report put into docs/performance.md
between the bench markers.  The full matrix and an A/B run each have their
own report (REPORTS, by the JSON's "mode").
"""
import math
import os
import shutil
import statistics
import subprocess
import tempfile

from cases import case_names
from host import log

GIB = 1 << 30


def summarise(reps, key):
    vals = [r[key] for r in reps if key in r and 'error' not in r]
    if not vals:
        return None
    return {'min': min(vals), 'median': statistics.median(vals)}


def gbps(cfg, secs):
    return cfg.size / secs / 1e9 if secs else 0.0


def device_limit(lim, op):
    """fio write for saves, min(fio read, populate) for restores."""
    if op == 'save':
        return lim['fio_write_gbps']
    return min(lim['fio_read_gbps'], lim['populate_all_gbps'])


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
            row[op + '_dev_ratio'] = row[op + '_gbps'] / device_limit(lim,
                                                                     op)
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
        sock = lambda r: r['case'].endswith('-sockrestore')   # socksend
        q = best('qemu', 'restore', layout, lambda r: not sock(r))
        t = best('qemu', 'restore', layout, sock)
        if t and q:
            check('restore, mapram restore over sockets (%s) vs best QEMU '
                  'file restore (%s)' % (t['case'], q['case']),
                  t['restore_gbps'] / q['restore_gbps'], 1.5)
        if m:
            dev = device_limit(lim, 'restore')
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


def find_row(rows, vm, layout, case, op):
    return next((r for r in rows if r['vm'] == vm and r['layout'] == layout
                 and r['case'] == case and op + '_gbps' in r), None)


CASES_PLOT = '''set terminal pngcairo size 900,450
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
'''

CHANNELS_PLOT = '''set terminal pngcairo size 800,450
set output '%s'
set title '%s, %s layout, %s guest: GB/s per multifd channel count'
set logscale x 2
set xlabel 'channels'
set ylabel 'GB/s'
set yrange [0:*]
set key below horizontal
plot '%s' using 1:2 with linespoints title 'mapram-vm', '' using 1:3 with linespoints title 'mapram-vm direct-io', '' using 1:4 with linespoints title 'QEMU', '' using 1:5 with linespoints title 'QEMU direct-io', %.3f with lines lw 2 dt 2 title 'device limit'
'''


def plot_cases(cfg, rows, op, layout, dev, tmp):
    """Per case: mapram beside QEMU."""
    dat = os.path.join(tmp, 'cases-%s-%s.dat' % (op, layout))
    with open(dat, 'w') as f:
        for n in case_names(cfg, 'qemu'):    # the lazy cases have a table
            vals = []
            for vm in ('mapram', 'qemu'):
                r = find_row(rows, vm, layout, n, op)
                vals.append('%.3f' % r[op + '_gbps'] if r else '0')
            f.write('%s %s\n' % (n, ' '.join(vals)))
    png = os.path.join(cfg.plotdir, '%s-cases-%s.png' % (op, layout))
    return png, CASES_PLOT % (png, op, layout, human(cfg.size), cfg.reps,
                              dat, dev)


def plot_channels(cfg, rows, op, layout, dev, tmp):
    """Per channel count, direct-io and not, both VMs."""
    dat = os.path.join(tmp, 'ch-%s-%s.dat' % (op, layout))
    with open(dat, 'w') as f:
        for ch in cfg.channels:
            vals = []
            for vm in ('mapram', 'qemu'):
                for suf in ('', '-dio'):
                    r = find_row(rows, vm, layout, 'mf%d%s' % (ch, suf), op)
                    vals.append('%.3f' % r[op + '_gbps'] if r else 'NaN')
            f.write('%d %s\n' % (ch, ' '.join(vals)))
    png = os.path.join(cfg.plotdir, '%s-channels-%s.png' % (op, layout))
    return png, CHANNELS_PLOT % (png, op, layout, human(cfg.size), dat, dev)


def plots(cfg, rows, lim):
    """The PNGs made; the data files live in a temporary directory."""
    if not shutil.which('gnuplot'):
        log('gnuplot not found: no plots')
        return []
    os.makedirs(cfg.plotdir, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory(prefix='mapram-plots-') as tmp:
        for op in ('save', 'restore'):
            for layout in cfg.layouts:
                for plot in (plot_cases, plot_channels):
                    png, script = plot(cfg, rows, op, layout,
                                       device_limit(lim, op), tmp)
                    if run_gnuplot(cfg, script):
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


def lazy_rows(results):
    """The -lazy cases: medians of the eager restore and of the two lazy
    restores of the same file (measure.lazy_reps)."""
    keys = ('restore_s', 'lazy1_run_ms', 'lazy1_full_s', 'lazy1_faults',
            'lazy1_fault_p50_us', 'lazy1_fault_p99_us', 'lazy1_fill_mbps',
            'lazy1_resident_ms', 'lazy2_run_ms', 'lazy2_full_s',
            'lazy2_faults', 'lazy2_prefetched', 'lazy2_fault_p99_us')
    rows = []
    for x in results:
        if '-lazy' not in x['case']:
            continue
        row = {'vm': x['vm'], 'layout': x['layout'], 'case': x['case']}
        for k in keys:
            t = summarise([r for r in x['reps'] if r.get(k) is not None], k)
            row[k] = t and t['median']
        rows.append(row)
    return rows


def lazy_table(cfg, rows):
    lines = ['| layout | case | eager s | eager GB/s | lazy: running ms | '
             'resident s | x eager | faults | p50 us | p99 us | fill GB/s | '
             '2nd: running ms | resident s | faults | prefetched | '
             'fewer faults |', '|' + '---|' * 16]
    for r in rows:
        e, f1 = r['restore_s'], r['lazy1_full_s']
        a, b = r['lazy1_faults'], r['lazy2_faults']
        lines.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s '
                     '| %s | %s | %s | %s | %s |' % (
                         r['layout'], r['case'], fmt(e),
                         fmt(e and gbps(cfg, e)), fmt(r['lazy1_run_ms'], '%.1f'),
                         fmt(f1), fmt(e and f1 and f1 / e),
                         fmt(a, '%d'), fmt(r['lazy1_fault_p50_us'], '%d'),
                         fmt(r['lazy1_fault_p99_us'], '%d'),
                         fmt(r['lazy1_fill_mbps'] and
                             r['lazy1_fill_mbps'] / 1e3),
                         fmt(r['lazy2_run_ms'], '%.1f'),
                         fmt(r['lazy2_full_s']), fmt(b, '%d'),
                         fmt(r['lazy2_prefetched'], '%d'),
                         fmt(a and b is not None and 100.0 * (a - b) / a,
                             '%.0f %%')))
    return '\n'.join(lines)


def matrix_report(cfg, data):
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
                  data.get('cpus', os.cpu_count())))
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
    lz = lazy_rows(data['results'])
    if lz:
        md.append('\n### lazy restore\n')
        md.append('The same file restored eagerly (the restore table), then '
                  'lazily (postcopy-ram) without and with the working set the '
                  'first lazy restore recorded.  running = from '
                  'migrate-incoming to the postcopy-active event\'s '
                  'timestamp; resident = to `completed` (every page in); '
                  'x eager = resident over the eager restore; faults = demand '
                  'faults served, p50/p99 their service time (a fault on a '
                  'granule the fill holds counts until the fill installs it); '
                  'fill GB/s = bytes the fill read over its running time.  '
                  'Medians over the repetitions.\n')
        md.append(lazy_table(cfg, lz))
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



# ----------------------------------------------------------------- A/B ----

def ab_pairs(results):
    """{(layout, case): {vm name: entry}} in run order."""
    out = {}
    for x in results:
        out.setdefault((x['layout'], x['case']), {})[x['vm']] = x
    return out


def ab_times(entry, op):
    return entry and summarise(entry['reps'], op + '_s')


def ab_ratio(b, a, key):
    return b[key] / a[key] if a and b else None


def ab_table(pairs, op):
    """One row per case: A's and B's min and median, B/A, QEMU's."""
    lines = ['| layout | case | A min s | A median s | B min s | B median s '
             '| B/A min | B/A median | QEMU min s | QEMU median s |',
             '|' + '---|' * 10]
    ratios = []
    for (layout, case), by in pairs.items():
        a, b = ab_times(by.get('A'), op), ab_times(by.get('B'), op)
        q = ab_times(by.get('qemu'), op)
        r = (ab_ratio(b, a, 'min'), ab_ratio(b, a, 'median'))
        if r[0] is not None:
            ratios.append(r)
        cells = [fmt(t and t[k], '%.3f') for t in (a, b, q)
                 for k in ('min', 'median')]
        cells[4:4] = [fmt(x, '%.3f') for x in r]
        lines.append('| %s | %s | %s |' % (layout, case, ' | '.join(cells)))
    return '\n'.join(lines), ratios


def geomean(vals):
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def ab_summary(op, ratios):
    if not ratios:
        return 'No case of both A and B completed its %s.' % op
    parts = []
    for i, what in enumerate(('min', 'median')):
        v = [r[i] for r in ratios]
        parts.append('of the %s times geometric mean %.3f (%.3f to %.3f)'
                     % (what, geomean(v), min(v), max(v)))
    return 'B/A over %d case(s), %s: %s.' % (len(ratios), op,
                                             '; '.join(parts))


def ab_builds(cfg):
    a, b = cfg.builds['A'], cfg.builds['B']
    same = ('the same binary' if a['mapram_vm_sha256'] == b['mapram_vm_sha256']
            else 'different binaries')
    return ('A = mapram-vm of `%s` (sha256 %s), B = mapram-vm of `%s` '
            '(sha256 %s): %s.' % (a['dir'], a['mapram_vm_sha256'], b['dir'],
                                  b['mapram_vm_sha256'], same))


def ab_report(cfg, data):
    pairs = ab_pairs(data['results'])
    md = ['A/B run %s on %s: guest %s, %d repetition(s), layouts %s, cases '
          '`%s`, load average %s at the start and %s at the end (%d CPUs).'
          % (data['started'], data['host'], human(cfg.size), cfg.reps,
             ', '.join(cfg.layouts), ','.join(cfg.cases),
             data['load_avg_start'], data.get('load_avg_end', '?'),
             data.get('cpus', os.cpu_count())), '', ab_builds(cfg), '',
          'In every repetition of a case A and B run back to back (A first '
          'in odd repetitions, B first in even ones), then QEMU 10 as the '
          'peer, each a save and a restore on the same prefilled memory.  '
          'Times: wall seconds from the migrate command to `completed`, min '
          'and median over the repetitions; B/A < 1: B faster.']
    for op in ('save', 'restore'):
        text, ratios = ab_table(pairs, op)
        md += ['\n### %s\n' % op, text, '', ab_summary(op, ratios)]
    errs = ['- %s/%s/%s: %s' % (x['vm'], x['layout'], x['case'], e)
            for x in data['results']
            for e in sorted({r['error'] for r in x['reps'] if 'error' in r})]
    if errs:
        md += ['\n### errors\n'] + errs
    return '\n'.join(md) + '\n'


def write_beside_json(cfg, text, json_path):
    path = os.path.splitext(json_path)[0] + '.md'
    with open(path, 'w') as f:
        f.write(text)
    log('report: %s' % path)


def write_perf_doc(cfg, text, json_path):
    write_doc(cfg, text)
    log('report: %s' % cfg.docfile)


# A results JSON's "mode" (absent: the full matrix) picks its report and
# where that goes besides stdout.
REPORTS = {'matrix': (matrix_report, write_perf_doc),
           'ab': (ab_report, write_beside_json)}


def publish(cfg, data, json_path):
    """Print the report of `data` and write it where its mode says."""
    make, write = REPORTS[data.get('mode', 'matrix')]
    text = make(cfg, data)
    print(text)
    write(cfg, text, json_path)
    return text
