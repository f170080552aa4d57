#!/usr/bin/env python3
"""Check-then-act races in the mapram tool (test_races.py CASE).

A fake monitor (mrtest.FakeQMP) runs a step of the test at a chosen QMP
command, i.e. between two steps of `mapram save`, so the test wins each
race every time, without timing: a FILE appearing after the first check,
FILE turned into a FIFO or a symlink under --force, a planted sibling
name, FILE replaced mid-save, and another client's migration starting in
the middle.  The tool must refuse, destroy nothing, and undo only what it
did itself.  'save-two-vms' races two real mapram-vm saves to one path."""
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
from mrtest import (STATE_DONE, VM, FakeQMP, fail, mapram_bin,  # noqa: E402
                    read_header)

BUSY = "There's a migration process in progress"


def mapram(*args, timeout=30):
    cmd = [mapram_bin()] + [str(a) for a in args]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        fail('hung: %s' % ' '.join(cmd))
    print('$ %s\n-> %d\n%s%s' % (' '.join(cmd), res.returncode, res.stdout,
                                res.stderr))
    return res


def check(cond, what):
    if not cond:
        fail(what)


def refused(res, message):
    check(res.returncode == 1, 'expected exit 1, got %d' % res.returncode)
    last = res.stderr.strip().splitlines()[-1:]
    check(last and last[0] == 'mapram save: ' + message,
          'expected %r, got %r' % (message, res.stderr))


def content(path):
    with open(path, 'rb') as f:
        return f.read()


def once(fn):
    """A hook that acts on the first call only."""
    state = {'done': False}

    def hook(fake, args):
        if state['done']:
            return None
        state['done'] = True
        return fn(fake, args)
    return hook


def left_alone(fake):
    check(fake.running, 'the VM is not running again: %s' % fake.status)
    check(not fake.fdsets, 'fdsets left: %r' % fake.fdsets)


def with_fake(work, hooks, *save_args):
    fake = FakeQMP(os.path.join(work, 'qmp.sock'), hooks=hooks)
    try:
        return fake, mapram('save', '--qmp', fake.path, *save_args)
    finally:
        fake.close()


def case_appears(work):
    """FILE absent at the first check, created while the tool talks to
    the VM: refused, not replaced (it used to switch to --force)."""
    path = os.path.join(work, 'vm.sav')

    def plant(fake, args):
        with open(path, 'w') as f:
            f.write('precious')
    fake, res = with_fake(work, {'query-status': once(plant)}, path)
    refused(res, "'%s' exists; use --force to overwrite it" % path)
    check(content(path) == b'precious', 'the file that appeared was changed')
    check('stop' not in fake.log, 'the VM was paused before the refusal')
    left_alone(fake)
    check(sorted(os.listdir(work)) == ['qmp.sock', 'vm.sav'],
          'leftovers: %r' % os.listdir(work))


def case_force_fifo(work):
    """--force, FILE regular at the first check, then a FIFO: refused."""
    path = os.path.join(work, 'vm.sav')
    with open(path, 'w') as f:
        f.write('old')

    def to_fifo(fake, args):
        os.unlink(path)
        os.mkfifo(path)
    fake, res = with_fake(work, {'query-status': once(to_fifo)}, path,
                          '--force')
    refused(res, "'%s' is not a regular file (it is a FIFO)" % path)
    check(os.path.exists(path) and not os.path.isfile(path),
          'the FIFO was replaced')
    left_alone(fake)


def case_force_symlink(work):
    """--force, FILE turned into a symlink: refused, link and target kept."""
    path = os.path.join(work, 'vm.sav')
    target = os.path.join(work, 'elsewhere')
    with open(path, 'w') as f:
        f.write('old')
    with open(target, 'w') as f:
        f.write('precious')

    def to_link(fake, args):
        os.unlink(path)
        os.symlink(target, path)
    fake, res = with_fake(work, {'query-status': once(to_link)}, path,
                          '--force')
    refused(res, "'%s' is not a regular file (it is a symbolic link)" % path)
    check(os.path.islink(path), 'the symlink was replaced')
    check(content(target) == b'precious', 'the link target was changed')
    left_alone(fake)


def case_planted_sibling(work):
    """--force writes FILE.mapram-partial.<pid> first: a symlink planted
    there (the pid is the monitor's peer) is not followed."""
    path = os.path.join(work, 'vm.sav')
    target = os.path.join(work, 'elsewhere')
    with open(path, 'w') as f:
        f.write('old')
    with open(target, 'w') as f:
        f.write('precious')
    planted = []

    def plant(fake, args):
        planted.append('%s.mapram-partial.%d' % (path, fake.peer_pid))
        os.symlink(target, planted[0])
    fake, res = with_fake(work, {'query-status': once(plant)}, path,
                          '--force')
    refused(res, "Could not create '%s': File exists" % planted[0])
    check(content(target) == b'precious', 'the link target was written')
    check(content(path) == b'old', 'the old file was changed')
    check(os.path.islink(planted[0]), 'the planted link was removed')
    left_alone(fake)


def case_replaced_midway(work):
    """The save's FILE is replaced by another file while migrating, then
    the save fails: the other file is not removed."""
    path = os.path.join(work, 'vm.sav')
    other = os.path.join(work, 'other')

    def swap_and_fail(fake, args):
        with open(other, 'w') as f:
            f.write('precious')
        os.rename(other, path)
        return fake.error('fake failure')
    fake, res = with_fake(work, {'migrate': swap_and_fail}, path)
    refused(res, 'fake failure')
    check(os.path.exists(path), 'the file put at FILE was removed')
    check(content(path) == b'precious', 'the file put at FILE was changed')
    check('cont' in fake.log, 'the VM this save paused was not resumed')
    left_alone(fake)


def someone_else_migrates(fake, args):
    fake.status, fake.mig = 'paused', 'active'


def case_other_migration_configure(work):
    """Another client starts a (pausing) migration just after our checks;
    QEMU refuses our capabilities: no migrate_cancel, no cont."""
    path = os.path.join(work, 'vm.sav')

    def take_over(fake, args):
        someone_else_migrates(fake, args)
        return fake.error(BUSY)
    fake, res = with_fake(work, {'migrate-set-capabilities': once(take_over)},
                          path)
    refused(res, BUSY)
    check('migrate_cancel' not in fake.log, 'cancelled a foreign migration')
    check('cont' not in fake.log, 'resumed a VM another client paused')
    check(fake.mig == 'active' and fake.status == 'paused',
          'the other migration was disturbed: %s %s' % (fake.mig, fake.status))
    check(not os.path.exists(path), 'file left behind')


def case_other_migration_before_stop(work):
    """... just before our `stop`: the tool looks again and refuses."""
    path = os.path.join(work, 'vm.sav')
    fake, res = with_fake(
        work, {'migrate-set-parameters': once(someone_else_migrates)}, path)
    refused(res, BUSY)
    for cmd in ('stop', 'migrate', 'migrate_cancel', 'cont'):
        check(cmd not in fake.log, 'sent %s during a foreign migration' % cmd)
    check(fake.mig == 'active' and fake.status == 'paused',
          'the other migration was disturbed')
    check(not os.path.exists(path), 'file left behind')


def case_other_migration_migrate(work):
    """... just before our `migrate`, which QEMU refuses: the tool resumes
    the VM it paused itself, but cancels nothing."""
    path = os.path.join(work, 'vm.sav')

    def take_over(fake, args):
        fake.mig = 'active'
        return fake.error(BUSY)
    fake, res = with_fake(work, {'migrate': once(take_over)}, path)
    check(res.returncode == 1 and BUSY in res.stderr, 'not refused')
    check('migrate_cancel' not in fake.log, 'cancelled a foreign migration')
    check(fake.mig == 'active', 'the other migration was disturbed')
    check('cont' in fake.log and fake.running,
          'the VM this save paused was not resumed')


def case_two_vms(work):
    """Two tools save two mapram-vms to one path at once: exactly one
    wins, the other is refused and its VM runs again."""
    path = os.path.join(work, 'vm.sav')
    vms = [VM('thread', ram='64M', test_range='1M,60M') for _ in range(2)]
    try:
        procs = [subprocess.Popen([mapram_bin(), 'save', '--qmp', vm.sock,
                                   path], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for vm in vms]
        outs = [p.communicate(timeout=60) for p in procs]
        rcs = [p.returncode for p in procs]
        print('rcs %r: %r' % (rcs, outs))
        check(sorted(rcs) == [0, 1], 'expected one winner, got %r' % rcs)
        loser = rcs.index(1)
        check(outs[loser][1].strip().endswith(
            "'%s' exists; use --force to overwrite it" % path),
            'loser: %r' % outs[loser][1])
        st = vms[loser].qmp.cmd('query-status')
        check(st['running'], 'the losing VM does not run: %r' % st)
        check(vms[loser].qmp.cmd('query-fdsets') == [], 'loser fdset left')
        check(not vms[1 - loser].qmp.cmd('query-status')['running'],
              'the winning VM runs')
        res = mapram('verify', path)
        check(res.returncode == 0, 'the winning file does not verify')
    finally:
        for vm in vms:
            vm.kill()


def case_two_files(work):
    """Two tools save one mapram-vm to two files at once: whatever the
    interleaving, the loser undoes only its own steps, so exactly one
    save succeeds and its file verifies (both used to fail: the loser
    cancelled the winner's migration)."""
    paths = [os.path.join(work, 'a.sav'), os.path.join(work, 'b.sav')]
    vm = VM('thread', ram='64M', test_range='1M,60M')
    try:
        procs = [subprocess.Popen([mapram_bin(), 'save', '--qmp', vm.sock,
                                   p], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for p in paths]
        outs = [p.communicate(timeout=60) for p in procs]
        rcs = [p.returncode for p in procs]
        print('rcs %r: %r' % (rcs, outs))
        check(sorted(rcs) == [0, 1], 'expected one winner, got %r' % rcs)
        win = rcs.index(0)
        check(mapram('verify', paths[win]).returncode == 0,
              'the winning file does not verify')
        check(not os.path.exists(paths[1 - win]), 'the loser left a file')
        check(vm.qmp.cmd('query-fdsets') == [], 'fdsets left')
    finally:
        vm.kill()


def case_signal_at_finish(work):
    """SIGINT while the tool waits for a command's reply after the
    migration completed: the command is not abandoned (it used to fail
    with "remove-fd: interrupted" while the VM acted on it); the save
    is whole."""
    path = os.path.join(work, 'vm.sav')

    def interrupt(fake, args):
        os.kill(fake.peer_pid, signal.SIGINT)
        time.sleep(0.2)     # delivered while the tool waits for the reply
    fake, res = with_fake(work, {'remove-fd': once(interrupt)}, path)
    check(res.returncode == 0, 'exit %d: %r' % (res.returncode, res.stderr))
    check(read_header(path)['state'] == STATE_DONE, 'the file is not DONE')
    check(not fake.fdsets, 'fdsets left: %r' % fake.fdsets)


CASES = {
    'save-appears': case_appears,
    'save-force-fifo': case_force_fifo,
    'save-force-symlink': case_force_symlink,
    'save-planted-sibling': case_planted_sibling,
    'save-replaced-midway': case_replaced_midway,
    'save-other-migration-configure': case_other_migration_configure,
    'save-other-migration-before-stop': case_other_migration_before_stop,
    'save-other-migration-migrate': case_other_migration_migrate,
    'save-two-vms': case_two_vms,
    'save-two-files': case_two_files,
    'save-signal-at-finish': case_signal_at_finish,
}

if __name__ == '__main__':
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit('usage: test_races.py {%s}' % ','.join(CASES))
    work = tempfile.mkdtemp(prefix='mapram-race-')
    try:
        sys.exit(CASES[sys.argv[1]](work) or 0)
    finally:
        subprocess.run(['rm', '-rf', work])
