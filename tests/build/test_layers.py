#!/usr/bin/env python3
"""The layers are a build rule: show that an upward #include does not
compile and the allowed ones do, that no layer's archive calls a layer
above it, and that no include cycle or relative (../) include exists among
the files of src/lib.  The layer table is read back from build/layers/."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("MAPRAM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ["MAPRAM_BUILD_DIR"]
CC = sys.argv[1:] or ["cc"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def compiles(layer, header):
    """Does `#include "header"` reach the tree through the include path of
    `layer`?  An installed copy (/usr/include/mapram/... from the package)
    does not count: the dependency list says where the header came from."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        deps = os.path.join(tmp, "probe.d")
        with open(src, "w") as f:
            f.write('#include "%s"\nint probe_layer_rule(void);\n'
                    'int probe_layer_rule(void) { return 0; }\n' % header)
        r = subprocess.run(CC + ["-D_GNU_SOURCE", "-fsyntax-only", "-MD", "-MF", deps,
                                 "-I" + os.path.join(BUILD, "layers", layer), src],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return False, r.stderr
        with open(deps) as f:
            used = f.read().replace("\\\n", " ").split()
        farm = os.path.join(BUILD, "layers", layer, header)
        return farm in used, "resolved outside the tree: " + " ".join(used)


class LayerRule(unittest.TestCase):
    def assert_refused(self, layer, header):
        ok, err = compiles(layer, header)
        self.assertFalse(ok, "%s may not include %s, yet it compiled" % (layer, header))
        if "resolved outside the tree" not in err:
            self.assertIn("No such file or directory", err)

    def assert_allowed(self, layer, header):
        ok, err = compiles(layer, header)
        self.assertTrue(ok, "%s should see %s:\n%s" % (layer, header, err))

    def test_upward_includes_fail(self):
        self.assert_refused("util", "format/stream_defs.h")
        self.assert_refused("format", "multifd/multifd.h")
        self.assert_refused("format", "io/engine.h")
        self.assert_refused("io", "format/stream_defs.h")
        self.assert_refused("qmp", "fdset/fdset_internal.h")
        self.assert_refused("multifd", "mapram/migration.h")
        self.assert_refused("multifd", "mapram/qmp.h")
        self.assert_refused("vm", "multifd/multifd.h")
        self.assert_refused("vm", "migration/migration_int.h")

    def test_downward_includes_compile(self):
        self.assert_allowed("format", "util/bitmap.h")
        self.assert_allowed("multifd", "io/engine.h")
        self.assert_allowed("multifd", "format/mapped_ram.h")
        self.assert_allowed("migration", "multifd/multifd.h")
        self.assert_allowed("fdset", "mapram/qmp.h")
        self.assert_allowed("vm", "mapram/migration.h")


def layer_table():
    """{layer: the layers it sees whole}, from the symlinks in build/layers."""
    root = os.path.join(BUILD, "layers")
    table = {}
    for layer in os.listdir(root):
        archive = os.path.join(BUILD, "libmr_%s.a" % layer)
        if os.path.exists(archive):
            d = os.path.join(root, layer)
            table[layer] = {n for n in os.listdir(d) if n != "mapram"}
    return table


def symbols(archive, flag):
    out = subprocess.run(["nm", "-g", flag, archive], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines()
            if line and not line.endswith(":") and len(line.split()) >= 2}


class LinkRule(unittest.TestCase):
    def test_no_layer_calls_upward(self):
        table = layer_table()
        self.assertIn("migration", table)
        defined = {l: symbols(os.path.join(BUILD, "libmr_%s.a" % l), "--defined-only")
                   for l in table}
        for layer, seen in table.items():
            undefined = symbols(os.path.join(BUILD, "libmr_%s.a" % layer), "-u")
            for other in table:
                if other in seen:
                    continue
                bad = undefined & defined[other]
                self.assertFalse(bad, "%s calls %s, a layer it may not use: %s"
                                 % (layer, other, sorted(bad)[:5]))


def lib_files():
    root = os.path.join(SRC, "src", "lib")
    for d, _, names in os.walk(root):
        for n in names:
            if n.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(d, n), root)


class IncludeGraph(unittest.TestCase):
    def graph(self):
        root = os.path.join(SRC, "src", "lib")
        g = {}
        for rel in lib_files():
            with open(os.path.join(root, rel)) as f:
                g[rel] = INCLUDE.findall(f.read())
        return g

    def test_no_relative_includes(self):
        for rel, incs in self.graph().items():
            for h in incs:
                self.assertNotIn("..", h, "%s includes %s" % (rel, h))

    def test_no_include_cycle(self):
        g = self.graph()
        state = {}

        def visit(node, path):
            state[node] = "open"
            for h in g.get(node, []):
                if h not in g:
                    continue        # public header or system header
                if state.get(h) == "open":
                    self.fail("include cycle: " + " -> ".join(path + [h]))
                if h not in state:
                    visit(h, path + [h])
            state[node] = "done"

        for n in sorted(g):
            if n not in state:
                visit(n, [n])


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
