#!/usr/bin/env python3
"""A monitor held by another client (issue 14, item 6): QEMU serves one
client per -qmp socket and does not accept a second one, so the kernel
queues our connection and no greeting ever comes.  A listening socket
that never accepts is exactly that.  `save` and `restore` must say why
they gave up, name the cure (a second -qmp socket), and honour
--timeout.  test_busy_monitor.py save|restore|bad-timeout."""
import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'lib'))
from mrtest import FakeQMP, run_mapram  # noqa: E402


def held_monitor(path):
    """Listens, never accepts, never greets."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    return srv


def check_diagnosis(res):
    err = res.stderr
    assert res.returncode == 1, res.returncode
    for words in ('no QMP greeting', 'within 1 s', 'another client',
                  'second -qmp socket'):
        assert words in err, 'missing %r in %r' % (words, err)


def case_save(d):
    srv = held_monitor(os.path.join(d, 'm.sock'))
    res = run_mapram('save', '--qmp', os.path.join(d, 'm.sock'),
                     '--timeout', '1', os.path.join(d, 'vm.sav'))
    srv.close()
    check_diagnosis(res)
    assert not os.path.exists(os.path.join(d, 'vm.sav'))


def case_restore(d):
    path = os.path.join(d, 'vm.sav')
    fake = FakeQMP(os.path.join(d, 'src.sock'))
    run_mapram('save', '--qmp', fake.path, path, expect_rc=0)
    fake.close()
    srv = held_monitor(os.path.join(d, 'm.sock'))
    res = run_mapram('restore', '--qmp', os.path.join(d, 'm.sock'),
                     '--timeout', '1', path)
    srv.close()
    check_diagnosis(res)


def case_bad_timeout(d):
    for bad in ('0', '-1', 'x', '1e9', ''):
        res = run_mapram('save', '--qmp', os.path.join(d, 'm.sock'),
                         '--timeout', bad, os.path.join(d, 'vm.sav'))
        assert res.returncode == 2, (bad, res.returncode)
        assert '--timeout' in res.stderr, res.stderr


CASES = {'save': case_save, 'restore': case_restore,
         'bad-timeout': case_bad_timeout}

if __name__ == '__main__':
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit('usage: %s {%s}' % (sys.argv[0], '|'.join(CASES)))
    with tempfile.TemporaryDirectory(prefix='mapram-busy-') as d:
        CASES[sys.argv[1]](d)
    print('ok')
