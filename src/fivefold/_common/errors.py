"""The one error family the command line turns into a one-line message.

Library code raises a subclass of :class:`FivefoldError` for every failure a user
can cause or fix (bad input, a server that refuses, a missing file). The CLI prints
``fivefold <tool>: <message>`` and exits with :attr:`FivefoldError.exit_code`;
anything else is a bug and shows a traceback only under ``--debug``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class FivefoldError(Exception):
    """A failure the user can understand from one line; exit status 1."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        # One line, whatever the caller passed: a stray newline would break the contract.
        return " ".join(self.message.split())


class UsageError(FivefoldError):
    """The input itself is wrong (bad option value, malformed file); exit status 2."""

    exit_code = EXIT_USAGE


class MissingExtraError(FivefoldError):
    """A tool was used without its optional dependencies installed."""

    exit_code = EXIT_FAILED

    def __init__(self, tool: str, module: str | None = None) -> None:
        detail = f" (missing module {module!r})" if module else ""
        super().__init__(f"needs the '{tool}' extra: pip install 'fivefold[{tool}]'{detail}")
        self.tool = tool
        self.module = module
