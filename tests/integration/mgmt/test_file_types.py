#!/usr/bin/env python3
"""Every path the mapram tool opens, against every kind of file
(test_file_types.py CASE): a FIFO, a character device, a directory, a
symlink and a hard link to the input, for inspect, verify, extract (its
input, -o and --all's names), save's FILE and restore's FILE (save and
restore against mrtest.FakeQMP).  Each must get a clear refusal (a
symlink to an input is followed, as docs/inspect.md says), never hang
(every run has a timeout) and destroy nothing (checked after each run)."""
import hashlib
import os
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'interop'))
from mrtest import FakeQMP, fail, mapram_bin  # noqa: E402
from streamgen import Stream  # noqa: E402

NOT_REG = 'not a regular file (it is %s)'


def mapram(*args):
    cmd = [mapram_bin()] + [str(a) for a in args]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        fail('hung: %s' % ' '.join(cmd))
    print('$ %s\n-> %d\n%s%s' % (' '.join(cmd), res.returncode, res.stdout,
                                res.stderr))
    return res


def check(cond, what):
    if not cond:
        fail(what)


def expect(res, line, rc=3):
    """rc 3: a file that cannot be opened, read or written (docs/inspect.md);
    save and restore pass rc=1."""
    got = res.stderr.strip().splitlines()
    check(res.returncode == rc, 'expected exit %d, got %d: %r'
          % (rc, res.returncode, res.stderr))
    check(got and got[-1] == line, 'expected %r, got %r' % (line, got))


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


class Kinds:
    """A directory holding one file of each kind, and a way to see that
    none of them changed."""

    def __init__(self, work, good):
        self.work, self.good = work, good
        self.fifo = os.path.join(work, 'fifo')
        os.mkfifo(self.fifo)
        self.dir = os.path.join(work, 'dir')
        os.mkdir(self.dir)
        self.chr = os.path.join(work, 'full')
        try:    # our own /dev/full: a write to it fails with ENOSPC
            os.mknod(self.chr, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
        except PermissionError:
            self.chr = None
        self.target = os.path.join(work, 'target')
        with open(self.target, 'w') as f:
            f.write('precious')
        self.link = os.path.join(work, 'link')
        os.symlink(self.target, self.link)
        self.hard = os.path.join(work, 'hard')
        os.link(good, self.hard)
        self.sums = {good: digest(good), self.target: digest(self.target)}

    def devices(self):
        """(path, kind) of the special files, for refusals."""
        out = [(self.fifo, 'a FIFO'), (self.dir, 'a directory'),
               ('/dev/null', 'a character device')]
        if self.chr:
            out.append((self.chr, 'a character device'))
        return out

    def intact(self):
        check(stat.S_ISFIFO(os.lstat(self.fifo).st_mode), 'FIFO gone')
        check(os.path.isdir(self.dir), 'directory gone')
        check(not self.chr or (os.path.lexists(self.chr) and
                               stat.S_ISCHR(os.lstat(self.chr).st_mode)),
              'device node gone')
        check(os.path.islink(self.link), 'symlink gone')
        check(os.path.samefile(self.hard, self.good), 'hard link gone')
        for path, sum_ in self.sums.items():
            check(digest(path) == sum_, '%s changed' % path)
        check(os.path.exists('/dev/null'), '/dev/null gone')


def good_stream(work):
    path = os.path.join(work, 'good.img')
    with open(path, 'wb') as f:
        f.write(Stream().build())
    return path


def case_inputs(work):
    """inspect, verify and extract's FILE."""
    k = Kinds(work, good_stream(work))
    out = os.path.join(work, 'out.img')
    runs = [('inspect',), ('verify',)]
    for cmd in runs:
        for path, kind in k.devices():
            expect(mapram(*cmd, path), 'mapram: %s: %s' % (path, NOT_REG % kind))
        check(mapram(*cmd, k.hard).returncode == 0, 'hard link refused')
    for path, kind in k.devices():
        expect(mapram('extract', path, '--block', 'mem', '-o', out),
               'mapram: %s: %s' % (path, NOT_REG % kind))
        check(not os.path.exists(out), 'output created for a bad input')
    # a symlink to the input is followed (reading it is harmless)
    os.symlink(k.good, os.path.join(work, 'good-link'))
    check(mapram('inspect', os.path.join(work, 'good-link')).returncode == 0,
          'symlinked input refused')
    k.intact()


def case_extract_out(work):
    """extract -o OUT: nothing but a new or regular file, never the
    input, never followed through a symlink; with and without --force."""
    k = Kinds(work, good_stream(work))
    for force in ((), ('--force',)):
        for path, kind in k.devices():
            want = (NOT_REG % kind if force else
                    'File exists (use --force to overwrite)')
            expect(mapram('extract', k.good, '--block', 'mem', '-o', path,
                          *force), 'mapram: %s: %s' % (path, want))
        for path, what in ((k.link, NOT_REG % 'a symbolic link'),
                           (k.hard, 'is the input file itself (the same '
                            'inode); refusing to overwrite it'),
                           (k.good, 'is the input file itself (the same '
                            'inode); refusing to overwrite it')):
            want = what if force else 'File exists (use --force to overwrite)'
            expect(mapram('extract', k.good, '--block', 'mem', '-o', path,
                          *force), 'mapram: %s: %s' % (path, want))
        k.intact()
    # --force over a regular file that is not the input: overwritten
    other = os.path.join(work, 'other.img')
    with open(other, 'w') as f:
        f.write('old')
    check(mapram('extract', k.good, '--block', 'mem', '-o', other,
                 '--force').returncode == 0, '--force over a file failed')
    check(os.path.getsize(other) > 3, 'not overwritten')


def case_extract_no_destroy(work):
    """extract -o --force over what it must not touch, no FIFO involved:
    a device node whose writes fail (it used to be unlinked), the input
    itself and a hard link to it (they used to be truncated to zeros)."""
    k = Kinds(work, good_stream(work))
    if k.chr:
        res = mapram('extract', k.good, '--block', 'mem', '-o', k.chr,
                     '--force')
        k.intact()
        expect(res, 'mapram: %s: %s' % (k.chr, NOT_REG % 'a character device'))
    for path in (k.good, k.hard):
        res = mapram('extract', k.good, '--block', 'mem', '-o', path,
                     '--force')
        k.intact()
        expect(res, 'mapram: %s: is the input file itself (the same inode); '
               'refusing to overwrite it' % path)


def case_extract_all(work):
    """extract --all -d DIR, where DIR already holds mem.img as a FIFO,
    a symlink or a hard link to the input; and DIR itself a FIFO."""
    k = Kinds(work, good_stream(work))
    out = os.path.join(work, 'd')
    os.mkdir(out)
    mem = os.path.join(out, 'mem.img')
    for make, kind in ((os.mkfifo, 'a FIFO'),
                       (lambda p: os.symlink(k.target, p), 'a symbolic link')):
        make(mem)
        expect(mapram('extract', k.good, '--all', '-d', out, '--force'),
               'mapram: mem.img: %s' % NOT_REG % kind)
        check(os.path.lexists(mem), 'mem.img removed')
        os.unlink(mem)
    os.link(k.good, mem)
    expect(mapram('extract', k.good, '--all', '-d', out, '--force'),
           'mapram: mem.img: is the input file itself (the same inode); '
           'refusing to overwrite it')
    os.unlink(mem)
    expect(mapram('extract', k.good, '--all', '-d', k.fifo),
           'mapram: %s: Not a directory' % k.fifo)
    k.intact()


def fake(work, name, status='running'):
    return FakeQMP(os.path.join(work, name + '.sock'), status=status)


def case_save(work):
    """save's FILE: refused as existing without --force; with --force
    refused unless a regular file; a hard link is replaced as a name
    only (the other name keeps the old content)."""
    k = Kinds(work, good_stream(work))
    vm = fake(work, 'src')
    try:
        dangling = os.path.join(work, 'dangling')
        os.symlink(os.path.join(work, 'nowhere'), dangling)
        specials = k.devices() + [(k.link, 'a symbolic link'),
                                  (dangling, 'a symbolic link')]
        for path, kind in specials:
            expect(mapram('save', '--qmp', vm.path, path),
                   "mapram save: '%s' exists; use --force to overwrite it"
                   % path, rc=1)
            expect(mapram('save', '--qmp', vm.path, path, '--force'),
                   "mapram save: '%s' is not a regular file (it is %s)"
                   % (path, kind), rc=1)
        check(not os.path.exists(os.path.join(work, 'nowhere')),
              'a dangling symlink was followed')
        check('stop' not in vm.log, 'a refused save paused the VM')
        check(vm.running and not vm.fdsets, 'VM state changed')
        k.intact()
        check(mapram('save', '--qmp', vm.path, k.hard,
                      '--force').returncode == 0, 'save over a hard link')
        check(not os.path.samefile(k.hard, k.good), 'not replaced')
        check(digest(k.good) == k.sums[k.good], 'the other link changed')
    finally:
        vm.close()


def case_restore(work):
    """restore's FILE: special files refused before the VM is touched; a
    symlink and a hard link to a save file are followed."""
    src = fake(work, 'src')
    saved = os.path.join(work, 'vm.sav')
    try:
        check(mapram('save', '--qmp', src.path, saved).returncode == 0,
              'the fake save failed')
    finally:
        src.close()
    k = Kinds(work, saved)
    for path, kind in k.devices():
        dst = fake(work, 'dst', status='inmigrate')
        try:
            expect(mapram('restore', '--qmp', dst.path, path),
                   "mapram restore: Could not open '%s': %s"
                   % (path, NOT_REG % kind), rc=1)
            check(dst.log == [], 'the VM was contacted: %r' % dst.log)
        finally:
            dst.close()
            os.unlink(dst.path)
    for path in (os.path.join(work, 'sav-link'), k.hard):
        if not os.path.lexists(path):
            os.symlink(saved, path)
        dst = fake(work, 'dst', status='inmigrate')
        try:
            check(mapram('restore', '--qmp', dst.path, path).returncode == 0,
                  'restore through %s failed' % path)
        finally:
            dst.close()
            os.unlink(dst.path)
    k.intact()


CASES = {'inputs': case_inputs, 'extract-out': case_extract_out,
         'extract-no-destroy': case_extract_no_destroy,
         'extract-all': case_extract_all, 'save': case_save,
         'restore': case_restore}

if __name__ == '__main__':
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit('usage: test_file_types.py {%s}' % ','.join(CASES))
    work = tempfile.mkdtemp(prefix='mapram-types-')
    try:
        sys.exit(CASES[sys.argv[1]](work) or 0)
    finally:
        subprocess.run(['rm', '-rf', work])
