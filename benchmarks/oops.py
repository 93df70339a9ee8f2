"""fivefold.oops parser benchmark: accuracy on syzkaller's report set, speed, streaming memory.

Prints, side by side with a grep-style baseline (what an engineer does today: grep for the
usual headers and take the line as the title):

* crash detection precision/recall, exact title match, type match and corrupted-flag F1 on
  the 443 logs of ``../shared/oops/syzkaller-reports`` (and every miss);
* the time to parse the whole set;
* scanning a crash-free log of ``--size-mb`` MB with ``parse_stream``: MB/s and peak RSS
  (in a child process), against a per-line regex scan in Python and ``grep -E``.

Run: ``OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/oops.py [--size-mb 500]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.oops.conftest import Expected, load_report  # noqa: E402

from fivefold.oops import parse  # noqa: E402
from fivefold.oops.report import table  # noqa: E402
from fivefold.oops.title import normalize_title  # noqa: E402

SHARED = ROOT.parent / "shared" / "oops" / "syzkaller-reports"
GREP_HEADERS = re.compile(
    r"(BUG:|WARNING:|INFO:|Oops|Kernel panic|general protection fault|Unable to handle kernel|"
    r"kernel BUG|Internal error:|UBSAN:|divide error|invalid opcode).*"
)


def grep_baseline(log: bytes) -> list[tuple[str, str]]:
    """(title, type) of the first header line, like `dmesg | grep -m1 -E 'BUG:|WARNING:|...'`."""
    text = log.decode("latin-1")
    match = GREP_HEADERS.search(text)
    if match is None:
        return []
    title = normalize_title(match.group(0))
    return [(title, "UNKNOWN")]


def score(
    expected: list[Expected], got: list[list[tuple[str, str, bool]]]
) -> tuple[dict[str, float], list[str]]:
    tp = fp = fn = titles = types = ctp = cfp = cfn = n = 0
    misses: list[str] = []
    for exp, crashes in zip(expected, got, strict=True):
        first = crashes[0] if crashes else None
        if first and exp.title:
            tp += 1
        elif first:
            fp += 1
            misses.append(f"{exp.name}: false crash {first[0]!r}")
        elif exp.title:
            fn += 1
            misses.append(f"{exp.name}: missed {exp.title!r}")
        if not exp.title:
            continue
        n += 1
        if first and first[0] == exp.title:
            titles += 1
        elif first:
            misses.append(f"{exp.name}: title {first[0]!r} != {exp.title!r}")
        types += bool(first and first[1] == exp.type)
        corrupted = bool(first and first[2])
        ctp += corrupted and exp.corrupted
        cfp += corrupted and not exp.corrupted
        cfn += exp.corrupted and not corrupted
    scores = {
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "title": titles / max(n, 1),
        "type": types / max(n, 1),
        "corrupted F1": 2 * ctp / max(2 * ctp + cfp + cfn, 1),
    }
    return scores, misses


def accuracy() -> None:
    if not SHARED.is_dir():
        print(f"skipping accuracy: {SHARED} is absent")
        return
    expected = [load_report(p) for p in sorted(SHARED.iterdir(), key=lambda p: p.name) if p.is_file()]
    table()
    best = best_cpu = float("inf")
    ours: list[list[tuple[str, str, bool]]] = []
    for _ in range(3):
        started, cpu = time.perf_counter(), time.process_time()
        parsed = [parse(e.log) for e in expected]
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        ours = [[(c.title, c.type, c.corrupted) for c in crashes] for crashes in parsed]
    started = time.perf_counter()
    grep = [[(t, ty, False) for t, ty in grep_baseline(e.log)] for e in expected]
    grep_time = time.perf_counter() - started
    our_scores, misses = score(expected, ours)
    grep_scores, _ = score(expected, grep)
    print(f"syzkaller report set: {len(expected)} logs")
    print(f"{'metric':<14} {'fivefold':>10} {'grep baseline':>14} {'target':>8}")
    targets = {"precision": 0.99, "recall": 0.99, "title": 0.95, "type": 0.95, "corrupted F1": 0.9}
    for key, target in targets.items():
        print(f"{key:<14} {our_scores[key]:>10.3f} {grep_scores[key]:>14.3f} {target:>8.2f}")
    print(f"{'parse wall':<14} {best:>9.3f}s {grep_time:>13.3f}s {'< 1 s':>8}")
    print(f"{'parse CPU':<14} {best_cpu:>9.3f}s {'':>14} {'< 1 s':>8}  (CPU time: the machine may be shared)")
    print(f"misses ({len(misses)}):")
    for miss in misses:
        print(f"  {miss}")


def make_clean_log(path: Path, size_mb: int) -> None:
    rng = random.Random(1)
    messages = [
        "usb 1-1: new high-speed USB device number {n} using xhci_hcd",
        "EXT4-fs (sda1): mounted filesystem with ordered data mode. Opts: (null)",
        'audit: type=1400 audit({n}.123:45): apparmor="STATUS" operation="profile_load" pid={n}',
        "IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready",
        "systemd[1]: Started Journal Service.",
        "e1000e 0000:00:1f.6 eth0: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx",
        "input: Power Button as /devices/LNXSYSTM:00/LNXPWRBN:00/input/input{n}",
        "wlan0: authenticate with 12:34:56:78:9a:bc (try {n}/3)",
    ]
    block = "".join(
        f"[{i / 1000:12.6f}] {rng.choice(messages).format(n=rng.randint(1, 99999))}\n" for i in range(20000)
    ).encode()
    target = size_mb * 1024 * 1024
    with path.open("wb") as handle:
        written = 0
        while written < target:
            handle.write(block)
            written += len(block)


STREAM_CHILD = """
import resource, sys, time
sys.path.insert(0, {src!r})
from fivefold.oops import parse_stream
started = time.perf_counter()
with open({path!r}, 'rb') as f:
    found = sum(1 for _ in parse_stream(f))
elapsed = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
print(found, elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
"""

LINE_CHILD = """
import re, resource, sys, time
pattern = re.compile(
    rb"BUG:|WARNING:|INFO:|Oops|Kernel panic|general protection fault|Unable to handle kernel"
)
started = time.perf_counter()
found = 0
with open({path!r}, 'rb') as f:
    for line in f:
        if pattern.search(line):
            found += 1
elapsed = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
print(found, elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
"""


def _child(code: str) -> tuple[int, float, float, float]:
    """(crashes, wall seconds, peak RSS MB, CPU seconds) of a scan run in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), float(out[1]), int(out[2]) / 1024, float(out[3])


def streaming(size_mb: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clean.log"
        make_clean_log(path, size_mb)
        size = path.stat().st_size / 1e6
        found, elapsed, rss, cpu = _child(STREAM_CHILD.format(src=str(ROOT / "src"), path=str(path)))
        line_found, line_elapsed, line_rss, line_cpu = _child(LINE_CHILD.format(path=str(path)))
        print(f"\ncrash-free log: {size:.0f} MB")
        print(f"{'scanner':<26} {'MB/s wall':>10} {'MB/s CPU':>9} {'peak RSS':>10} {'crashes':>8}")
        ours = f"{size / elapsed:>10.0f} {size / cpu:>9.0f} {rss:>8.0f}MB {found:>8}"
        print(f"{'fivefold parse_stream':<26} {ours}")
        print(
            f"{'python per-line regex':<26} {size / line_elapsed:>10.0f} {size / line_cpu:>9.0f} "
            f"{line_rss:>8.0f}MB {line_found:>8}"
        )
        grep = shutil.which("grep")
        if grep:
            started = time.perf_counter()
            subprocess.run(
                [grep, "-c", "-E", "BUG:|WARNING:|INFO:|Oops|Kernel panic", str(path)],
                capture_output=True,
                check=False,
            )
            print(f"{'grep -E (C, headers only)':<26} {size / (time.perf_counter() - started):>10.0f}")
        print(
            f"ratio fivefold / python per-line (CPU): {line_cpu / cpu:.1f}x; "
            "targets: >= 100 MB/s, < 100 MB RSS"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=500, help="size of the crash-free log to scan")
    args = parser.parse_args()
    accuracy()
    streaming(args.size_mb)


if __name__ == "__main__":
    main()
