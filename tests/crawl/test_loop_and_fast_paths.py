"""The event-loop choice and the fast paths taken for speed (each must equal the slow path)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fivefold._common.errors import UsageError
from fivefold.crawl.loop import loop_factory, run
from fivefold.crawl.names import clean_component
from fivefold.crawl.rules import rules_from_flags


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_loop_is_uvloop_when_installed_and_asyncio_on_request() -> None:
    uvloop = pytest.importorskip("uvloop", reason="uvloop (crawl extra) not installed")
    assert loop_factory("auto") is uvloop.new_event_loop
    assert run(_loop_module(), "auto").startswith("uvloop")
    assert run(_loop_module(), "asyncio").startswith("asyncio")
    assert loop_factory("asyncio") is None


def test_unknown_loop_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--loop"):
        loop_factory("trio")


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_ascii_fast_path_equals_the_general_path(text: str) -> None:
    # With a control character the general path runs (NFC, category filter); without, the fast one.
    printable = "".join(ch for ch in text if ch.isprintable())
    assert clean_component(text) == clean_component(printable)
    assert clean_component(text + "\x07") == clean_component(text)


def test_type_check_is_cached_and_still_right() -> None:
    rules = rules_from_flags(["http://127.0.0.1:1/"], follow=[], media=["img"], title=None, fields={},
                             paginate=None, allow=[], deny=[], types=("image/*",))
    for _ in range(3):
        assert rules.type_allowed("image/jpeg")
        assert not rules.type_allowed("text/html")
        assert not rules.type_allowed(None)
