"""fivefold.mail: compose correct email and send it over SMTP, one message or many.

Public API: :class:`Message`, :class:`Attachment`, :func:`send`, :func:`send_many`,
:class:`SendResult`. The embedded capture server is :class:`fivefold.mail.server.CaptureServer`.
Importing this package loads only the stdlib's ``email``; the SMTP libraries load on first send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fivefold.mail.bulk import BulkReport, send_many
    from fivefold.mail.message import Attachment, Message
    from fivefold.mail.sending import SendResult, send, send_async

__all__ = ["Attachment", "BulkReport", "Message", "SendResult", "send", "send_async", "send_many"]

_WHERE = {
    "Attachment": "fivefold.mail.message",
    "Message": "fivefold.mail.message",
    "SendResult": "fivefold.mail.sending",
    "send": "fivefold.mail.sending",
    "send_async": "fivefold.mail.sending",
    "send_many": "fivefold.mail.bulk",
    "BulkReport": "fivefold.mail.bulk",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'fivefold.mail' has no attribute {name!r}")
