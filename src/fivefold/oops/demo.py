"""`fivefold demo` for oops: analyze the shipped logs, one of them symbolized against a shipped ELF."""

from __future__ import annotations

from pathlib import Path

from fivefold._common.files import write_text_atomic
from fivefold._common.jsonout import dumps

DATA = Path(__file__).parent / "data"
SAMPLES = DATA / "samples"
ELF_DIR = DATA / "elf"


def demo(out_dir: Path) -> dict[str, str]:
    from fivefold.oops.api import analyze
    from fivefold.oops.buckets import bucketize, render_buckets
    from fivefold.oops.render import LogResult, render_markdown, render_text, to_document

    outputs: dict[str, str] = {}
    results = []
    for log in sorted(SAMPLES.glob("*.log")):
        crashes = analyze(log.read_bytes(), name=log.name)
        result = LogResult(log.name, crashes, size=log.stat().st_size)
        results.append(result)
        write_text_atomic(out_dir / f"{log.stem}.txt", render_text([result]))
        titles = "; ".join(c.title for c in crashes) or "no crash found"
        outputs[log.name] = f"{titles} -> {out_dir / (log.stem + '.txt')}"
    vmlinux, log = ELF_DIR / "vmlinux-x86_64", ELF_DIR / "demo-x86.log"
    if vmlinux.is_file() and log.is_file():
        from fivefold.oops.api import symbolize

        crashes = analyze(log.read_bytes(), name=log.name)
        result = LogResult(log.name, crashes, size=log.stat().st_size)
        if crashes:
            result.symbolizer = symbolize(crashes, vmlinux, ELF_DIR)
        results.append(result)
        write_text_atomic(out_dir / "symbolized.md", render_markdown([result]))
        blamed = crashes[0].blamed if crashes else None
        where = blamed.source[-1] if blamed is not None and blamed.source else None
        outputs["symbolized"] = (
            f"{crashes[0].title if crashes else 'no crash'} at {where.file}:{where.line} "
            f"({result.symbolizer}) -> {out_dir / 'symbolized.md'}"
            if where
            else "no source line"
        )
    write_text_atomic(out_dir / "report.json", dumps(to_document(results)) + "\n")
    outputs["json"] = str(out_dir / "report.json")
    entries = [(r.name, 0.0, c) for r in results for c in r.crashes]
    buckets = bucketize(entries)
    write_text_atomic(out_dir / "buckets.txt", render_buckets(buckets))
    outputs["buckets"] = f"{len(buckets)} buckets from {len(entries)} crashes -> {out_dir / 'buckets.txt'}"
    return outputs
