#!/usr/bin/env python3
"""`mapram seal`, the file commands' exit statuses and their --json
(docs/seal.md, docs/inspect.md) on synthetic streams: bare, behind a
libvirt header, legacy; a flipped page byte after sealing; an unfinished
trailer; `extract -o -`; inspect's Problems on a failure; the
read_image example.  Usage: test_seal.py CASE READ_IMAGE FAULT(0|1)."""
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'lib'))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'interop'))
from mrtest import fail, mapram_bin  # noqa: E402
from streamgen import PAGE, Stream  # noqa: E402


def mapram(*args, env=None, stdout=None):
    cmd = [mapram_bin()] + [str(a) for a in args]
    res = subprocess.run(cmd, stdout=stdout or subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=30,
                         env=dict(os.environ, **(env or {})))
    out = res.stdout.decode(errors='replace') if res.stdout else ''
    res.out, res.err = out, res.stderr.decode(errors='replace')
    print('$ %s\n-> %d\n%s%s' % (' '.join(cmd), res.returncode, out[:2000],
                                res.err))
    return res


def expect(res, rc, text=None, where='err'):
    if res.returncode != rc:
        fail('expected exit %d, got %d: %r' % (rc, res.returncode, res.err))
    if text and text not in getattr(res, where):
        fail('expected %r in std%s: %r' % (text, where, getattr(res, where)))


def write(work, name, data):
    path = os.path.join(work, name)
    with open(path, 'wb') as f:
        f.write(data)
    return path


def libvirt_header(magic, stream_at):
    head = magic + struct.pack('<IIIII', 2, stream_at - 92, 1, 0, 0)
    return head + bytes(stream_at - len(head))


def flip(path, off):
    with open(path, 'r+b') as f:
        f.seek(off)
        b = f.read(1)[0]
        f.seek(off)
        f.write(bytes([b ^ 0x80]))


def first_mem_page(stream):
    """File offset of page 1 of 'mem' (present in streamgen's blocks)."""
    hdr = stream.offsets['hdr:mem']
    pages_offset = struct.unpack('>Q', stream.buf[hdr + 20:hdr + 28])[0]
    return pages_offset + PAGE


def case_bare(work, tools):
    s = Stream()
    path = write(work, 'bare.img', s.build())
    expect(mapram('verify', path), 0, 'data checksums are absent', 'out')
    size = os.path.getsize(path)
    expect(mapram('seal', path), 0, 'sealed: 3 RAM blocks', 'out')
    if os.path.getsize(path) <= size:
        fail('seal did not append a trailer')
    expect(mapram('seal', path), 4, 'nothing to do: already sealed')
    expect(mapram('verify', path), 0, 'extents match their CRC32C', 'out')
    rep = json.loads(mapram('verify', '--json', path).out)
    if rep['status'] != 'ok' or not rep['data_checked'] or \
            not rep['checksums']:
        fail('verify --json after seal: %r' % rep)
    res = mapram('inspect', path)
    expect(res, 0, 'Problems: none', 'out')
    res = subprocess.run([tools['read_image'], path], capture_output=True,
                         text=True, timeout=30)
    print(res.stdout, res.stderr)
    if res.returncode or 'verify      OK' not in res.stdout:
        fail('read_image on a sealed file: %r' % res.stdout)
    flip(path, first_mem_page(s) + 100)
    expect(mapram('verify', path), 1, 'checksum mismatch in RAM block mem '
           'extent 0')
    res = mapram('verify', '--json', path)
    rep = json.loads(res.out)
    expect(res, 1)
    if rep['status'] != 'corrupt' or rep['exit'] != 1 or \
            'checksum mismatch' not in rep['error']:
        fail('verify --json of a flipped byte: %r' % rep)
    if subprocess.run([tools['read_image'], path],
                      capture_output=True).returncode != 1:
        fail('read_image accepts a flipped byte')


def case_libvirt(work, tools):
    s = Stream(prefix=libvirt_header(b'LibvirtQemudPart', 0x2000))
    data = s.build()
    path = write(work, 'part.img', data)
    expect(mapram('seal', path), 1, 'incomplete image')
    if open(path, 'rb').read() != data:
        fail('seal changed a Part image')
    path = write(work, 'save.img', b'LibvirtQemudSave' + data[16:])
    expect(mapram('seal', path), 0, 'sealed:', 'out')
    expect(mapram('verify', path), 0, 'extents match', 'out')
    res = mapram('inspect', '--json', path)
    if json.loads(res.out)['checksums'] is None:
        fail('inspect does not see the trailer')


def case_refusals(work, tools):
    path = write(work, 'legacy.img', Stream(mapped_ram=False).build())
    expect(mapram('seal', path), 63, 'seal needs a mapped-ram file')
    expect(mapram('extract', path, '--block', 'mem', '-o', '-',
                  stdout=subprocess.DEVNULL), 63, 'legacy stream')
    expect(mapram('seal', os.path.join(work, 'missing.img')), 3)
    expect(mapram('seal'), 2)
    cut = write(work, 'cut.img', Stream().build()[:-40])
    res = mapram('inspect', cut)
    expect(res, 1)
    if 'Problems: none' in res.out or 'reading stopped: ' not in res.out:
        fail('inspect of a cut file: Problems says %r' %
             res.out[res.out.find('Problems'):])
    expect(mapram('seal', cut), 1)


def case_unfinished(work, tools):
    """Trailer bytes with no footer: an interrupted seal, read as none."""
    data = Stream().build()
    path = write(work, 'unfinished.img', data + b'MRCKSUM1' + bytes(50))
    expect(mapram('inspect', path), 0, 'Problems: none', 'out')
    expect(mapram('verify', path), 0, 'data checksums are absent', 'out')
    expect(mapram('seal', path), 0, 'interrupted seal', 'out')
    expect(mapram('verify', path), 0, 'extents match', 'out')
    # Other bytes after the stream are not sealed over.
    path = write(work, 'junk.img', data + b'JUNK' * 20)
    expect(mapram('seal', path), 1)


def case_fault(work, tools):
    """The Nth pwrite fails in the tool (fault-injection builds)."""
    if not tools['fault']:
        print('SKIP: needs -Dfault_injection=true')
        return 77
    data = Stream().build()
    for n in (1, 2):
        path = write(work, 'fault%d.img' % n, data)
        res = mapram('seal', path, env={'MAPRAM_FAULT': 'pwrite:%d:eio' % n})
        expect(res, 3, 'seal: writing the')
        expect(mapram('verify', path), 0, 'data checksums are absent', 'out')
        expect(mapram('seal', path), 0, 'sealed:', 'out')
        expect(mapram('verify', path), 0, 'extents match', 'out')
    return 0


def case_extract_stdout(work, tools):
    s = Stream()
    path = write(work, 'x.img', s.build())
    out = os.path.join(work, 'mem.raw')
    with open(out, 'wb') as f:
        expect(mapram('extract', path, '--block', 'mem', '-o', '-', stdout=f),
               0, '-: mem')
    if open(out, 'rb').read() != s.expected_images()['mem']:
        fail('extract -o - differs from the block')
    pipe = subprocess.run('%s extract %s --block mem -o - | cat' %
                          (mapram_bin(), path), shell=True,
                          capture_output=True, timeout=30)
    if pipe.stdout != s.expected_images()['mem']:
        fail('extract -o - through a pipe differs')
    res = mapram('extract', '--json', path, '--all', '-d', work)
    rep = json.loads(res.out)
    if res.returncode or rep['status'] != 'ok' or \
            [b['name'] for b in rep['blocks']] != \
            ['mem', '/rom@etc/acpi/tables', 'pc.rom']:
        fail('extract --json: %r' % rep)
    expect(mapram('extract', '--json', path, '--block', 'mem', '-o', '-'), 2)
    expect(mapram('extract', path, '--block', 'nope', '-o', out), 2)


CASES = {'bare': case_bare, 'libvirt': case_libvirt,
         'refusals': case_refusals, 'unfinished': case_unfinished,
         'fault': case_fault, 'extract-stdout': case_extract_stdout}


if __name__ == '__main__':
    if len(sys.argv) != 4 or sys.argv[1] not in CASES:
        sys.exit('usage: test_seal.py {%s} READ_IMAGE FAULT'
                 % ','.join(CASES))
    tools = {'read_image': sys.argv[2], 'fault': sys.argv[3] == '1'}
    with tempfile.TemporaryDirectory(prefix='mapram-seal-') as work:
        sys.exit(CASES[sys.argv[1]](work, tools) or 0)
