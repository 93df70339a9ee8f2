"""Safe file names from hostile titles and URLs.

A title is whatever the site says it is: ``../../etc/passwd``, ``CON``, 300 bytes of emoji,
control characters. Everything here turns it into one path component that is safe on
Linux, macOS and Windows, short enough to leave room for a temporary suffix, and checked to
resolve inside the output directory.
"""

from __future__ import annotations

import os
import re
import string
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

from fivefold._common.errors import UsageError

# 255 is the common file-name limit in bytes; keep room for "-12345" uniqueness counters
# and for the longest temporary suffix we ever put on a name.
NAME_MAX_BYTES = 255
RESERVED_BYTES = 40
STEM_MAX_BYTES = NAME_MAX_BYTES - RESERVED_BYTES

_WINDOWS_RESERVED = {
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
    *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10)),
}
# Separators and characters Windows refuses; control characters are dropped separately.
_UNSAFE = re.compile(r'[/\\:*?"<>|\x00]')
_SPACES = re.compile(r"\s+")
_EXT = re.compile(r"^\.[A-Za-z0-9]{1,8}$")

_TYPE_EXT = {
    "image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
    "image/avif": ".avif", "image/svg+xml": ".svg", "image/bmp": ".bmp", "image/tiff": ".tif",
    "video/mp4": ".mp4", "video/webm": ".webm", "audio/mpeg": ".mp3", "application/pdf": ".pdf",
    "application/zip": ".zip", "text/plain": ".txt", "application/octet-stream": ".bin",
}


def clean_component(text: str, *, max_bytes: int = STEM_MAX_BYTES) -> str:
    """One safe path component (no extension handling), possibly empty."""
    if not (text.isascii() and text.isprintable()):  # printable ASCII: NFC and the filter change nothing
        text = unicodedata.normalize("NFC", text)
        text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = _UNSAFE.sub("_", text)
    text = _SPACES.sub(" ", text).strip(" .")
    text = truncate_bytes(text, max_bytes).rstrip(" .")
    if text.split(".")[0].upper() in _WINDOWS_RESERVED or text in {"", ".", ".."}:
        return f"_{text}" if text not in {"", ".", ".."} else ""
    return text


def truncate_bytes(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 without splitting a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def extension_for(url: str, content_type: str | None) -> str:
    """``.jpg`` from the URL path if it looks like one, else from the content type."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    name = path.rsplit("/", 1)[-1]
    suffix = name[name.rfind("."):].lower() if "." in name else ""
    if "%" in suffix:
        suffix = unquote(suffix)
    if _EXT.match(suffix):
        return ".jpg" if suffix == ".jpeg" else suffix
    if content_type:
        return _TYPE_EXT.get(content_type.split(";")[0].strip().lower(), "")
    return ""


def url_stem(url: str) -> str:
    """The last path segment of ``url`` without its extension."""
    name = unquote(url.split("?", 1)[0].split("#", 1)[0].rsplit("/", 1)[-1])
    return name.rsplit(".", 1)[0] if "." in name else name


class _Formatter(string.Formatter):
    """``{sha256:.12}`` and friends, with unknown fields reported as a usage error."""

    def get_value(self, key: int | str, args: object, kwargs: Mapping[str, object]) -> object:
        if isinstance(key, int) or key not in kwargs:
            raise UsageError(f"--name: unknown field {{{key}}} (known: {', '.join(sorted(kwargs))})")
        return kwargs[key]


TEMPLATE_FIELDS = ("title", "stem", "sha256", "ext", "index", "host", "page")


def check_template(template: str) -> None:
    """Raises :class:`UsageError` for a template that names an unknown field or is malformed."""
    render_name(template, {key: "x" for key in TEMPLATE_FIELDS} | {"index": 1})


def render_name(template: str, values: Mapping[str, object]) -> str:
    """The template filled in; path separators in the result are not special (it is one name)."""
    try:
        return _Formatter().vformat(template, (), values)
    except (ValueError, IndexError) as exc:
        raise UsageError(f"--name: bad template {template!r}: {exc}") from None


def safe_name(raw: str, ext: str, fallback: str) -> str:
    """A safe file name ``stem + ext``; ``fallback`` when ``raw`` cleans to nothing."""
    stem = raw[: -len(ext)] if ext and raw.lower().endswith(ext) else raw
    stem = clean_component(stem)
    if not stem:
        stem = clean_component(fallback) or "file"
    ext = ext if _EXT.match(ext or "") else ""
    return stem + ext


def numbered(name: str, number: int) -> str:
    """``photo.jpg`` -> ``photo-2.jpg``: the uniqueness counter goes before the extension."""
    if number <= 1:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name}-{number}"
    return f"{stem}-{number}.{ext}"


def check_name(name: str) -> None:
    """Raises ``ValueError`` unless ``name`` is one path component within the byte limit."""
    if not name or "/" in name or "\\" in name or name in {".", ".."} or "\x00" in name:
        raise ValueError(f"unsafe file name {name!r}")
    if len(name.encode("utf-8")) > NAME_MAX_BYTES:
        raise ValueError(f"file name longer than {NAME_MAX_BYTES} bytes: {name[:40]!r}...")


def inside(root: Path, name: str, real_root: str | None = None) -> Path:
    """``root / name``, verified to be a direct child of ``root`` after resolving links.

    ``real_root`` is ``os.path.realpath(root)`` when the caller has it already.
    """
    check_name(name)
    path = root / name
    real_root = real_root if real_root is not None else os.path.realpath(root)
    if os.path.dirname(os.path.realpath(path)) != real_root:
        raise ValueError(f"file name {name!r} leaves the output directory")
    return path
