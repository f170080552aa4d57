#!/usr/bin/env python3
"""The QMP monitor's files call one way only (src/lib/qmp/qmp_internal.h):
every symbol a file of src/lib/qmp uses from another file of it must be
defined further down LAYERS.  Reads the archive with nm; exit 77 without
nm.  test_layers.py LIBMAPRAM.a"""
import re
import shutil
import subprocess
import sys

# top to bottom; client.c is the client library, beside the server
LAYERS = ['server', 'dispatch', 'commands', 'hmp', 'registry', 'call',
          'args', 'json_stream']
OBJ = re.compile(r'src_lib_qmp_(\w+)\.c\.o')


def symbols(archive):
    """{file: (defined, undefined)} for the server's files."""
    out = subprocess.run(['nm', '-A', archive], capture_output=True,
                         text=True, check=True).stdout
    files = {}
    for line in out.splitlines():
        m = OBJ.search(line.split(':')[-2] if line.count(':') >= 2 else '')
        if not m or m.group(1) not in LAYERS:
            continue
        parts = line.rsplit(None, 2)
        kind, name = parts[-2], parts[-1]
        d, u = files.setdefault(m.group(1), (set(), set()))
        (u if kind == 'U' else d if kind in 'TDRB' else set()).add(name)
    return files


def main():
    if not shutil.which('nm'):
        print('SKIP: no nm')
        return 77
    files = symbols(sys.argv[1])
    missing = [f for f in LAYERS if f not in files]
    if missing:
        print('FAIL: not in the archive: %s' % missing)
        return 1
    owner = {s: f for f, (d, _) in files.items() for s in d}
    bad = []
    for f, (_, used) in files.items():
        for s in sorted(used):
            g = owner.get(s)
            if g and LAYERS.index(g) <= LAYERS.index(f):
                bad.append('%s.c uses %s from %s.c' % (f, s, g))
    for b in bad:
        print('FAIL: ' + b)
    if not bad:
        print('ok   %d files, calls go one way' % len(files))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
