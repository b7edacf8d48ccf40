"""`python -m dlrun.landscape FOLDER... [--out DIR]`: overlay the optimizer paths of landscape runs.

Finds every path.json under the folders (single runs or sweeps; several sweeps, e.g. one per learning
rate, can be combined) and draws one landscape_<surface>.png per surface into --out (default: the first folder).
"""

from __future__ import annotations

import argparse
import sys

from dlrun.errors import DlrunError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlrun.landscape", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="run or sweep folders of task=landscape")
    parser.add_argument("--out", help="where to write landscape_<surface>.png (default: the first folder)")
    args = parser.parse_args(argv)
    from dlrun.landscape.task import overlay

    try:
        written = overlay(*args.folders, out_dir=args.out)
    except DlrunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not written:
        print(f"error: no path.json (a task=landscape run) under {' '.join(args.folders)}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
