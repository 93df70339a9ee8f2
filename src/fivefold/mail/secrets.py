"""Where passwords and OAuth tokens come from: an environment variable, a command, a prompt.

Never from the command line (it would show in ``ps`` and shell history) and never logged.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from fivefold._common.errors import UsageError
from fivefold.mail.transport import Secret


def from_env(name: str, *, what: str = "password") -> Secret:
    value = os.environ.get(name)
    if value is None or value == "":
        raise UsageError(f"{what}: environment variable {name} is not set")
    return Secret(value)


def from_command(command: str, *, what: str = "password", timeout: float = 30.0) -> Secret:
    """Runs ``command`` (no shell) and takes its first output line; its output is never echoed."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"{what} command: cannot parse: {exc}") from None
    if not argv:
        raise UsageError(f"{what} command is empty")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise UsageError(f"{what} command: {argv[0]}: not found") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"{what} command: {argv[0]} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        # stderr may be helpful, stdout may be the secret itself: only the status is reported.
        raise UsageError(f"{what} command: {argv[0]} exited with status {done.returncode}")
    line = done.stdout.splitlines()[0] if done.stdout else ""
    if not line:
        raise UsageError(f"{what} command: {argv[0]} printed nothing")
    return Secret(line)


def prompt(user: str, *, what: str = "password") -> Secret:
    if not sys.stdin.isatty():
        raise UsageError(f"{what} for {user} needed: set --password-env or password_command "
                         "(no terminal to prompt on)")
    import getpass

    return Secret(getpass.getpass(f"{what} for {user}: "))


def resolve(*, user: str | None, env: str | None = None, command: str | None = None,
            ask: bool = False, what: str = "password") -> Secret | None:
    """The first source given wins: env, then command, then (when ``ask``) a prompt."""
    if env:
        return from_env(env, what=what)
    if command:
        return from_command(command, what=what)
    if ask and user is not None:
        return prompt(user, what=what)
    return None
