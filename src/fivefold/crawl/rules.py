"""Crawl rules: where to start, which links to follow, what to take from which page.

Rules come from command-line flags (one page type that applies everywhere) or from a TOML
rules file (several page types, each matched by a URL pattern and each with its own
selectors). Unknown keys in a rules file are an error, never silently ignored: a typo in
``folow`` would otherwise crawl nothing and say nothing.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fivefold._common.errors import UsageError
from fivefold.crawl.names import check_template
from fivefold.crawl.urls import start_url

DEFAULT_PAGINATE = "a[rel~=next], link[rel~=next]"
DEFAULT_TYPES = ("image/*",)
GENERIC_MEDIA = "img@src, img@data-src, a@href, source@src, video@src"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str | int, what: str = "size") -> int:
    """``"20MB"`` -> 20971520 (binary units; ``B`` and ``iB`` are both accepted)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise UsageError(f"{what}: cannot read {text!r} as a size (like 500KB, 20MB, 2GB)")
    unit = (match.group(2) or "").upper().rstrip("B").rstrip("I")
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass(frozen=True, slots=True)
class Selector:
    """A CSS selector and the attribute to read (``None``: the element's text)."""

    css: str
    attr: str | None = None

    @classmethod
    def parse(cls, text: str, default_attr: str | None) -> Selector:
        css, at, attr = text.rpartition("@")
        if at and attr and re.fullmatch(r"[\w:-]+", attr):
            return cls(css.strip(), attr)
        return cls(text.strip(), default_attr)

    def __str__(self) -> str:
        return self.css if self.attr is None else f"{self.css}@{self.attr}"


@dataclass(frozen=True, slots=True)
class PageRule:
    """What to do on pages of one type."""

    name: str = "default"
    match: re.Pattern[str] | None = None
    follow: tuple[Selector, ...] = ()
    follow_as: str | None = None
    paginate: tuple[Selector, ...] = ()
    media: tuple[Selector, ...] = ()
    title: Selector | None = None
    fields: tuple[tuple[str, Selector], ...] = ()
    allow: tuple[re.Pattern[str], ...] = ()
    deny: tuple[re.Pattern[str], ...] = ()

    def selectors(self) -> list[Selector]:
        return [*self.follow, *self.paginate, *self.media]

    def wants_link(self, url: str) -> bool:
        if self.deny and any(p.search(url) for p in self.deny):
            return False
        return not self.allow or any(p.search(url) for p in self.allow)


@dataclass(frozen=True, slots=True)
class Rules:
    """A whole crawl's rules; the same rules with the same output directory resume a crawl."""

    start: tuple[str, ...] = ()
    pages: tuple[PageRule, ...] = (PageRule(),)
    max_depth: int = 50
    same_site: bool = True
    robots: bool = True
    types: tuple[str, ...] = DEFAULT_TYPES
    min_bytes: int = 0
    max_bytes: int = 1 << 30
    max_files: int | None = None
    name: str = "{title}{ext}"
    generic: bool = False

    def page_rule(self, url: str, forced: str | None = None) -> PageRule:
        """The page type for ``url``: the forced one if named, else the first that matches."""
        if forced is not None:
            for rule in self.pages:
                if rule.name == forced:
                    return rule
        for rule in self.pages:
            if rule.match is None or rule.match.search(url):
                return rule
        return self.pages[-1]

    def type_allowed(self, content_type: str | None) -> bool:
        return _type_allowed(self.types, content_type)


@functools.lru_cache(maxsize=256)
def _type_allowed(types: tuple[str, ...], content_type: str | None) -> bool:
    """Cached: a crawl asks about the same few media types once per download."""
    if not types or "*/*" in types or "*" in types:
        return True
    base = (content_type or "").split(";")[0].strip().lower()
    return any(fnmatch.fnmatchcase(base, pattern) for pattern in types)


def _selectors(value: Any, where: str, default_attr: str | None) -> tuple[Selector, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise UsageError(f"{where}: expected a CSS selector or a list of them")
    return tuple(Selector.parse(v, default_attr) for v in items if v.strip())


def _patterns(value: Any, where: str) -> tuple[re.Pattern[str], ...]:
    items = [value] if isinstance(value, str) else (value or [])
    try:
        return tuple(re.compile(v) for v in items)
    except (re.error, TypeError) as exc:
        raise UsageError(f"{where}: bad pattern: {exc}") from None


def page_rule(
    *,
    name: str = "default",
    match: str | None = None,
    follow: Any = None,
    follow_as: str | None = None,
    paginate: Any = DEFAULT_PAGINATE,
    media: Any = None,
    title: str | None = None,
    fields: dict[str, str] | None = None,
    allow: Any = None,
    deny: Any = None,
    where: str = "rules",
) -> PageRule:
    """A :class:`PageRule` from plain values (flags or one TOML table)."""
    if fields is not None and not (
        isinstance(fields, dict) and all(isinstance(v, str) for v in fields.values())
    ):
        raise UsageError(f"{where}: 'fields' must be a table of name = \"CSS selector\"")
    return PageRule(
        name=name,
        match=_patterns(match, f"{where}.match")[0] if match else None,
        follow=_selectors(follow, f"{where}.follow", "href"),
        follow_as=follow_as,
        paginate=_selectors(paginate, f"{where}.paginate", "href"),
        media=_selectors(media, f"{where}.media", "src"),
        title=_selectors(title, f"{where}.title", None)[0] if title else None,
        fields=tuple((key, Selector.parse(css, None)) for key, css in (fields or {}).items()),
        allow=_patterns(allow, f"{where}.allow"),
        deny=_patterns(deny, f"{where}.deny"),
    )


_TOP_KEYS = {"start", "max_depth", "same_site", "robots", "types", "min_bytes", "max_bytes",
             "max_files", "name", "generic", "page"}
_PAGE_KEYS = {"name", "match", "follow", "follow_as", "paginate", "media", "title", "fields",
              "allow", "deny"}


def _reject_unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")


def _typed(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table.get(key)
    if value is not None and not isinstance(value, kind):
        raise UsageError(f"{where}: '{key}' has the wrong type ({type(value).__name__})")
    return value


def load_rules(path: Path) -> Rules:
    """Rules from a TOML file; every problem is a one-line :class:`UsageError` naming the file."""
    try:
        with path.open("rb") as handle:
            doc = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read rules file: {exc.strerror}") from None
    where = str(path)
    _reject_unknown(doc, _TOP_KEYS, where)
    pages = []
    for number, table in enumerate(_typed(doc, "page", list, where) or [], 1):
        page_where = f"{where}: [[page]] {number}"
        if not isinstance(table, dict):
            raise UsageError(f"{page_where}: must be a table")
        _reject_unknown(table, _PAGE_KEYS, page_where)
        args = {key: table[key] for key in _PAGE_KEYS if key in table}
        args.setdefault("name", f"page{number}")
        pages.append(page_rule(**args, where=page_where))
    names = [p.name for p in pages]
    for rule in pages:
        if rule.follow_as is not None and rule.follow_as not in names:
            raise UsageError(f"{where}: page {rule.name!r}: follow_as names no page type {rule.follow_as!r}")
    start = _typed(doc, "start", (str, list), where) or []
    types = _typed(doc, "types", (str, list), where)
    rules = Rules(
        start=tuple(start_url(u) for u in ([start] if isinstance(start, str) else start)),
        pages=tuple(pages) or (PageRule(paginate=_selectors(DEFAULT_PAGINATE, where, "href")),),
        max_depth=_typed(doc, "max_depth", int, where) or 50,
        same_site=_bool(doc, "same_site", True, where),
        robots=_bool(doc, "robots", True, where),
        types=tuple([types] if isinstance(types, str) else types) if types is not None else DEFAULT_TYPES,
        min_bytes=parse_size(doc.get("min_bytes", 0), f"{where}: min_bytes"),
        max_bytes=parse_size(doc.get("max_bytes", 1 << 30), f"{where}: max_bytes"),
        max_files=_typed(doc, "max_files", int, where),
        name=_typed(doc, "name", str, where) or "{title}{ext}",
        generic=_bool(doc, "generic", False, where),
    )
    check_template(rules.name)
    return _with_generic(rules)


def _bool(doc: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = _typed(doc, key, bool, where)
    return default if value is None else bool(value)


def _with_generic(rules: Rules) -> Rules:
    """Generic mode: every page of the site is followed and every file-like link is a candidate."""
    if not rules.generic:
        return rules
    generic = page_rule(name="generic", follow="a@href", media=GENERIC_MEDIA)
    pages = tuple(
        replace(p, follow=p.follow or generic.follow, media=p.media or generic.media) for p in rules.pages
    )
    return replace(rules, pages=pages)


def rules_from_flags(
    start: list[str],
    *,
    follow: list[str],
    media: list[str],
    title: str | None,
    fields: dict[str, str],
    paginate: str | None,
    allow: list[str],
    deny: list[str],
    base: Rules | None = None,
    **overrides: Any,
) -> Rules:
    """Rules from command-line flags, on top of a rules file's when one is given."""
    if base is not None:
        if follow or media or title or fields or paginate is not None or allow or deny:
            raise UsageError("selectors (--follow, --media, --title, --field, --paginate, --allow, --deny) "
                             "go in the rules file when --rules is given")
        rules = base
    else:
        rules = Rules(pages=(page_rule(
            follow=follow, media=media, title=title, fields=fields,
            paginate=DEFAULT_PAGINATE if paginate is None else (paginate or None),
            allow=allow, deny=deny, where="flags",
        ),))
    starts = tuple(start_url(u) for u in start) or rules.start
    rules = replace(rules, start=starts, **{k: v for k, v in overrides.items() if v is not None})
    check_template(rules.name)
    if not rules.start:
        raise UsageError("no start URL: give one or more URLs, or 'start' in the rules file")
    return _with_generic(rules)
