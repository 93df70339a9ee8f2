"""Links, media URLs, titles and fields from a page, with selectolax's Lexbor parser.

Lexbor is a C HTML5 parser: it parses a gallery page in tens of microseconds and follows the
same error recovery as browsers, so hostile or broken markup yields what a browser would see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser

from fivefold.crawl.rules import PageRule, Selector
from fivefold.crawl.urls import canonical


@dataclass(slots=True)
class Extracted:
    links: list[str] = field(default_factory=list)
    paginate: list[str] = field(default_factory=list)
    media: list[str] = field(default_factory=list)
    title: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    empty: list[Selector] = field(default_factory=list)  # selectors that matched no element


def _values(tree: LexborHTMLParser, selector: Selector, empty: list[Selector]) -> list[str]:
    try:
        nodes = tree.css(selector.css)
    except Exception:  # lexbor rejects some selectors only at match time; a rule error is a miss
        nodes = []
    if not nodes:
        empty.append(selector)
        return []
    if selector.attr is None:
        return [text for node in nodes if (text := node.text(deep=True, separator=" ", strip=True))]
    values = []
    for node in nodes:
        value = node.attributes.get(selector.attr)
        if value:
            values.append(value)
    return values


def _urls(raw: list[str], base: str) -> list[str]:
    seen: dict[str, None] = {}
    for value in raw:
        if selector_value_is_srcset(value):
            value = value.split(",")[0].split()[0]
        url = canonical(value, base)
        if url is not None:
            seen.setdefault(url, None)
    return list(seen)


def selector_value_is_srcset(value: str) -> bool:
    return "," in value and " " in value.strip()


_BASE_BYTES = re.compile(rb"<base", re.I)
_BASE_TEXT = re.compile(r"<base", re.I)


def _may_have_base(html: str | bytes) -> bool:
    if isinstance(html, bytes):
        return _BASE_BYTES.search(html) is not None
    return _BASE_TEXT.search(html) is not None


def extract(html: str | bytes, base: str, rule: PageRule) -> Extracted:
    """Everything ``rule`` asks for on one page; URLs are absolute and canonical."""
    tree = LexborHTMLParser(html)
    # A CSS query costs as much as a small page's parse: look for <base> only when it may be there.
    if _may_have_base(html):
        for node in tree.css("base[href]"):
            href = node.attributes.get("href")
            if href:
                base = canonical(href, base) or base
            break
    out = Extracted()
    empty = out.empty
    out.links = _urls([v for s in rule.follow for v in _values(tree, s, empty)], base)
    out.paginate = _urls([v for s in rule.paginate for v in _values(tree, s, [])], base)
    out.media = _urls([v for s in rule.media for v in _values(tree, s, empty)], base)
    if rule.title is not None:
        titles = _values(tree, rule.title, empty)
        out.title = titles[0] if titles else None
    for name, selector in rule.fields:
        values = _values(tree, selector, empty)
        if values:
            out.fields[name] = values[0]
    return out
