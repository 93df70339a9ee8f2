"""fivefold._common.files: atomic writes (all or nothing, no temporary left, umask-following mode)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fivefold._common.files import atomic_path, write_bytes_atomic, write_text_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_target_appears_only_when_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper" / "out.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.is_file()
        assert tmp.name.startswith(".out.bin.") and tmp.name.endswith(".part")
        tmp.write_bytes(b"payload")
        assert not target.exists()
    assert target.read_bytes() == b"payload"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "report.txt"
    target.write_text("old")
    with pytest.raises(type(error)), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise error
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]


def test_final_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "shared.bin", b"x")
        os.umask(0o077)
        write_text_atomic(tmp_path / "private.txt", "y")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "shared.bin") == 0o644
    assert _mode(tmp_path / "private.txt") == 0o600


def test_a_writer_that_recreates_the_file_still_gets_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "plot.png") as tmp:
            tmp.unlink()
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600))  # as tempfile.mkstemp would
    finally:
        os.umask(old)
    assert _mode(tmp_path / "plot.png") == 0o644


def test_suffix_is_honoured(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "clip.gif", suffix=".gif") as tmp:
        assert tmp.suffix == ".gif" and tmp.name.startswith(".clip.gif.")
        tmp.write_bytes(b"GIF89a")
    assert (tmp_path / "clip.gif").read_bytes() == b"GIF89a"


def test_text_encoding_and_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "note.txt"
    write_text_atomic(target, "first")
    write_text_atomic(target, "café", encoding="latin-1")
    assert target.read_bytes() == "café".encode("latin-1")
