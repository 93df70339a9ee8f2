"""Faults on the demo site: Retry-After honoured without holding slots; cut-short, reset and
slow bodies never leave a wrong file behind."""

from __future__ import annotations

from pathlib import Path

from fivefold.crawl.config import Options

from .conftest import check_complete, run_crawl, sha256_file


def test_retry_after_honoured_without_holding_a_slot(serve, tmp_path: Path) -> None:
    # One connection and a long Retry-After: if a waiting retry kept its slot, nothing else
    # could reach the server until the wait was over.
    served = serve(index_pages=3, per_page=8, latency_ms=5.0, retry_after=1.0,
                   faults=0.10, fault_kinds=("429", "503"), seed=5)
    summary = run_crawl(served.start, tmp_path / "out",
                        options=Options(concurrency=1, per_host=1, backoff=0.05))

    check_complete(tmp_path / "out", served.site)
    hits = served.site.hits
    refused = [h for h in hits if h.outcome in ("429", "503")]
    assert len(refused) >= 3 and summary.retries == len(refused)
    for hit in refused:
        later = [h.time for h in hits if h.path == hit.path and h.time > hit.time]
        assert later, f"{hit.path} never retried"
        assert later[0] >= hit.retry_at - 0.002, f"{hit.path} retried {hit.retry_at - later[0]:.3f} s early"
    first = refused[0]
    retried_at = min(h.time for h in hits if h.path == first.path and h.time > first.time)
    served_meanwhile = [h for h in hits if first.time < h.time < retried_at and h.path != first.path]
    assert len(served_meanwhile) >= 5, (first.path, len(served_meanwhile))


def test_cut_short_reset_and_slow_bodies(serve, tmp_path: Path) -> None:
    served = serve(index_pages=3, per_page=8, faults=0.25, fault_kinds=("truncate", "reset", "slow"), seed=3)
    out = tmp_path / "out"
    summary = run_crawl(served.start, out, options=Options(concurrency=8, per_host=8, backoff=0.02))
    outcomes = {h.outcome for h in served.site.hits}
    assert {"truncate", "reset", "slow"} <= outcomes
    assert summary.retries >= sum(h.outcome in ("truncate", "reset") for h in served.site.hits)
    # A slow body is still a whole body: it is read to the end, not retried.
    for hit in served.site.hits:
        if hit.outcome == "slow":
            assert not [h for h in served.site.hits if h.path == hit.path and h.time > hit.time], hit.path
    check_complete(out, served.site)
    expected = served.site.expected_files()
    for path in expected:
        served_bytes = served.site.image(int(path.split("/")[-1].split(".")[0]))
        # Every stored copy of these bytes has exactly the server's size and hash.
        matches = [p for p in out.iterdir() if p.is_file() and p.suffix == ".jpg"
                   and sha256_file(p) == expected[path]]
        assert matches and all(p.stat().st_size == len(served_bytes) for p in matches)
    assert not list((out / ".fivefold-crawl" / "tmp").iterdir())


def test_retries_exhausted_are_reported(serve, tmp_path: Path) -> None:
    served = serve(index_pages=1, per_page=3, faults=1.0, fault_kinds=("503",), max_faults_per_url=99,
                   retry_after=0.0)
    out = tmp_path / "out"
    # The start page itself keeps failing: a one-line error naming it and why.
    import pytest

    from fivefold._common.errors import FivefoldError

    with pytest.raises(FivefoldError, match=r"start URL .* failed: HTTP 503"):
        run_crawl(served.start, out, options=Options(concurrency=2, per_host=2, retries=2, backoff=0.01))
    assert served.site.count("/", "503") == 3
