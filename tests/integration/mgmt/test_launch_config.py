#!/usr/bin/env python3
"""The launch configuration a save records (issue 14, item 7;
docs/file-header.md, "Launch metadata").  Against a fake monitor:
save records the peer's command line and what the monitor reports,
inspect shows it (text and --json), restore refuses a destination that
differs and names the difference, --force-config overrides, a flipped
byte in the metadata is caught by its CRC, and a file without metadata
(an older save) still restores.  Against QEMU 10: a real save records
the machine type, a destination with another -m is refused naming the
RAM size, a matching one restores byte for byte, and `restore --spawn`
starts QEMU again from the recorded command line.
test_launch_config.py fake|qemu-check|qemu-spawn."""
import json
import os
import re
import shutil
import signal
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'lib'))
from mrtest import (QMP, FakeQMP, Qemu, crc32c, main, run_mapram,  # noqa: E402
                    same_file, SKIP, QEMU)

PERIPHERAL = [{'name': 'type', 'type': 'string'},
              {'name': 'net0', 'type': 'child<virtio-net-pci>'}]


def fake_vm(path, status='running', machine='pc-q35-10.0-machine',
            devices=None, ram=64 << 20):
    devs = PERIPHERAL if devices is None else devices

    def qom_get(fake, args):
        return {'return': machine}

    def qom_list(fake, args):
        if args.get('path') == '/machine/peripheral':
            return {'return': devs}
        return {'return': []}

    return FakeQMP(path, status=status, ram=ram, hooks={
        'qom-get': qom_get, 'qom-list': qom_list,
        'query-target': lambda f, a: {'return': {'arch': 'x86_64'}}})


def own_cmdline():
    with open('/proc/self/cmdline', 'rb') as f:
        return [a.decode() for a in f.read().split(b'\0')[:-1]]


def check_inspect(path):
    res = run_mapram('inspect', '--json', path)
    launch = json.loads(res.stdout)['launch']
    want = {'kind': 'qemu', 'machine': 'pc-q35-10.0', 'arch': 'x86_64',
            'ram': 64 << 20, 'device': ['net0=virtio-net-pci'],
            'argv': own_cmdline()}
    for k, v in want.items():
        assert launch.get(k) == v, (k, launch.get(k), v)
    text = run_mapram('inspect', path).stdout
    assert re.search(r'launch\.machine +pc-q35-10\.0', text), text
    assert 'launch.device   net0=virtio-net-pci' in text, text


def restore(d, path, *extra, **fake_args):
    sock = os.path.join(d, 'dst%d.sock' % len(os.listdir(d)))
    fake = fake_vm(sock, status='inmigrate', **fake_args)
    try:
        return run_mapram('restore', '--qmp', sock, path, *extra)
    finally:
        fake.close()


def drop_launch(path, dest):
    """An older save: launch_len and launch_crc 0, header CRC redone."""
    shutil.copy(path, dest)
    with open(dest, 'r+b') as f:
        raw = bytearray(f.read(512))
        raw[196:204] = bytes(8)
        raw[60:64] = bytes(4)
        struct.pack_into('<I', raw, 60, crc32c(bytes(raw)))
        f.seek(0)
        f.write(raw)


def case_fake(d):
    path = os.path.join(d, 'vm.sav')
    src = fake_vm(os.path.join(d, 'src.sock'))
    run_mapram('save', '--qmp', src.path, path, expect_rc=0)
    src.close()
    check_inspect(path)
    res = restore(d, path, '--paused')
    assert res.returncode == 0, res.stderr
    res = restore(d, path, machine='pc-i440fx-10.0-machine',
                  devices=[{'name': 'disk1', 'type': 'child<virtio-blk-pci>'}])
    assert res.returncode == 1
    for words in ('--force-config', 'machine type: saved pc-q35-10.0, this '
                  'VM pc-i440fx-10.0', 'device net0=virtio-net-pci missing',
                  'device disk1=virtio-blk-pci not in the save'):
        assert words in res.stderr, (words, res.stderr)
    res = restore(d, path, '--force-config', machine='pc-i440fx-10.0-machine')
    assert res.returncode == 0, res.stderr
    # one flipped byte of the metadata: its CRC catches it
    bad = os.path.join(d, 'bad.sav')
    shutil.copy(path, bad)
    with open(bad, 'r+b') as f:
        raw = f.read(512)
        meta_len, launch_len = struct.unpack_from('<II', raw, 192)
        assert launch_len > 0
        f.seek(512 + meta_len + launch_len - 1)
        last = f.read(1)
        f.seek(512 + meta_len + launch_len - 1)
        f.write(bytes([last[0] ^ 1]))
    res = restore(d, bad)
    assert res.returncode == 1 and 'launch metadata CRC32C' in res.stderr, \
        res.stderr
    old = os.path.join(d, 'old.sav')
    drop_launch(path, old)
    res = restore(d, old, machine='pc-i440fx-10.0-machine')
    assert res.returncode == 0, res.stderr
    assert json.loads(run_mapram('inspect', '--json', old).stdout)[
        'launch'] is None


def case_qemu_check(d):
    path = os.path.join(d, 'vm.sav')
    with Qemu(d, 'src', prefill=True) as src:
        run_mapram('save', '--qmp', src.sock_path, path, '--no-direct-io',
                   expect_rc=0)
        launch = json.loads(run_mapram('inspect', '--json', path).stdout)[
            'launch']
        assert launch['machine'].startswith('pc-q35-'), launch
        assert launch['arch'] == 'x86_64', launch
        assert launch['ram'] == 64 << 20, launch
        assert launch['argv'][0] == QEMU and '-nodefaults' in launch['argv']
        with Qemu(d, 'big', ram_mib=128, incoming=True) as big:
            res = run_mapram('restore', '--qmp', big.sock_path, path)
            assert res.returncode == 1, res.returncode
            assert 'RAM size mismatch: the file holds 64 MiB of RAM, the ' \
                'VM has 128 MiB' in res.stderr, res.stderr
            assert big.status() == 'inmigrate'
        with Qemu(d, 'dst', incoming=True) as dst:
            run_mapram('restore', '--qmp', dst.sock_path, path, '--paused',
                       expect_rc=0)
            assert same_file(src.ram_path, dst.ram_path)


def case_qemu_spawn(d):
    path = os.path.join(d, 'vm.sav')
    ref = os.path.join(d, 'ref.ram')
    with Qemu(d, 'src', prefill=True) as src:
        run_mapram('save', '--qmp', src.sock_path, path, '--no-direct-io',
                   expect_rc=0)
        shutil.copy(src.ram_path, ref)
    # the recorded command line names the same memory file: blank it, so
    # only the load can bring the pages back
    size = os.path.getsize(ref)
    os.unlink(src.ram_path)
    with open(src.ram_path, 'wb') as f:
        f.truncate(size)
    res = run_mapram('restore', '--spawn', path, '--paused')
    m = re.search(r'QEMU \(pid (\d+)\) is reachable at (\S+)', res.stdout)
    try:
        assert res.returncode == 0 and m, res.stderr
        q = QMP(m.group(2))
        q.negotiate()
        # the source never ran (-S): QEMU carries its "prelaunch" over
        st = q.cmd('query-status')['status']
        assert st in ('paused', 'prelaunch'), st
        q.close()
        assert same_file(ref, src.ram_path), 'guest RAM differs'
    finally:
        if m:
            os.kill(int(m.group(1)), signal.SIGKILL)
            shutil.rmtree(os.path.dirname(m.group(2)), ignore_errors=True)


if __name__ == '__main__':
    if len(sys.argv) == 2 and sys.argv[1] == 'fake':
        with tempfile.TemporaryDirectory(prefix='mapram-launch-') as d:
            case_fake(d)
        print('ok')
        sys.exit(0)
    sys.exit(main({'qemu-check': case_qemu_check,
                   'qemu-spawn': case_qemu_spawn}))
