#!/usr/bin/env python3
"""The lazy restore's granule (x-lazy-granule) and fill cap
(x-lazy-fill-cap) measured: one live save of a running guest (mapram-vm,
-test-range RANGE dirtying), then REPS lazy restores per granule and cap,
without working set, each into a fresh memory file in /dev/shm; prints a
Markdown table of demand faults, fault service time p50/p99
(query-migrate's x-lazy-fault-p50-us/-p99-us), time to running and to
full residency, the fill's rate, and the guest's passes over RANGE per
second while its memory was still coming in (its pass counter at 0x5000
read from the memory file at the resume and at completion).  Timings
live here, never in tests.

usage: bench/lazy_granule.py BUILD_DIR   (env: SIZE=1G REPS=3
       GRANULES=64K,256K,1M,2M CAPS=0 CHANNELS=2 RANGE=1M,100M
       WORKDIR=/dev/shm)
"""
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'tests', 'lib'))
import mrtest  # noqa: E402


def vm(build, size, rng, mem, incoming, workdir):
    extra = ['-incoming', 'defer'] if incoming else []
    return mrtest.VM('kvm' if mrtest.have_kvm() else 'thread', ram=size,
                     test_range=rng, mem=mem, extra=extra, workdir=workdir,
                     vm_binary=os.path.join(build, 'src/vm/mapram-vm'),
                     log=os.path.join(workdir, 'vm-%d.log' % time.time_ns()))


def caps(q, names):
    q.cmd('migrate-set-capabilities', {'capabilities': [
        {'capability': n, 'state': True} for n in names]})


def save(build, size, rng, chans, path, workdir):
    src = vm(build, size, rng, os.path.join(workdir, 'src.mem'), False,
             workdir)
    try:
        caps(src.qmp, ['mapped-ram', 'multifd'])
        src.qmp.cmd('migrate-set-parameters', {'max-bandwidth': 0,
                                               'multifd-channels': chans})
        time.sleep(1)
        src.qmp.cmd('migrate', {'uri': 'file:' + path})
        while src.qmp.cmd('query-migrate')['status'] != 'completed':
            time.sleep(0.01)
    finally:
        src.qmp.cmd('quit')
        src.kill()
        os.unlink(os.path.join(workdir, 'src.mem'))


def restore(build, size, rng, chans, path, granule, cap, workdir):
    mem = os.path.join(workdir, 'dst.mem')
    dst = vm(build, size, rng, mem, True, workdir)
    try:
        q = dst.qmp
        caps(q, ['mapped-ram', 'multifd', 'postcopy-ram', 'events'])
        q.cmd('migrate-set-parameters', {'multifd-channels': chans,
                                         'x-lazy-granule': granule,
                                         'x-lazy-fill-cap': cap,
                                         'x-lazy-working-set': False})
        w0 = time.time()
        q.cmd('migrate-incoming', {'uri': 'file:' + path})
        run = None
        while True:
            ev = q.wait_event('MIGRATION')
            st = ev['data']['status']
            if st == 'postcopy-active':
                ts = ev['timestamp']
                run = (ts['seconds'] + ts['microseconds'] / 1e6 - w0) * 1e3
                c0, t0 = dst.counter(), time.monotonic()
                while not c0 and time.monotonic() - t0 < 1:
                    c0 = dst.counter()   # its page may not be in yet
            if st in ('completed', 'failed'):
                break
        passes = (dst.counter() - c0) / (time.monotonic() - t0)
        ram = q.cmd('query-migrate')['ram']
        if st != 'completed':
            raise SystemExit('lazy restore failed')
        return dict(run_ms=run, faults=ram['x-lazy-faults'],
                    p50=ram['x-lazy-fault-p50-us'],
                    p99=ram['x-lazy-fault-p99-us'],
                    resident_ms=ram['x-lazy-resident-ms'],
                    fill=ram['x-lazy-fill-mbps'], passes=passes)
    finally:
        q.cmd('quit')
        dst.kill()
        os.unlink(mem)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else 'build'
    size = os.environ.get('SIZE', '1G')
    reps = int(os.environ.get('REPS', '3'))
    chans = int(os.environ.get('CHANNELS', '2'))
    rng = os.environ.get('RANGE', '1M,100M')
    grans = os.environ.get('GRANULES', '64K,256K,1M,2M').split(',')
    caps_ = [int(c) for c in os.environ.get('CAPS', '0').split(',')]
    with tempfile.TemporaryDirectory(dir=os.environ.get('WORKDIR',
                                                        '/dev/shm')) as wd:
        path = os.path.join(wd, 'save.img')
        save(build, size, rng, chans, path, wd)
        print('guest %s, -test-range %s, %d channels, %d repetitions, '
              'medians\n' % (size, rng, chans, reps))
        print('| granule | cap MB/s | faults | p50 us | p99 us | running ms | '
              'resident ms | fill MB/s | guest passes/s |\n' + '|---' * 9 +
              '|')
        for g in grans:
            for cap in caps_:
                rs = [restore(build, size, rng, chans, path,
                              mrtest.parse_size(g), cap, wd)
                      for _ in range(reps)]
                med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                print('| %s | %d | %d | %d | %d | %.1f | %d | %d | %.1f |' % (
                    g, cap, med['faults'], med['p50'], med['p99'],
                    med['run_ms'], med['resident_ms'], med['fill'],
                    med['passes']), flush=True)


if __name__ == '__main__':
    main()
