"""Address parsing, validation and de-duplication; the header-injection guard.

Every value that ends up in a header or an SMTP command passes through here first, so a
CR or LF smuggled into an address, a subject or a custom header is refused before any
byte goes on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.headerregistry import Address
from email.utils import parseaddr

from fivefold._common.errors import UsageError

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # everything but TAB: CR and LF above all
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII but ':'
_DOMAIN_LABEL = re.compile(r"^[^\s@.\[\]()<>,;:\\\"]+$")


class AddressError(UsageError):
    """An address that cannot be used (syntax, or a non-ASCII one the server cannot take)."""


class HeaderInjectionError(UsageError):
    """A CR, LF or other control character inside a header value or address."""


def check_header_value(name: str, value: str) -> str:
    """``value`` unchanged, or :class:`HeaderInjectionError` when it could break the header."""
    if _CONTROL.search(value):
        raise HeaderInjectionError(f"{name}: control character (CR/LF) in header value refused: {value!r}")
    return value


def check_header_name(name: str) -> str:
    if not _HEADER_NAME.match(name):
        raise HeaderInjectionError(f"invalid header name {name!r}")
    return name


_SIMPLE = re.compile(r"^(?:([A-Za-z0-9 ._-]*?) ?<)?([A-Za-z0-9._%+-]+)"
                     r"@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)>?$")


def parse_address(value: str, *, field: str = "address", name: str = "") -> Address:
    """``'Name <user@example.org>'`` or ``'user@example.org'`` as a validated ``Address``;
    ``name`` (checked for CR/LF) is the display name when ``value`` has none."""
    if name:
        check_header_value("name", name)
    key = (value, field, name)
    address = _PARSED.get(key)
    if address is None:
        if len(_PARSED) >= 1024:  # most of a batch's addresses come once: start afresh
            _PARSED.clear()
        address = _PARSED[key] = _parse_address(value, field, name)
    return address


# ``Address`` is immutable, so one parse can serve every message of a batch that repeats the
# sender or a Cc. Only successes are kept: an error is raised afresh, naming its field. (A
# dict cleared when full: functools.lru_cache's bookkeeping cost more than it saved on the
# addresses that come once.)
_PARSED: dict[tuple[str, str, str], Address] = {}


def _parse_address(value: str, field: str, default_name: str) -> Address:
    check_header_value(field, value)
    simple = _SIMPLE.match(value)
    if simple is not None:
        name, local, domain = simple.groups()
        if (name is None) == (value[-1] != ">") and ".." not in local and local[0] != "." \
                and local[-1] != ".":
            # The common case (plain ASCII, dot-atom local part) without the full RFC 5322 parser.
            return Address(display_name=(name or "").strip() or default_name, username=local, domain=domain)
    address = _parse_full(value, field)
    if default_name and not address.display_name:
        return Address(display_name=default_name, username=address.username, domain=address.domain)
    return address


def _parse_full(value: str, field: str) -> Address:
    text = value.strip()
    if not text:
        raise AddressError(f"{field}: empty address")
    name, addr = parseaddr(text)
    if not addr or "@" not in addr:
        # parseaddr gives up on Unicode display names without quotes: split by hand.
        match = re.fullmatch(r"\s*(.*?)\s*<([^<>]+)>\s*", text)
        if match is None:
            raise AddressError(f"{field}: invalid address {value!r}")
        name, addr = match.group(1).strip().strip('"'), match.group(2).strip()
    local, _, domain = addr.rpartition("@")
    if not local or not domain or any(ch.isspace() for ch in addr):
        raise AddressError(f"{field}: invalid address {value!r}")
    labels = domain.split(".")
    if not all(_DOMAIN_LABEL.match(label) for label in labels) and not (
        domain.startswith("[") and domain.endswith("]")
    ):
        raise AddressError(f"{field}: invalid domain in {value!r}")
    if local.isascii() and not domain.isascii():
        # An internationalised domain alone needs no SMTPUTF8: its IDNA (xn--) form is ASCII.
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise AddressError(f"{field}: invalid internationalised domain in {value!r}") from None
        addr = f"{local}@{domain}"
    try:
        if not addr.isascii():
            # RFC 6531 (SMTPUTF8) addresses: the stdlib parser is ASCII-only, so the parts go in as-is.
            if not re.fullmatch(r"[^\s\x00-\x1f\"(),:;<>@\[\\\]]+", local):
                raise ValueError("invalid characters in the local part")
            return Address(display_name=name, username=local, domain=domain)
        return Address(display_name=name, addr_spec=addr)
    except (ValueError, IndexError) as exc:
        raise AddressError(f"{field}: invalid address {value!r} ({exc})") from None


def parse_list(values: Iterable[str], *, field: str) -> list[Address]:
    """Each value may itself hold several comma-separated addresses."""
    out: list[Address] = []
    for value in values:
        check_header_value(field, value)
        for piece in _split_commas(value):
            out.append(parse_address(piece, field=field))
    return out


def _split_commas(value: str) -> list[str]:
    """Splits on commas outside quotes and angle brackets (``"Doe, J" <j@x>, k@y``)."""
    if "," not in value:  # the common case, without the character loop
        value = value.strip()
        return [value] if value else []
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    depth = 0
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            depth += 1
        elif ch == ">" and not quoted:
            depth = max(0, depth - 1)
        if ch == "," and not quoted and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [part for part in (p.strip() for p in parts) if part]


def key(address: Address) -> str:
    """De-duplication key: the domain is case-insensitive, the local part by convention too."""
    return address.addr_spec.lower()


def dedupe(*groups: list[Address]) -> list[list[Address]]:
    """Each group without addresses seen in itself or an earlier group (To, then Cc, then Bcc)."""
    seen: set[str] = set()
    out: list[list[Address]] = []
    for group in groups:
        kept: list[Address] = []
        for address in group:
            k = key(address)
            if k not in seen:
                seen.add(k)
                kept.append(address)
        out.append(kept)
    return out


def needs_smtputf8(address: Address) -> bool:
    return not address.addr_spec.isascii()
