#!/usr/bin/env python3
"""One bad-input case per run: build a broken save file, run
`mapram inspect` (and `mapram extract`) on it, and check that the tool
fails cleanly: exit status 1, exactly one line on stderr, naming what was
expected, what was found and the offset -- never a crash.

usage: bad_input.py CASE     (cases: see CASES below; 'list' prints them)
"""
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import streamgen  # noqa: E402
from streamgen import PAGE, Block, Stream, be32, be64, cstr  # noqa: E402


def good(mapped_ram=True, **kw):
    s = Stream(mapped_ram=mapped_ram, **kw)
    return s.build(), s


def truncated(at):
    def make():
        data, s = good()
        points = {
            'header': s.offsets['magic'] + 6,
            'config': s.offsets['magic'] + 20,
            'block_header': s.offsets['hdr:mem'] + 10,
            'pages': s.offsets['entry:pc.rom'] - 100,
            'before_eof': s.offsets['eof'],
            'device': s.offsets['device'] + 12,
        }
        return data[:points[at]]
    return make


def truncated_legacy():
    data, s = good(mapped_ram=False)
    return data[:s.offsets['part'] + 5000]


def wrong_magic():
    data, _ = good()
    return b'QEVN' + data[4:]


def wrong_version():
    data, _ = good()
    return data[:4] + be32(4) + data[8:]


def patch_hdr(data, s, name, field, value):
    """Overwrite one be64 field of a block's 28-byte mapped-ram header."""
    pos = s.offsets['hdr:' + name] + {'page_size': 4, 'bitmap_offset': 12,
                                      'pages_offset': 20}[field]
    return data[:pos] + be64(value) + data[pos + 8:]


def pages_past_eof():
    data, s = good()
    return patch_hdr(data, s, 'pc.rom', 'pages_offset', (len(data) + 0x10000) & ~0xfff)


def bitmap_past_eof():
    data, s = good()
    return patch_hdr(data, s, 'mem', 'bitmap_offset', len(data) - 3)


def bitmap_larger_than_file():
    # A block of 2^44 bytes: its bitmap alone (512 MiB) is larger than the
    # whole file.
    s = Stream(blocks=[Block('mem', 1, [0])])
    data = bytearray(s.build())
    pos = s.offsets['entry:mem'] + 4
    data[pos:pos + 8] = be64(1 << 44)
    total = s.offsets['ram_start'] + 1 + 4 + 4 + 4 + 4
    data[total:total + 8] = be64((1 << 44) | 4)
    return bytes(data)


def overlapping_pages():
    data, s = good()
    first = struct.unpack('>Q', data[s.offsets['hdr:mem'] + 20:
                                     s.offsets['hdr:mem'] + 28])[0]
    return patch_hdr(data, s, '/rom@etc/acpi/tables', 'pages_offset', first)


def huge_block():
    data, s = good(mapped_ram=False)
    pos = s.offsets['entry:mem'] + 4
    return data[:pos] + be64(1 << 60) + data[pos + 8:]


def nul_in_name():
    blocks = [Block(b'pc\x00bios', 2, [0])]
    return Stream(blocks=blocks).build()


def vmdesc_not_json():
    return Stream().build(vmdesc=b'{"devices": [this is not json')


def vmdesc_not_json_legacy():
    return Stream(mapped_ram=False).build(vmdesc=b'{not json at all}')


def bad_footer():
    data, s = good()
    pos = s.offsets['eof'] - 5
    return data[:pos] + b'\x7f' + data[pos + 1:]


def unknown_section_type():
    data, s = good()
    pos = s.offsets['device']
    return data[:pos] + b'\x09' + data[pos + 1:]


def legacy_unknown_block():
    s = Stream(mapped_ram=False)
    data = s.build()
    # The first page record names 'mem' right after the PART header.
    pos = s.offsets['part'] + 5 + 8
    assert data[pos:pos + 4] == cstr('mem')
    return data[:pos] + cstr('meX') + data[pos + 4:]


def newline_in_name():
    # The error quotes the name; the report must stay on one line.
    s = Stream(blocks=[Block(b'a\nb', 1, [0])])
    data = s.build()
    return patch_hdr(data, s, 'a\nb', 'page_size', 512)


def mapped_ram_unaligned_pages():
    data, s = good()
    return patch_hdr(data, s, 'pc.rom', 'pages_offset', 0x1234)


# case -> (builder, substrings the one stderr line must contain)
CASES = {
    'truncated-header': (truncated('header'), ['truncated', 'offset 0x4']),
    'truncated-config': (truncated('config'), ['truncated', 'machine type']),
    'truncated-block-header': (truncated('block_header'),
                               ['mapped-ram migration header',
                                'expected 28', 'offset 0x']),
    'truncated-pages': (truncated('pages'), ['truncated', 'bytes of pages for',
                                            'offset 0x']),
    'truncated-before-eof': (truncated('before_eof'),
                             ["cannot walk past device section 'dev'",
                              'expected a VMDESCRIPTION record',
                              'found none']),
    'truncated-device': (truncated('device'),
                         ['truncated', 'instance id',
                          'offset 0x']),
    'truncated-legacy': (truncated_legacy, ['truncated', 'offset 0x']),
    'wrong-magic': (wrong_magic, ['Not a migration stream', 'expected magic',
                                  'found 0x5145564e']),
    'wrong-version': (wrong_version, ['Unsupported migration stream version',
                                      'expected 3 at offset 0x4, found 4']),
    'pages-past-eof': (pages_past_eof, ['expected 0x4000 bytes of pages for '
                                        "'pc.rom'", 'found the end of the '
                                        'file']),
    'bitmap-past-eof': (bitmap_past_eof, ['Error reading dirty bitmap',
                                          "expected 8 bitmap bytes for 'mem'"]),
    'bitmap-larger-than-file': (bitmap_larger_than_file,
                                ['Error reading dirty bitmap',
                                 'expected 536870912 bitmap bytes']),
    'overlapping-pages': (overlapping_pages,
                          ['expected page regions that do not overlap',
                           "overlapping the pages of 'mem'"]),
    'huge-block': (huge_block, ['expected a RAM block length',
                                'found 0x1000000000000000']),
    'nul-in-name': (nul_in_name, ['expected RAM block name at offset',
                                  'found a NUL byte']),
    'vmdesc-not-json': (vmdesc_not_json, ['expected VMDESCRIPTION JSON at '
                                          'offset', 'found invalid JSON']),
    'vmdesc-not-json-legacy': (vmdesc_not_json_legacy,
                               ['found invalid JSON']),
    'bad-footer': (bad_footer, ["Missing section footer for dev",
                                'found 0x7f']),
    'unknown-section-type': (unknown_section_type,
                             ['expected a section type', 'found 0x09']),
    'legacy-unknown-block': (legacy_unknown_block, ["Can't find block meX",
                                                    'offset 0x', "found 'meX'"]),
    'newline-in-name': (newline_in_name, ["expected page size 4096",
                                          "found 512 for 'a?b'"]),
    'unaligned-pages': (mapped_ram_unaligned_pages,
                        ['Error reading ramblock pc.rom pages, region has bad '
                         'alignment', 'found 0x1234']),
}


# Cases whose damage lies after the RAM END section.
RAM_INTACT = {'truncated-before-eof', 'truncated-device', 'vmdesc-not-json',
              'vmdesc-not-json-legacy', 'bad-footer', 'unknown-section-type'}


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


# An unsupported version is not damage: exit 63 (docs/inspect.md).
UNSUPPORTED = {'wrong-version'}


def check_one_line(name, proc, must):
    lines = proc.stderr.splitlines()
    want = 63 if name.split()[0] in UNSUPPORTED else 1
    if proc.returncode != want:
        sys.exit(f'{name}: expected exit status {want}, got '
                 f'{proc.returncode}; stderr: {proc.stderr!r}')
    if len(lines) != 1:
        sys.exit(f'{name}: expected one line on stderr, got {lines!r}')
    line = lines[0]
    if not line.startswith('mapram: '):
        sys.exit(f'{name}: stderr line does not start with "mapram: ": '
                 f'{line!r}')
    for m in must:
        if m not in line:
            sys.exit(f'{name}: expected {m!r} in {line!r}')
    return line


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    case = sys.argv[1]
    if case == 'list':
        print('\n'.join(CASES))
        return
    build, must = CASES[case]
    mapram = os.path.join(os.environ['MAPRAM_BUILD_DIR'], 'src', 'cli',
                          'mapram')
    with tempfile.TemporaryDirectory(
            dir=os.environ['MAPRAM_BUILD_DIR']) as tmp:
        path = os.path.join(tmp, case + '.img')
        with open(path, 'wb') as f:
            f.write(build())
        line = check_one_line(case, run([mapram, 'inspect', path]), must)
        check_one_line(case + ' (--json)',
                       run([mapram, 'inspect', '--json', path]), must)
        out = os.path.join(tmp, 'out')
        os.mkdir(out)
        p = run([mapram, 'extract', path, '--all', '-d', out])
        if case in RAM_INTACT:
            # Broken after the RAM END section: extraction still works,
            # with a one-line note.
            lines = p.stderr.splitlines()
            if p.returncode != 0 or len(lines) != 1 or 'note: ' not in \
                    lines[0] or not all(m in lines[0] for m in must):
                sys.exit(f'{case}: extract: {p.returncode} {p.stderr!r}')
        else:
            check_one_line(case + ' (extract)', p, must)
            if os.listdir(out):
                sys.exit(f'{case}: extract left files behind: '
                         f'{os.listdir(out)}')
        print(f'{case}: {line}')


if __name__ == '__main__':
    main()
