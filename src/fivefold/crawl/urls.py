"""URL canonicalisation: one spelling per resource, so the seen-set dedups what it should."""

from __future__ import annotations

import functools
import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

from fivefold._common.errors import UsageError

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are in a path: RFC 3986 unreserved, sub-delims, ':' '@' '/' and '%'.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def canonical(url: str, base: str | None = None) -> str | None:
    """The canonical absolute form of ``url`` (resolved against ``base``), or ``None``.

    Lower-case scheme and host, default port dropped, dot segments resolved, fragment
    dropped, query parameters sorted, percent-escapes normalised. Only http(s) URLs with a
    host are kept: ``mailto:``, ``javascript:`` and ``data:`` links come back as ``None``.
    """
    url = url.strip()
    if not url:
        return None
    if base is not None:
        if _SIMPLE_PATH.match(url):
            # The common case, an absolute path of plain characters: no parsing needed.
            return _origin("/".join(base.split("/", 3)[:3])) + url
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    path = quote(unquote(_remove_dot_segments(parts.path)), safe=_PATH_SAFE) or "/"
    query = ""
    if parts.query:
        pairs = sorted(parse_qsl(parts.query, keep_blank_values=True))
        query = urlencode(pairs, quote_via=quote)
    return urlunsplit((scheme, host, path, query, ""))


_SIMPLE_PATH = re.compile(r"^/(?:[A-Za-z0-9_~-]+[A-Za-z0-9_.~-]*/?)*$")


@functools.lru_cache(maxsize=256)
def _origin(base: str) -> str:
    """``scheme://host[:port]`` of a base URL, canonicalised."""
    canon = canonical(base)
    if canon is None:
        raise ValueError(base)
    parts = urlsplit(canon)
    return f"{parts.scheme}://{parts.netloc}"


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, which ``urljoin`` applies only to relative references."""
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out)


def start_url(url: str) -> str:
    """A start URL in canonical form, or a :class:`UsageError` naming it."""
    result = canonical(url)
    if result is None:
        raise UsageError(f"invalid start URL {url!r}: need an absolute http:// or https:// URL")
    return result


def host_of(url: str) -> str:
    """``host[:port]`` of a canonical URL (the unit of politeness)."""
    # Called for every URL queued or discovered: slice a canonical URL instead of parsing it.
    _, sep, rest = url.partition("://")
    if sep:
        netloc = rest.split("/", 1)[0]
        if not any(c in netloc for c in "?#@\\"):
            return netloc
    return urlsplit(url).netloc


def site_of(url: str) -> str:
    """The host without ``www.`` and port: pages on the same site share this."""
    return _site(host_of(url))


@functools.lru_cache(maxsize=1024)
def _site(netloc: str) -> str:
    host = urlsplit(f"//{netloc}").hostname or ""
    return host[4:] if host.startswith("www.") else host
