"""No input makes parse raise: random bytes, and real logs mutated at random."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fivefold.oops import parse

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "fivefold" / "oops" / "data" / "samples"
LOGS = [p.read_bytes() for p in sorted(SAMPLES.glob("*.log"))]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    for crash in parse(data):
        assert 0 <= crash.start <= crash.end <= len(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(LOGS),
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 40), st.binary(max_size=30)), max_size=8),
)
def test_mutated_logs_never_raise(log: bytes, edits: list[tuple[float, int, bytes]]) -> None:
    data = bytearray(log)
    for where, cut, insert in edits:
        pos = int(where * len(data))
        data[pos : pos + cut] = insert
    for crash in parse(bytes(data)):
        assert crash.title
        assert crash.type
        assert 0 <= crash.start <= crash.end <= len(data)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("BUG: WARNING INFO: Call Trace:\n[]<>+0x/ ?#")), max_size=600))
def test_header_soup_never_raises(text: str) -> None:
    parse(text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from([*LOGS, b"[ 1.0] plain line\n" * 50, b"\xff\x00junk\n" * 20]),
             min_size=1, max_size=4),
    st.sampled_from([512, 4096, 1 << 16]),
)
def test_stream_agrees_with_parse(parts: list[bytes], chunk: int) -> None:
    import io

    from fivefold.oops import parse_stream

    log = b"".join(parts)
    whole = [(c.title, c.start) for c in parse(log)]
    streamed = [(c.title, c.start) for c in parse_stream(io.BytesIO(log), chunk_size=chunk)]
    assert streamed == whole


def test_crash_storms_and_giant_lines_stay_linear() -> None:
    """A WARN storm or a megabyte "line" of junk must not make parsing quadratic."""
    import time

    warn = (
        b"[ 1.0] ------------[ cut here ]------------\n"
        b"[ 1.0] WARNING: CPU: 0 PID: 1 at drivers/foo.c:10 foo_probe+0x10/0x20\n"
        b"[ 1.0] Call Trace:\n[ 1.0]  foo_probe+0x10/0x20\n[ 1.0]  bar_init+0x1/0x2\n"
    )
    started = time.process_time()
    storm = parse(warn * 200)
    giant = parse(b"BUG: " * 30_000)
    elapsed = time.process_time() - started
    assert len(storm) == 200 and {c.title for c in storm} == {"WARNING in foo_probe"}
    assert giant and all(0 <= c.start <= c.end <= 150_000 for c in giant)
    assert elapsed < 10, elapsed
