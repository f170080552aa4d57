#!/usr/bin/env python3
"""Embed a flat binary as a C array: bin2c.py INPUT OUTPUT SYMBOL."""
import sys


def main():
    src, dst, sym = sys.argv[1], sys.argv[2], sys.argv[3]
    data = open(src, 'rb').read()
    with open(dst, 'w') as out:
        out.write('/* Generated from %s by bin2c.py; do not edit. */\n'
                  % src.rsplit('/', 1)[-1])
        out.write('#include <stddef.h>\n')
        out.write('const unsigned char %s[] = {\n' % sym)
        for i in range(0, len(data), 12):
            out.write('    ' + ', '.join('0x%02x' % b for b in data[i:i + 12])
                      + ',\n')
        out.write('};\n')
        out.write('const size_t %s_size = %d;\n' % (sym, len(data)))


if __name__ == '__main__':
    main()
