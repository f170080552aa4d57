#!/usr/bin/env python3
"""Tests of the benchmark harness (not of speed): test_bench.py report|ab.
report: the rebuilt report of docs/perf/results-4G.json is the one in
docs/performance.md, and the A/B plan, order and report; ab: a tiny real
A/B run of one build against itself, every repetition verified.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import cases  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402

BEGIN, END = '<!-- bench:begin -->', '<!-- bench:end -->'


def bench_section(text):
    return text.split(BEGIN, 1)[1].split(END, 1)[0]


def no_cpu_count(text):
    # the report names this machine's CPU count, the JSON predates it
    return re.sub(r'\(\d+ CPUs', '(N CPUs', text)


def test_report_rebuilds_docs(tmp):
    """`bench.py --report` of the 4 GiB results gives docs/performance.md's
    tables, and needs no earlier run (no SHM_DIR work directory)."""
    doc = os.path.join(tmp, 'docs', 'performance.md')
    os.makedirs(os.path.join(tmp, 'docs', 'perf'))
    shutil.copy(os.path.join(SRC, 'docs', 'performance.md'), doc)
    env = dict(os.environ, DOC=doc, PLOTS=os.path.join(tmp, 'docs', 'perf'),
               SHM_DIR=os.path.join(tmp, 'no-such-dir'))
    res = subprocess.run([sys.executable, os.path.join(HERE, 'bench.py'),
                          '--report', os.path.join(SRC, 'docs', 'perf',
                                                   'results-4G.json')],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    with open(os.path.join(SRC, 'docs', 'performance.md')) as f:
        want = bench_section(f.read())
    with open(doc) as f:
        got = bench_section(f.read())
    if not shutil.which('gnuplot'):
        print('gnuplot not installed: plots not compared')
        want = re.sub(r'\n### plots\n\n(!\[.*\n)+', '', want)
    else:
        pngs = sorted(os.listdir(os.path.join(tmp, 'docs', 'perf')))
        assert len(pngs) == 8, pngs
    assert no_cpu_count(got) == no_cpu_count(want), 'report differs'


def ab_cfg(**kw):
    saved = dict(os.environ)
    try:
        for k in ('SIZE', 'REPS', 'CASES', 'VMS', 'LAYOUTS', 'CHANNELS',
                  'LIVE'):
            os.environ.pop(k, None)
        os.environ.update(kw)
        return measure.config('build', measure.AB_DEFAULTS)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_ab_plan_and_order(tmp):
    cfg = ab_cfg()
    assert cfg.size == 1 << 30 and cfg.reps == 3
    plan = [(layout, c.name, names) for layout, c, names in
            measure.ab_plan(cfg)]
    assert plan == [(layout, name, ['A', 'B', 'qemu'])
                    for layout in ('scattered', 'clustered')
                    for name in ('legacy', 'mf2-dio', 'mf4-dio')], plan
    peers = ['A', 'B', 'qemu']
    assert [measure.ab_order(i, peers) for i in range(3)] == [
        ['A', 'B', 'qemu'], ['B', 'A', 'qemu'], ['A', 'B', 'qemu']]
    assert measure.ab_order(1, ['A', 'B']) == ['B', 'A']
    cfg = ab_cfg(VMS='mapram', CASES='*/scattered/mf4-dio*', LIVE='1')
    assert [(c.name, n) for _, c, n in measure.ab_plan(cfg)] == [
        ('mf4-dio', ['A', 'B']), ('mf4-dio-lazy', ['A', 'B']),
        ('mf4-dio-live', ['A', 'B']), ('mf4-dio-lazy-live', ['A', 'B'])]
    assert [measure.parse_size(t) for t in ('1.5G', '4GiB', '256m')] == [
        3 << 29, 4 << 30, 256 << 20]
    c = cases.Case('mf4-dio-live')
    assert (c.live, c.dio, c.mapped_ram, c.channels) == (True, True, True, 4)
    c = cases.Case('mf2-dio-lazy-live')
    assert (c.live, c.lazy, c.dio, c.channels) == (True, True, True, 2)
    c = cases.Case('mr-lazy')
    assert (c.live, c.lazy, c.dio, c.mapped_ram, c.channels) == (
        False, True, False, True, 0)


def entry(vm, case, saves, restores, error=None):
    reps = [{'save_s': s, 'restore_s': r} for s, r in zip(saves, restores)]
    if error:
        reps.append({'error': error})
    return {'vm': vm, 'layout': 'scattered', 'case': case, 'reps': reps}


def test_ab_report(tmp):
    cfg = ab_cfg(SIZE='256M', LAYOUTS='scattered')
    cfg.builds = {'A': {'dir': '/a', 'mapram_vm_sha256': '11'},
                  'B': {'dir': '/b', 'mapram_vm_sha256': '22'}}
    data = {'mode': 'ab', 'started': 'now', 'host': 'h',
            'load_avg_start': '0.5', 'load_avg_end': '0.7', 'results': [
                entry('A', 'legacy', [2.0, 1.0, 3.0], [4.0, 4.0, 4.0]),
                entry('B', 'legacy', [2.2, 1.1, 3.3], [2.0, 2.0, 2.0]),
                entry('qemu', 'legacy', [5.0, 6.0, 7.0], [8.0, 8.0, 9.0]),
                entry('A', 'mf2-dio', [1.0], [1.0]),
                entry('B', 'mf2-dio', [], [], error='save: boom')]}
    text = report.ab_report(cfg, data)
    print(text)
    rows = [line for line in text.splitlines() if line.startswith('| ')]
    assert ('| scattered | legacy | 1.000 | 2.000 | 1.100 | 2.200 | 1.100 | '
            '1.100 | 5.000 | 6.000 |') in rows, rows
    assert ('| scattered | legacy | 4.000 | 4.000 | 2.000 | 2.000 | 0.500 | '
            '0.500 | 8.000 | 8.000 |') in rows, rows
    assert ('| scattered | mf2-dio | 1.000 | 1.000 | - | - | - | - | - | - |'
            in rows), rows
    assert ('B/A over 1 case(s), save: of the min times geometric mean '
            '1.100 (1.100 to 1.100)') in text
    assert '- B/scattered/mf2-dio: save: boom' in text
    assert 'different binaries' in text


def test_ab_run(tmp):
    """One build against itself, tiny: the plumbing, not the figures."""
    build = os.environ['MAPRAM_BUILD_DIR']
    base = os.environ.get('TMPDIR', '/var/tmp')
    data_dir = tempfile.mkdtemp(prefix='mapram-bench-test-', dir=base)
    shm_dir = tempfile.mkdtemp(prefix='mapram-bench-test-', dir='/dev/shm')
    qemu = os.path.exists(measure.vms.mrtest.QEMU)
    env = dict(os.environ, SIZE='64M', REPS='2', LAYOUTS='scattered',
               VMS='mapram,qemu' if qemu else 'mapram',
               CASES='*/*/legacy,*/*/mf2-dio,mapram/*/mf2-dio-live',
               LIVE_RANGE='1M,32M', LIVE_WARMUP='0.2', DROP_CACHES='0',
               BENCH_DIR=data_dir, SHM_DIR=shm_dir,
               JSON=os.path.join(tmp, 'ab.json'))
    try:
        res = subprocess.run([os.path.join(HERE, 'run.sh'), '--ab', build,
                              build], env=env, capture_output=True, text=True,
                             timeout=600)
        print(res.stderr)
        assert res.returncode == 0, res.stderr
        assert os.listdir(data_dir) == [], os.listdir(data_dir)
        assert sorted(os.listdir(shm_dir)) == ['work'], os.listdir(shm_dir)
    finally:
        shutil.rmtree(data_dir)
        shutil.rmtree(shm_dir)
    with open(os.path.join(tmp, 'ab.json')) as f:
        data = json.load(f)
    got = sorted((x['vm'], x['case']) for x in data['results'])
    want = sorted([(vm, c) for vm in 'AB'
                   for c in ('legacy', 'mf2-dio', 'mf2-dio-live')] +
                  ([('qemu', 'legacy'), ('qemu', 'mf2-dio')] if qemu else []))
    assert got == want, got
    for x in data['results']:
        assert len(x['reps']) == 2, x
        for r in x['reps']:
            assert 'error' not in r and r['verified'], (x['vm'], x['case'], r)
            assert r['save_s'] > 0 and r['restore_s'] > 0, r
    with open(os.path.join(tmp, 'ab.md')) as f:
        text = f.read()
    assert 'the same binary' in text, text
    assert text.count('| scattered | mf2-dio-live |') == 2, text


SUITES = {'report': [test_report_rebuilds_docs, test_ab_plan_and_order,
                     test_ab_report],
          'ab': [test_ab_run]}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in SUITES:
        print('usage: test_bench.py %s' % '|'.join(SUITES))
        return 2
    for test in SUITES[sys.argv[1]]:
        tmp = tempfile.mkdtemp(prefix='mapram-bench-test-')
        try:
            test(tmp)
            print('ok', test.__name__)
        finally:
            shutil.rmtree(tmp)
    return 0


if __name__ == '__main__':
    sys.exit(main())
