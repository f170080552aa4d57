"""The host side of a benchmark run: probes of the machine (meminfo, CPU
time of a process, page cache, load), cache drops, the memtool helpers
and the device limits (fio, memcpy, populate).  Used by measure.py.
"""
import json
import os
import subprocess
import sys
import time

CLK_TCK = os.sysconf('SC_CLK_TCK')


def log(msg):
    print(msg, file=sys.stderr, flush=True)


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


def drop_caches(cfg):
    if not cfg.drop_caches:
        return
    os.sync()
    try:
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('3\n')
    except OSError as e:
        log('cannot drop caches (%s); figures include cached data' % e)


def loadavg():
    with open('/proc/loadavg') as f:
        return f.read().split()[0]


def file_sizes(path):
    st = os.stat(path)
    return st.st_size, st.st_blocks * 512


def same_content(a, b):
    return subprocess.call(['cmp', '-s', a, b]) == 0


# ------------------------------------------------------------ memtool ----

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


# ------------------------------------------------------ device limits ----

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
    drop_caches(cfg)
    lim['fio_write_end_gbps'] = fio(cfg, 'write')
    drop_caches(cfg)
    lim['fio_read_end_gbps'] = fio(cfg, 'read')
    os.unlink(os.path.join(cfg.datadir, 'fio.tmp'))
    lim['fio_write_gbps'] = max(lim['fio_write_gbps'],
                                lim['fio_write_end_gbps'])
    lim['fio_read_gbps'] = max(lim['fio_read_gbps'], lim['fio_read_end_gbps'])


def fio_limits(cfg, lim):
    drop_caches(cfg)
    w = [fio(cfg, 'write') for _ in range(cfg.reps)]
    drop_caches(cfg)
    rd = [fio(cfg, 'read') for _ in range(cfg.reps)]
    os.unlink(os.path.join(cfg.datadir, 'fio.tmp'))
    lim['fio_write_gbps'] = lim['fio_write_start_gbps'] = max(w)
    lim['fio_read_gbps'] = lim['fio_read_start_gbps'] = max(rd)
    # The best a writer that skips every isolated zero page can do: 16 KiB
    # of data, a 4 KiB hole, and so on (scattered runs average 5 pages).
    lim['fio_holes_write_gbps'] = max(
        fio(cfg, 'write:4k', bs='16k', depth=64) for _ in range(cfg.reps))
    os.unlink(os.path.join(cfg.datadir, 'fio.tmp'))


def memory_limits(cfg, lim):
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


def device_limits(cfg):
    lim = {'load_avg_start': loadavg()}
    fio_limits(cfg, lim)
    memory_limits(cfg, lim)
    return lim
