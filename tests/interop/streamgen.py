"""Synthetic QEMU migration streams (docs/stream-format.md) for tests.

Builds small, complete files of both RAM formats -- mapped-ram and legacy
page records -- with device sections and a VMDESCRIPTION, and remembers
what each RAM block must extract to.  Used by the bad-input tests (which
corrupt these files) and to make the fuzz corpus.  Standard library only.
"""
import json
import struct

PAGE = 4096
EOS = struct.pack('>Q', 0x10)


def be16(v):
    return struct.pack('>H', v)


def be32(v):
    return struct.pack('>I', v)


def be64(v):
    return struct.pack('>Q', v)


def cstr(s):
    if isinstance(s, str):
        s = s.encode()
    return bytes([len(s)]) + s


def page_bytes(block_no, i):
    """Deterministic, non-zero content for page i of block block_no."""
    return struct.pack('<Q', (i << 8) | block_no | 1) + \
        bytes([(i * 7 + block_no + 1) & 0xff or 1]) * (PAGE - 8)


class Block:
    def __init__(self, name, npages, present):
        self.name = name.encode() if isinstance(name, str) else name
        self.npages = npages
        self.present = sorted(set(present))

    @property
    def used(self):
        return self.npages * PAGE


DEFAULT_BLOCKS = [
    Block('mem', 24, [i for i in range(24) if i % 5]),
    Block('/rom@etc/acpi/tables', 8, [0, 3]),
    Block('pc.rom', 4, []),
]

# One device with fields, an array, and a subsection with its own field.
DEVICE_JSON = {
    'name': 'dev', 'instance_id': 0, 'vmsd_name': 'dev', 'version': 2,
    'fields': [{'name': 'a', 'type': 'uint32', 'size': 4},
               {'name': 'regs', 'array_len': 3, 'type': 'uint64',
                'size': 8}],
    'subsections': [{'vmsd_name': 'dev/extra', 'version': 1,
                     'fields': [{'name': 'b', 'type': 'uint16',
                                 'size': 2}]}],
}
DEVICE_STATE = (be32(0xdeadbeef) + be64(1) + be64(2) + be64(3) +
                b'\x05' + cstr('dev/extra') + be32(1) + be16(7))


class Stream:
    """A stream under construction; offsets are absolute file offsets."""

    def __init__(self, mapped_ram=True, prefix=b'', align=PAGE,
                 blocks=None):
        self.mapped_ram = mapped_ram
        self.align = align
        self.blocks = DEFAULT_BLOCKS if blocks is None else blocks
        self.buf = bytearray(prefix)
        self.offsets = {}       # name -> interesting offsets, for corruption

    def put(self, b):
        self.buf += b

    def header_and_config(self):
        self.offsets['magic'] = len(self.buf)
        self.put(b'QEVM' + be32(3))
        machine = b'pc-q35-10.0'
        self.put(b'\x07' + be32(len(machine)) + machine)
        if self.mapped_ram:
            self.put(b'\x05' + cstr('configuration/capabilities') + be32(1) +
                     be32(1) + cstr('mapped-ram'))

    def mapped_ram_block(self, no, blk):
        self.offsets['entry:' + blk.name.decode(errors='replace')] = \
            len(self.buf)
        self.put(cstr(blk.name) + be64(blk.used))
        hdr = len(self.buf)
        bitmap_offset = hdr + 28
        bitmap_size = (blk.npages + 63) // 64 * 8
        end = bitmap_offset + bitmap_size
        pages_offset = (end + self.align - 1) // self.align * self.align
        self.offsets['hdr:' + blk.name.decode(errors='replace')] = hdr
        self.put(be32(1) + be64(PAGE) + be64(bitmap_offset) +
                 be64(pages_offset))
        bitmap = bytearray(bitmap_size)
        for i in blk.present:
            bitmap[i // 8] |= 1 << (i % 8)
        self.put(bytes(bitmap))
        self.put(bytes(pages_offset - len(self.buf)))
        for i in range(blk.npages):
            self.put(page_bytes(no, i) if i in blk.present else bytes(PAGE))

    def legacy_pages(self):
        """Page records, with overwrites to exercise last-write-wins."""
        for no, blk in enumerate(self.blocks):
            first = True
            for i in range(blk.npages):
                cont = 0 if first else 0x20
                name = cstr(blk.name) if first else b''
                if i in blk.present:
                    if i == blk.present[0]:
                        # An older copy first; the later record wins.
                        self.put(be64(i * PAGE | 0x08 | cont) + name +
                                 bytes([0xee]) * PAGE)
                        cont, name = 0x20, b''
                    self.put(be64(i * PAGE | 0x08 | cont) + name +
                             page_bytes(no, i))
                else:
                    if i == 1:
                        # Data, then a zero record: the page ends up zero.
                        self.put(be64(i * PAGE | 0x08 | cont) + name +
                                 bytes([0xaa]) * PAGE)
                        cont, name = 0x20, b''
                    self.put(be64(i * PAGE | 0x02 | cont) + name + b'\x00')
                first = False

    def ram_start(self):
        self.offsets['ram_start'] = len(self.buf)
        self.put(b'\x01' + be32(1) + cstr('ram') + be32(0) + be32(4))
        total = sum(b.used for b in self.blocks)
        self.put(be64(total | 0x4))
        for no, blk in enumerate(self.blocks):
            if self.mapped_ram:
                self.mapped_ram_block(no, blk)
            else:
                self.offsets['entry:' + blk.name.decode(errors='replace')] = \
                    len(self.buf)
                self.put(cstr(blk.name) + be64(blk.used))
        self.put(EOS + b'\x7e' + be32(1))

    def build(self, vmdesc=None):
        self.header_and_config()
        self.ram_start()
        self.offsets['part'] = len(self.buf)
        self.put(b'\x02' + be32(1))
        if not self.mapped_ram:
            self.legacy_pages()
        self.put(EOS + b'\x7e' + be32(1))
        self.put(b'\x08' + be16(11) + be16(0))
        self.put(b'\x03' + be32(1) + EOS + b'\x7e' + be32(1))
        self.offsets['device'] = len(self.buf)
        self.put(b'\x04' + be32(2) + cstr('dev') + be32(0) + be32(2))
        self.put(DEVICE_STATE + b'\x7e' + be32(2))
        self.offsets['eof'] = len(self.buf)
        self.put(b'\x00')
        if vmdesc is None:
            vmdesc = json.dumps({'page_size': PAGE, 'devices': [DEVICE_JSON]},
                                separators=(',', ':')).encode()
        self.offsets['vmdesc'] = len(self.buf)
        self.put(b'\x06' + be32(len(vmdesc)) + vmdesc)
        return bytes(self.buf)

    def expected_images(self):
        """name -> bytes each block must extract to."""
        out = {}
        for no, blk in enumerate(self.blocks):
            img = bytearray(blk.used)
            for i in blk.present:
                img[i * PAGE:(i + 1) * PAGE] = page_bytes(no, i)
            out[blk.name.decode(errors='replace')] = bytes(img)
        return out


# ---- floods: many small records, for the bounded-memory tests ----------

def empty_part():
    """A RAM PART section with nothing in it (section id 1)."""
    return b'\x02' + be32(1) + EOS + b'\x7e' + be32(1)


def command(cmd=11):
    """A COMMAND record without data (SWITCHOVER_START by default)."""
    return b'\x08' + be16(cmd) + be16(0)


def device_section(section_id, name, state=b'', version=1):
    return (b'\x04' + be32(section_id) + cstr(name) + be32(0) +
            be32(version) + state + b'\x7e' + be32(section_id))


def legacy_zero_records(block, npages, count, stride):
    """count ZERO records in `block`, page i * stride % npages, the first
    one naming the block and the rest CONTINUE."""
    out = bytearray(be64(0x02) + cstr(block) + b'\x00')
    rec = struct.Struct('>QB')
    buf = bytearray(rec.size * (count - 1))
    for i in range(1, count):
        rec.pack_into(buf, (i - 1) * rec.size,
                      (i * stride % npages) * PAGE | 0x22, 0)
    return bytes(out + buf)


class Flood(Stream):
    """header, configuration, START ram, then `middle` (inside a PART
    section of ram when in_part), END ram, `devices` and the VMDESCRIPTION."""

    def build_flood(self, middle=b'', in_part=False, devices=b'',
                    vmdesc=None):
        self.header_and_config()
        self.ram_start()
        if in_part:
            self.put(b'\x02' + be32(1) + middle + EOS + b'\x7e' + be32(1))
        else:
            self.put(middle)
        self.put(b'\x03' + be32(1) + EOS + b'\x7e' + be32(1))
        self.put(devices)
        self.put(b'\x00')
        if vmdesc is None:
            vmdesc = json.dumps({'page_size': PAGE, 'devices': []}).encode()
        self.put(b'\x06' + be32(len(vmdesc)) + vmdesc)
        return bytes(self.buf)
