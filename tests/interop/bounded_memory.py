#!/usr/bin/env python3
"""Bounded memory in the offline tools (issue 16): build a file of many
small records, run `mapram inspect`, `inspect --json`, `verify` and
`extract --all` on it, and check each child's peak RSS (ru_maxrss from
wait4) stays under the bound, whatever the stream's length.

usage: bounded_memory.py CASE [BOUND_MIB]    ('list' prints the cases)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from streamgen import (PAGE, Block, Flood, command, device_section,  # noqa
                       empty_part, legacy_zero_records)

VMDESC_MAX = 10 << 20           # the tools read at most this much JSON
FLOOD_BYTES = 35 << 20


def empty_parts():
    n = FLOOD_BYTES // len(empty_part())
    return Flood().build_flood(middle=empty_part() * n)


def legacy_zero():
    npages = 1 << 24            # a 64 GiB block: its map is 2 MiB
    recs = legacy_zero_records('mem', npages, FLOOD_BYTES // 9, 32769)
    blocks = [Block('mem', npages, [])]
    return Flood(mapped_ram=False, blocks=blocks).build_flood(
        middle=recs, in_part=True)


def many_commands():
    n = FLOOD_BYTES // len(command())
    return Flood().build_flood(middle=command() * n)


def many_devices():
    devs, secs, size, i = [], [], 40, 0
    while True:
        d = {'name': 'd%d' % i, 'instance_id': 0}
        size += len(json.dumps(d, separators=(',', ':'))) + 1
        if size > VMDESC_MAX - 64:
            break
        devs.append(d)
        secs.append(device_section(i + 2, d['name']))
        i += 1
    desc = json.dumps({'page_size': PAGE, 'devices': devs},
                      separators=(',', ':')).encode()
    return Flood().build_flood(devices=b''.join(secs), vmdesc=desc)


def huge_vmdesc():
    """Ten MiB of tiny JSON values the tools never need."""
    head = b'{"page_size":4096,"devices":[],"junk":['
    n = (VMDESC_MAX - len(head) - 2) // 3
    desc = head + b','.join([b'{}'] * n) + b']}'
    return Flood().build_flood(vmdesc=desc)


def huge_device():
    """One device whose description is ten MiB of fields: refused (but
    extract still writes the RAM, which lies before it)."""
    head = b'{"devices":[{"name":"dev","instance_id":0,"fields":['
    field = b'{"name":"f","size":0}'
    n = (VMDESC_MAX - len(head) - 4) // (len(field) + 1)
    desc = head + b','.join([field] * n) + b']}]}'
    return Flood().build_flood(devices=device_section(2, 'dev'),
                               vmdesc=desc)


REFUSED = {'huge-device'}


CASES = {
    'empty-parts': empty_parts,
    'legacy-zero': legacy_zero,
    'many-commands': many_commands,
    'many-devices': many_devices,
    'huge-vmdesc': huge_vmdesc,
    'huge-device': huge_device,
}

RUNS = [
    ('inspect', ['inspect', '{f}']),
    ('inspect --json', ['inspect', '--json', '{f}']),
    ('verify', ['verify', '{f}']),
    ('extract', ['extract', '{f}', '--all', '-d', '{d}']),
]


def child_env():
    """ASan keeps freed memory in a quarantine (256 MiB by default) that
    would count as peak RSS: bound it in sanitizer builds."""
    env = dict(os.environ)
    opts = env.get('ASAN_OPTIONS', '')
    env['ASAN_OPTIONS'] = (opts + ':' if opts else '') + 'quarantine_size_mb=16'
    return env


def peak_run(argv):
    """Exit status and peak RSS in KiB of one child."""
    with open(os.devnull, 'wb') as null, \
            tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, stdout=null, stderr=err, env=child_env())
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return p.returncode, usage.ru_maxrss, err.read().decode(
            errors='replace')


def generate(case, path):
    """Write the case's file; run in a child, so that the process that
    forks the tools stays small (a child's ru_maxrss includes what it was
    before exec)."""
    data = CASES[case]()
    with open(path, 'wb') as f:
        f.write(data)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == 'gen':
        return generate(sys.argv[2], sys.argv[3])
    if len(sys.argv) < 2 or sys.argv[1] not in CASES:
        print('usage: %s {%s} [BOUND_MIB]' % (sys.argv[0], ','.join(CASES)))
        return 2
    bound_kib = int(sys.argv[2] if len(sys.argv) > 2 else 64) * 1024
    mapram = os.path.join(os.environ['MAPRAM_BUILD_DIR'], 'src', 'cli',
                          'mapram')
    want_rc = 1 if sys.argv[1] in REFUSED else 0
    tmp = tempfile.mkdtemp(prefix='mapram-mem-',
                           dir=os.environ.get('TMPDIR', '/var/tmp'))
    bad = []
    try:
        path = os.path.join(tmp, 'flood.img')
        subprocess.run([sys.executable, __file__, 'gen', sys.argv[1], path],
                       check=True)
        print('%s: %d bytes' % (sys.argv[1], os.path.getsize(path)))
        for name, args in RUNS:
            out = os.path.join(tmp, 'out')
            shutil.rmtree(out, ignore_errors=True)
            os.mkdir(out)
            argv = [mapram] + [a.format(f=path, d=out) for a in args]
            rc, kib, err = peak_run(argv)
            print('  %-15s rc=%d peak %.1f MiB %s' % (name, rc, kib / 1024,
                                                      err.strip()))
            if kib > bound_kib:
                bad.append('%s: peak RSS %.1f MiB > %d MiB'
                           % (name, kib / 1024, bound_kib // 1024))
            # extract goes ahead when only what follows the RAM is broken
            want = 0 if name == 'extract' else want_rc
            if rc != want or (rc and len(err.splitlines()) != 1):
                bad.append('%s: exit %d (expected %d), stderr %r'
                           % (name, rc, want, err))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for b in bad:
        print('FAIL: ' + b)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
