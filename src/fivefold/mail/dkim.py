"""DKIM signing with dkimpy: a private key file, a selector and the signing domain."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fivefold._common.errors import UsageError

# Signed when present; From is mandatory. Bcc is never a header here, so never signed.
SIGNED_HEADERS = (b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to",
                  b"mime-version", b"content-type", b"content-transfer-encoding")


@dataclass
class DkimSigner:
    key_path: Path
    selector: str
    domain: str
    _key: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not self.selector or not self.selector.replace("-", "").replace(".", "").isalnum():
            raise UsageError(f"--dkim-selector: invalid selector {self.selector!r}")
        if not self.domain or "@" in self.domain:
            raise UsageError(f"DKIM domain: invalid {self.domain!r}")
        try:
            self._key = self.key_path.read_bytes()
        except OSError as exc:
            raise UsageError(f"--dkim-key {self.key_path}: cannot read: {exc.strerror}") from None
        if b"PRIVATE KEY" not in self._key:
            raise UsageError(f"--dkim-key {self.key_path}: not a PEM private key")

    def sign(self, data: bytes) -> bytes:
        """``data`` with a ``DKIM-Signature`` header prepended (relaxed/relaxed canonicalisation)."""
        import dkim

        present = {line.split(b":", 1)[0].strip().lower()
                   for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if b":" in line[:80]}
        include = [h for h in SIGNED_HEADERS if h in present]
        try:
            header = dkim.sign(data, self.selector.encode(), self.domain.encode(), self._key,
                               canonicalize=(b"relaxed", b"relaxed"), include_headers=include)
        except dkim.DKIMException as exc:
            raise UsageError(f"--dkim-key {self.key_path}: cannot sign: {exc}") from None
        return bytes(header) + data
