"""The benchmark's VMs: one VM process of a kind (mapram-vm of a build
directory, or QEMU 10) started through tests/lib/mrtest.py's launchers,
set up for a case and driven over QMP.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'tests', 'lib'))
import mrtest  # noqa: E402


class Peer:
    """One VM a run measures: `name` labels its results (mapram, qemu, or
    A and B in an A/B run), `kind` picks the launcher, `binary` is
    mapram-vm's path (unused for QEMU)."""

    def __init__(self, name, kind, binary=None):
        self.name, self.kind, self.binary = name, kind, binary


def start_mapram(peer, cfg, memfile, role, incoming, live_range, prealloc):
    extra = ['-incoming', 'defer'] if incoming else []
    if not live_range:
        extra.append('-S')
    return mrtest.VM('kvm' if mrtest.have_kvm() else 'thread',
                     ram='%dM' % (cfg.size >> 20), extra=extra,
                     test_range=live_range, mem=memfile,
                     vm_binary=peer.binary, prealloc=prealloc,
                     workdir=cfg.workdir,
                     log=os.path.join(cfg.workdir, '%s-%s.log' % (peer.name,
                                                                  role)))


def start_qemu(peer, cfg, memfile, role, incoming, live_range, prealloc):
    # QEMU runs paused cases only: its q35 guest has no program that
    # dirties memory (live_range is None here).
    return mrtest.Qemu(cfg.workdir, '%s-%s' % (peer.name, role),
                       ram_mib=cfg.size >> 20, incoming=incoming,
                       paused=True, ram_path=memfile, prealloc=prealloc)


# 'msave' (cases.py, save cases): a QEMU that `mapram save` saves
LAUNCHERS = {'mapram': start_mapram, 'qemu': start_qemu, 'msave': start_qemu}


def start(peer, cfg, memfile, role, incoming=False, live_range=None,
          prealloc=False):
    """The started VM (mrtest.VM or mrtest.Qemu: .proc, .qmp, .kill())."""
    vm = LAUNCHERS[peer.kind](peer, cfg, memfile, role, incoming,
                              live_range, prealloc)
    # QEMU's file load blocks its main loop (QMP) for as long as it runs
    vm.qmp.sock.settimeout(max(cfg.timeout, mrtest.TIMEOUT))
    return vm


def setup(vm, case, lazy=False):
    """The case's capabilities and parameters; `lazy`: a lazy restore
    (postcopy-ram, and events to time the resume)."""
    caps = [{'capability': 'mapped-ram', 'state': case.mapped_ram},
            {'capability': 'multifd', 'state': case.channels > 0}]
    if lazy:
        caps += [{'capability': 'postcopy-ram', 'state': True},
                 {'capability': 'events', 'state': True}]
    vm.qmp.cmd('migrate-set-capabilities', {'capabilities': caps})
    params = {'max-bandwidth': 0}
    if case.channels:
        params['multifd-channels'] = case.channels
    if case.dio:
        params['direct-io'] = True
    vm.qmp.cmd('migrate-set-parameters', params)


def wait_migration(vm, timeout):
    """Poll query-migrate every 10 ms until the migration ends; cancel it
    after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        info = vm.qmp.cmd('query-migrate')
        if info.get('status') in ('completed', 'failed', 'cancelled'):
            return info
        if time.monotonic() > deadline:
            vm.qmp.cmd('migrate_cancel')
            while vm.qmp.cmd('query-migrate').get('status') not in (
                    'cancelled', 'failed', 'completed'):
                time.sleep(0.05)
            return {'status': 'timeout', 'error-desc': 'no completion '
                    'after %.0f s' % timeout, **info}
        time.sleep(0.01)


def stop(vm):
    """quit over QMP, then make sure the process is gone."""
    try:
        vm.qmp.cmd('quit')
        vm.proc.wait(10)
    except Exception:
        pass
    vm.qmp.close()
    vm.kill()
