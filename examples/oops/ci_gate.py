"""Fail a CI job when a kernel serial log holds a fatal crash.

Usage: python examples/oops/ci_gate.py serial-*.log
"""

from __future__ import annotations

import sys

from fivefold.oops import parse_stream


def main(paths: list[str]) -> int:
    fatal = 0
    for path in paths:
        with open(path, "rb") as log:
            for crash in parse_stream(log):
                where = f"{path}:{crash.start}"
                flags = "fatal" if crash.fatal else "warning"
                print(f"{where}: [{crash.type}] {crash.title} ({flags})")
                fatal += crash.fatal
    return 1 if fatal else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
