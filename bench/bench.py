#!/usr/bin/env python3
"""The save/restore benchmark's command line (bench/README.md): run the
matrix of one build, an A/B comparison of two builds, or rebuild a report
from a results JSON.  measure.py measures, report.py reports.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402
import net  # noqa: E402
import report  # noqa: E402

USAGE = ('usage: bench.py BUILD_DIR | --net BUILD_DIR | '
         '--ab BUILD_A BUILD_B | --report RESULTS.json')


def rebuild(path):
    cfg = measure.config(os.environ.get('BUILD', 'build'))
    with open(path) as f:
        data = json.load(f)
    for k, v in data['cfg'].items():
        setattr(cfg, k, v)
    report.publish(cfg, data, path)


def main(argv):
    if len(argv) == 2 and argv[0] == '--report':
        rebuild(argv[1])
    elif len(argv) == 3 and argv[0] == '--ab':
        cfg = measure.config(argv[2], measure.AB_DEFAULTS, 'ab-results.json')
        report.publish(cfg, measure.run_ab(cfg, argv[1], argv[2]), cfg.json)
    elif len(argv) == 2 and argv[0] == '--net':
        net.run(measure.config(argv[1]))
    elif len(argv) == 1 and not argv[0].startswith('-'):
        cfg = measure.config(argv[0])
        report.publish(cfg, measure.run_matrix(cfg), cfg.json)
        if os.environ.get('NET', '1') == '1':
            net.run(cfg)
    else:
        print(USAGE, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
