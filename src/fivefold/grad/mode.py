"""Grad mode: ``no_grad``, ``enable_grad``, ``set_grad_enabled`` (thread-local, like torch).

Each works as a context manager and as a decorator. The flag lives on a
``threading.local`` subclass whose class attribute is the default, so a fresh thread
starts with grad mode on without any set-up.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class _State(threading.local):
    enabled: bool = True
    anomaly: bool = False
    anomaly_check_nan: bool = True


STATE = _State()


def is_grad_enabled() -> bool:
    return STATE.enabled


class _GradMode:
    """Shared machinery: enter saves the old flag, exit restores it."""

    _target: bool = True

    def __init__(self) -> None:
        self._prev: list[bool] = []

    def __enter__(self) -> None:
        self._prev.append(STATE.enabled)
        STATE.enabled = self._target

    def __exit__(self, *exc: object) -> None:
        STATE.enabled = self._prev.pop()

    def __call__(self, func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.__class__._fresh(self):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    @staticmethod
    def _fresh(mode: _GradMode) -> _GradMode:
        return mode.clone()

    def clone(self) -> _GradMode:
        return self.__class__()


class no_grad(_GradMode):
    """Disables graph recording inside the block (optimizer updates run under it)."""

    _target = False


class enable_grad(_GradMode):
    """Re-enables graph recording inside a ``no_grad`` block."""

    _target = True


class set_grad_enabled(_GradMode):
    """Sets grad mode to ``mode``; takes effect at once, like torch, and inside ``with``."""

    def __init__(self, mode: bool) -> None:
        super().__init__()
        self._target = bool(mode)
        self._prev.append(STATE.enabled)
        STATE.enabled = self._target

    def __enter__(self) -> None:
        STATE.enabled = self._target

    def __exit__(self, *exc: object) -> None:
        if self._prev:
            STATE.enabled = self._prev.pop()

    def __call__(self, func: F) -> F:
        # As a decorator the constructor must not leave the mode changed (torch undoes it too).
        if self._prev:
            STATE.enabled = self._prev.pop()
        return super().__call__(func)

    def clone(self) -> _GradMode:
        prev = STATE.enabled
        fresh = set_grad_enabled(self._target)
        STATE.enabled = prev
        fresh._prev = [prev]
        return fresh


class inference_mode(no_grad):
    """Treated as ``no_grad`` (there is no separate inference tensor kind here)."""

    def __init__(self, mode: bool = True) -> None:
        super().__init__()
        self._target = not mode
