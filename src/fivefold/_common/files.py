"""Writing a file atomically: a temporary name beside the target, renamed over it only when complete.

A reader (or a crash) therefore sees either the old file or the whole new one, never a half-written
one, and a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_ATTEMPTS = 100


def _create_beside(path: Path, suffix: str) -> tuple[Path, int]:
    """A new, empty file named ``.{name}.XXXXXXXX{suffix}`` beside ``path``, and its permission bits.

    It is created with mode 0o666 so the kernel applies the umask (and any default ACL) exactly as a
    plain ``open(path, "w")`` would; reading the mode back learns the result without touching the
    process-wide umask (``os.umask`` can only be read by setting it, which races with other threads).
    """
    for _ in range(_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        try:
            return tmp, stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
    raise FileExistsError(f"no free temporary name beside {path}")


@contextmanager
def atomic_path(path: Path, *, suffix: str = ".part") -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; renamed over ``path`` when the block
    ends normally, removed when it raises (anything, ``KeyboardInterrupt`` included).

    The parent directory is created. Pass ``suffix`` when the writer picks the format from the file
    name (Pillow, PyAV: ``suffix=".gif"``). The final mode is what ``open(path, "w")`` would give.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, mode = _create_beside(path, suffix)
    try:
        yield tmp
        # A writer that replaced the file instead of writing into it may have left another mode.
        if stat.S_IMODE(tmp.stat().st_mode) != mode:
            tmp.chmod(mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``path.write_bytes(data)``, atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str, encoding: str = "utf-8") -> None:
    """``path.write_text(text, encoding)``, atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
