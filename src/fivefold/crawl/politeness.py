"""Per-host politeness: concurrency slots, spacing between requests, robots.txt, back-off.

A host is ready when it has a free slot and its next allowed start time has come. The
spacing is the largest of ``--delay``, the robots.txt Crawl-delay, and a penalty that grows
when the host answers 429 several times in a row (and shrinks again on success), so a host
that says "too many requests" gets fewer of them from every worker, not just from the one
URL that was refused.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from protego import Protego

if TYPE_CHECKING:
    from fivefold.crawl.state import Item

PENALTY_AFTER = 3  # consecutive 429 answers before the whole host slows down
PENALTY_MIN = 0.1
PENALTY_MAX = 30.0


@dataclass(slots=True)
class Host:
    name: str
    slots: int
    delay: float = 0.0
    active: int = 0
    next_start: float = 0.0
    last_start: float = 0.0
    penalty: float = 0.0
    refused_in_row: int = 0
    robots: Protego | None = None
    robots_loaded: bool = False
    waiting: deque[Item] = field(default_factory=deque)

    def interval(self) -> float:
        return max(self.delay, self.penalty)

    def ready_at(self, now: float) -> float | None:
        """When this host may start its next request (``now`` or later), or ``None`` if it is full."""
        if self.active >= self.slots or (not self.robots_loaded and self.active):
            return None
        return max(now, self.next_start)

    def start(self, now: float) -> None:
        self.active += 1
        self.last_start = max(now, self.next_start)
        self.next_start = self.last_start + self.interval()

    def refused(self, now: float) -> None:
        """A 429: after a few in a row, space every request to this host further apart."""
        self.refused_in_row += 1
        if self.refused_in_row >= PENALTY_AFTER:
            self.penalty = min(PENALTY_MAX, max(PENALTY_MIN, self.penalty * 2))
            self.next_start = max(self.next_start, now + self.penalty)

    def succeeded(self) -> None:
        self.refused_in_row = 0
        if self.penalty:
            self.penalty = self.penalty / 2 if self.penalty / 2 >= PENALTY_MIN else 0.0

    def allowed(self, url: str, user_agent: str) -> bool:
        return self.robots is None or self.robots.can_fetch(url, user_agent)

    def load_robots(self, text: str | None, user_agent: str, base_delay: float) -> None:
        self.robots = Protego.parse(text) if text is not None else None
        crawl_delay = self.robots.crawl_delay(user_agent) if self.robots is not None else None
        self.delay = max(base_delay, float(crawl_delay or 0.0))
        # The request that waited for robots.txt started before the delay was known.
        self.next_start = max(self.next_start, self.last_start + self.delay)
        self.robots_loaded = True


def retry_after(value: str | None, now_wall: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))  # RFC 9110 says integer; fractions cost nothing to accept
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now_wall = time.time() if now_wall is None else now_wall
    return max(0.0, float(when.timestamp()) - now_wall)


def backoff(attempt: int, base: float, cap: float = 60.0) -> float:
    """Exponential back-off with full jitter around the nominal value (0.5x to 1.5x)."""
    nominal = min(cap, base * (1 << min(30, max(0, attempt - 1))))
    return nominal * random.uniform(0.5, 1.5)
