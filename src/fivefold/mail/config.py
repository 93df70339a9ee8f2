"""Sending settings from flags, ``FIVEFOLD_MAIL_*``, ``[mail]`` and ``[mail.profiles.NAME]``.

Precedence, lowest first: built-in defaults, ``[mail]``, the chosen profile, environment
variables, flags. A profile may name *where* secrets come from (``password_env``,
``password_command``, ``oauth_token_command``) but a secret itself never lives in the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fivefold._common.errors import UsageError
from fivefold._common.settings import tool_settings, yes_no
from fivefold.mail import secrets
from fivefold.mail.transport import ConnectOptions, Endpoint

KNOWN_KEYS = {"server", "security", "user", "password_env", "password_command", "oauth_token_command",
              "from", "cafile", "insecure", "allow_plain", "timeout", "retries", "dkim_key",
              "dkim_selector", "dkim_domain", "concurrency", "outbox"}
FORBIDDEN_KEYS = {"password", "token", "oauth_token"}


@dataclass
class SendSettings:
    endpoint: Endpoint
    options: ConnectOptions
    sender: str | None
    retries: int
    dkim_key: Path | None
    dkim_selector: str | None
    dkim_domain: str | None
    concurrency: int
    raw: dict[str, Any]


def merged(flags: Mapping[str, Any], *, profile: str | None = None) -> dict[str, Any]:
    everything = tool_settings("mail", None)
    profiles = everything.pop("profiles", {})
    if not isinstance(profiles, dict):
        raise UsageError("fivefold.toml: [mail.profiles] must be a table of tables")
    name = profile or everything.get("profile")
    base = {k: v for k, v in everything.items() if k != "profile"}
    if name:
        if name not in profiles:
            known = ", ".join(sorted(profiles)) or "none defined"
            raise UsageError(f"--profile {name!r}: no [mail.profiles.{name}] in fivefold.toml ({known})")
        base.update(profiles[name])
    for key in base:
        if key in FORBIDDEN_KEYS:
            raise UsageError(f"fivefold.toml: [mail] {key} is not allowed; use password_env or "
                             "password_command so the secret stays out of the file")
    base.update({key: value for key, value in flags.items() if value is not None})
    return base


def _bool(key: str, value: Any) -> bool:
    try:
        return yes_no(value)
    except ValueError as exc:
        raise UsageError(f"[mail] {key}: {exc}") from None


def load(flags: Mapping[str, Any], *, profile: str | None = None, prompt: bool = True) -> SendSettings:
    values = merged(flags, profile=profile)
    endpoint = Endpoint.parse(str(values.get("server", "127.0.0.1:25")), values.get("security"))
    user = values.get("user")
    password = None
    token = None
    if user is not None:
        token = secrets.resolve(user=user, command=values.get("oauth_token_command"), what="OAuth token")
        if token is None:
            password = secrets.resolve(user=user, env=values.get("password_env"),
                                       command=values.get("password_command"), ask=prompt)
    try:
        timeout = float(values.get("timeout", 30.0))
        retries = int(values.get("retries", 3))
        concurrency = int(values.get("concurrency", 8))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"mail settings: {exc}") from None
    options = ConnectOptions(
        timeout=timeout,
        cafile=Path(values["cafile"]) if values.get("cafile") else None,
        insecure=_bool("insecure", values.get("insecure", False)),
        allow_plain=_bool("allow_plain", values.get("allow_plain", False)),
        user=user,
        password=password,
        oauth_token=token,
    )
    options.check(endpoint)
    return SendSettings(
        endpoint=endpoint, options=options, sender=values.get("from"), retries=retries,
        dkim_key=Path(values["dkim_key"]) if values.get("dkim_key") else None,
        dkim_selector=values.get("dkim_selector"), dkim_domain=values.get("dkim_domain"),
        concurrency=concurrency, raw=values,
    )
