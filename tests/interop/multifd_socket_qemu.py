#!/usr/bin/env python3
"""Interop: mapram's multifd wire codec against a real QEMU 10 sender.

A paused QEMU with a patterned 64 MiB RAM migrates with multifd (CHANNELS
page sockets, zero-page-detection=multifd) to a UNIX socket this script
listens on.  Every socket is captured to a file until QEMU closes it; the
main stream is recognised by its QEVM magic and its RAM setup gives the
block list.  tests/interop/mfd_recv_check then decodes each page channel
with mapram's codec, stores the pages, and the `mem` block must equal the
guest RAM byte for byte.

Then the other direction: tests/interop/mfd_resend re-encodes the pages
with mapram's encoder in its own, smaller packets, and a QEMU 10
destination loads the captured main stream with those channels; its RAM
must equal the source's.

usage: multifd_socket_qemu.py CHECKER RESENDER CHANNELS
"""
import os
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'lib'))
import mrtest  # noqa: E402


def capture(listener, n, workdir):
    """Accept n sockets, each read to EOF into its own file."""
    paths, threads = [], []

    def drain(conn, path):
        with open(path, 'wb') as f:
            while True:
                b = conn.recv(1 << 20)
                if not b:
                    break
                f.write(b)
        conn.close()

    for i in range(n):
        conn, _ = listener.accept()
        path = os.path.join(workdir, 'sock%d' % i)
        t = threading.Thread(target=drain, args=(conn, path))
        t.start()
        paths.append(path)
        threads.append(t)
    return paths, threads


def ram_blocks(main):
    """The block list of the ram START section (docs/multifd.md)."""
    with open(main, 'rb') as f:
        s = f.read(1 << 16)
    assert s[:8] == b'QEVM\0\0\0\3', 'main stream magic'
    pos = 8
    assert s[pos] == 0x07
    pos += 5 + struct.unpack_from('>I', s, pos + 1)[0]
    while s[pos] != 0x01:  # OPEN_RETURN_PATH etc. would be 0x08
        assert s[pos] == 0x08, 'unexpected section 0x%x' % s[pos]
        pos += 5 + struct.unpack_from('>H', s, pos + 3)[0]
    pos += 5
    name = s[pos + 1:pos + 1 + s[pos]]
    assert name == b'ram', name
    pos += 1 + s[pos] + 8
    total = struct.unpack_from('>Q', s, pos)[0] & ~0xfff
    pos += 8
    blocks = []
    while sum(b[1] for b in blocks) < total:
        n = s[pos]
        bname = s[pos + 1:pos + 1 + n].decode()
        used = struct.unpack_from('>Q', s, pos + 1 + n)[0]
        blocks.append((bname, used))
        pos += 1 + n + 8
    return blocks


def run(workdir, checker, resender, channels):
    sock = os.path.join(workdir, 'mig.sock')
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock)
    listener.listen(channels + 1)
    with mrtest.Qemu(workdir, 'src', prefill=True) as q:
        q.qmp.cmd('migrate-set-capabilities', {'capabilities': [
            {'capability': 'multifd', 'state': True}]})
        q.qmp.cmd('migrate-set-parameters', {'multifd-channels': channels})
        q.qmp.cmd('migrate', {'uri': 'unix:' + sock})
        paths, threads = capture(listener, channels + 1, workdir)
        deadline = time.time() + 60
        while q.qmp.cmd('query-migrate').get('status') != 'completed':
            st = q.qmp.cmd('query-migrate')
            if st.get('status') == 'failed' or time.time() > deadline:
                mrtest.fail('QEMU migration: %s' % st)
            time.sleep(0.05)
        q.qmp.cmd('quit')
        for t in threads:
            t.join(60)
    main = [p for p in paths if open(p, 'rb').read(4) == b'QEVM']
    assert len(main) == 1, 'exactly one main socket'
    pages = [p for p in paths if p not in main]
    blocks = ram_blocks(main[0])
    print('blocks:', blocks)
    out = os.path.join(workdir, 'out')
    os.mkdir(out)
    args = [checker, out] + ['%s=%d' % b for b in blocks] + ['--'] + pages
    res = subprocess.run(args, capture_output=True, text=True, timeout=60)
    print(res.stdout, res.stderr)
    if res.returncode:
        mrtest.fail('mapram codec refused QEMU channel: %s' % res.stderr)
    ids = sorted(int(l.split()[1].rstrip(':')) for l in res.stdout.splitlines())
    assert ids == list(range(channels)), ids
    for line in res.stdout.splitlines():
        assert int(line.split()[5]) >= 1, 'every channel carries a SYNC'
    mem = [i for i, b in enumerate(blocks) if b[0] == 'mem'][0]
    if not mrtest.same_file(os.path.join(out, '%d.img' % mem), q.ram_path):
        mrtest.fail('pages received differ from the guest RAM')
    hostile(workdir, checker, out, blocks, pages)
    print('OK: %d channels decoded, mem equals guest RAM' % channels)
    to_qemu(workdir, resender, blocks, main[0], pages, q.ram_path)


def send_all(sock_path, paths):
    """Connect one socket per file and stream them all concurrently."""
    def send(path):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(sock_path)
        with open(path, 'rb') as f:
            c.sendall(f.read())
        c.shutdown(socket.SHUT_WR)
        while c.recv(4096):
            pass
        c.close()
    threads = [threading.Thread(target=send, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    return threads


def to_qemu(workdir, resender, blocks, main, pages, src_ram):
    res = subprocess.run([resender, workdir] + ['%s=%d' % b for b in blocks]
                         + ['--'] + pages, capture_output=True, text=True,
                         timeout=60)
    if res.returncode:
        mrtest.fail('mfd_resend: %s' % res.stderr)
    resent = [os.path.join(workdir, 'resent%d' % i) for i in range(len(pages))]
    sock = os.path.join(workdir, 'dst.mig')
    with mrtest.Qemu(workdir, 'dst', incoming=True) as d:
        d.qmp.cmd('migrate-set-capabilities', {'capabilities': [
            {'capability': 'multifd', 'state': True}]})
        d.qmp.cmd('migrate-set-parameters', {'multifd-channels': len(pages)})
        d.qmp.cmd('migrate-incoming', {'uri': 'unix:' + sock})
        threads = send_all(sock, [main] + resent)
        deadline = time.time() + 60
        while d.qmp.cmd('query-migrate').get('status') != 'completed':
            if time.time() > deadline:
                mrtest.fail('QEMU destination: %s\n%s' % (
                    d.qmp.cmd('query-migrate'), open(d.log_path).read()))
            time.sleep(0.05)
        for t in threads:
            t.join(30)
        if not mrtest.same_file(d.ram_path, src_ram):
            mrtest.fail('QEMU destination RAM differs from the source')
    print('OK: QEMU 10 loaded mapram-encoded channels, RAM equal')


def refused(checker, out, blocks, pages, msg):
    args = [checker, out] + ['%s=%d' % b for b in blocks] + ['--'] + pages
    res = subprocess.run(args, capture_output=True, text=True, timeout=60)
    print('hostile: rc=%d %s' % (res.returncode, res.stderr.strip()))
    if res.returncode == 0 or msg not in res.stderr:
        mrtest.fail('expected refusal %r, got rc=%d %r'
                    % (msg, res.returncode, res.stderr))


def tampered(workdir, src, name, edit):
    data = bytearray(open(src, 'rb').read())
    data = edit(data)
    path = os.path.join(workdir, name)
    with open(path, 'wb') as f:
        f.write(data)
    return path


def hostile(workdir, checker, out, blocks, pages):
    """QEMU's own channel bytes, altered as a hostile peer would."""
    first = [p for p in pages
             if struct.unpack_from('>B', open(p, 'rb').read(25), 24)[0] == 0]
    src = first[0]

    def magic(d):
        d[0] ^= 0xff
        return d

    def early_eof(d):
        return d[:64 + 1344 + 100]

    def packet_magic(d):
        d[64 + 1344 + 3] ^= 1  # the first packet after the SYNC
        return d

    def offset_past_block(d):
        hdr = 64 + 1344  # first data packet: offset[0] := the block length
        name = bytes(d[hdr + 64:hdr + 320]).rstrip(b'\0').decode()
        used = dict(blocks)[name]
        struct.pack_into('>Q', d, hdr + 320, used)
        return d

    refused(checker, out, blocks, [tampered(workdir, src, 'm', magic)],
            'received packet magic ee223344 expected 11223344')
    refused(checker, out, blocks, [tampered(workdir, src, 'e', early_eof)],
            'unexpected EOF after packet header')
    refused(checker, out, blocks, [tampered(workdir, src, 'p', packet_magic)],
            'received packet magic 11223345, expected 11223344')
    refused(checker, out, blocks,
            [tampered(workdir, src, 'o', offset_past_block)],
            'multifd: offset too long')
    if len(pages) > 1:  # a channel id the receiver has no slot for
        other = [p for p in pages if p != src][0]
        refused(checker, out, blocks, [other],
                'is greater than number of channels 1')
    refused(checker, out, blocks[1:], [src], 'multifd: unknown ram block')


def main():
    checker, resender, channels = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.argv[1:] = ['run']
    return mrtest.main({'run': lambda w: run(w, checker, resender,
                                             channels)})


if __name__ == '__main__':
    sys.exit(main())
