"""The benchmark's cases: a name's migration settings (Case), the names
for the configured channel counts, and which VM/LAYOUT/CASE the CASES
globs select.  Pure; shared by measuring and reporting.
"""
import fnmatch


class Case:
    """legacy | mr | mfN | mfN-dio, each optionally -live; for mapram-vm
    also mr-lazy and mfN-dio-lazy (optionally -live): the same file
    restored eagerly, then lazily twice (the second time with the first's
    working set); or a restore case (below)."""

    def __init__(self, name):
        self.name = name
        self.sock_restore = name.endswith(SOCK_RESTORE)
        name = name[:-len(SOCK_RESTORE)] if self.sock_restore else name
        self.live = name.endswith('-live')
        base = name[:-5] if self.live else name
        self.lazy = base.endswith('-lazy')
        base = base[:-5] if self.lazy else base
        self.dio = base.endswith('-dio')
        base = base[:-4] if self.dio else base
        self.mapped_ram = base != 'legacy'
        self.channels = int(base[2:]) if base.startswith('mf') else 0


def case_names(cfg, vm='mapram'):
    names = ['legacy', 'mr']
    for ch in cfg.channels:
        names += ['mf%d' % ch, 'mf%d-dio' % ch]
    if vm == 'mapram':
        names += ['mr-lazy'] + ['mf%d-dio-lazy' % ch for ch in cfg.channels]
    return names


# ---- save cases: `mapram save` over multifd sockets (issue 12) ----------
# VM name 'msave': a QEMU 10 source saved by `mapram save --transport
# socket` (the tool writes the file), restored by QEMU's own file loader;
# mfN is --channels N, -dio --direct-io (else --no-direct-io).  Compare
# with qemu/LAYOUT/mfN[-dio], QEMU's own file saves.
SOCKET_SAVE_VM = 'msave'


def socket_save_args(case):
    return ['--transport', 'socket', '--channels', str(case.channels),
            '--direct-io' if case.dio else '--no-direct-io']
# ---- end of the save cases ------------------------------------------------


def selected(cfg):
    """(vm, layout, Case) for every case the CASES globs pick."""
    out = []
    for vm in cfg.vms:
        for layout in cfg.layouts:
            for live in ([False, True] if vm == 'mapram' and cfg.live
                         else [False]):
                for n in case_names(cfg, vm):
                    if vm == SOCKET_SAVE_VM and not n.startswith('mf'):
                        continue
                    full = n + ('-live' if live else '')
                    key = '%s/%s/%s' % (vm, layout, full)
                    if any(fnmatch.fnmatch(key, p) for p in cfg.cases):
                        out.append((vm, layout, Case(full)))
            out += restore_cases(cfg, vm, layout)
    return out


# ---- socksend: restore cases ---------------------------------------------
# "mapram restore over sockets vs QEMU's best file restore": QEMU saves
# with mapped-ram and multifd N to a bare file (as mfN); the restore is
# `mapram restore --transport socket --channels N` into a QEMU with
# -incoming defer (the tool reads with O_DIRECT and sends over N multifd
# UNIX sockets).  Named mfN-sockrestore.
SOCK_RESTORE = '-sockrestore'


def restore_cases(cfg, vm, layout):
    if vm != 'qemu':
        return []
    out = []
    for ch in cfg.channels:
        key = '%s/%s/mf%d%s' % (vm, layout, ch, SOCK_RESTORE)
        if any(fnmatch.fnmatch(key, p) for p in cfg.cases):
            out.append((vm, layout, Case(key.split('/')[2])))
    return out
# ---- end of socksend's restore cases -------------------------------------
