"""DKIM: signed on the way out, verified by dkimpy with a fake DNS answer, broken by tampering."""

from __future__ import annotations

import base64
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fivefold._common.errors import UsageError
from fivefold.mail import Message, send
from fivefold.mail.dkim import DkimSigner
from fivefold.mail.server import CaptureServer

from .conftest import send_argv


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    return path, record


def test_signed_message_verifies_and_tampering_breaks_it(
    dkim_key: tuple[Path, bytes], capture: CaptureServer
) -> None:
    path, record = dkim_key

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail2026._domainkey.example.org."
        return record

    signer = DkimSigner(path, "mail2026", "example.org")
    message = Message(
        sender="Zoë <zoe@example.org>",
        to=["a@example.net"],
        bcc=["b@example.net"],
        subject="signed ☃",
        html="<p>signed body</p>",
    )
    assert send(message, server=capture.address, dkim=signer, timeout=10).ok
    [raw] = capture.raw()
    assert raw.startswith(b"DKIM-Signature: ")
    assert dkim.verify(raw, dnsfunc=dns)
    assert not dkim.verify(raw.replace(b"signed body", b"forged body"), dnsfunc=dns)
    assert not dkim.verify(raw.replace(b"Subject: ", b"Subject: Re: "), dnsfunc=dns)


def test_bad_key_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        DkimSigner(tmp_path / "missing.pem", "s", "example.org")
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(UsageError, match="not a PEM private key"):
        DkimSigner(junk, "s", "example.org")


def test_cli_dry_run_with_dkim(dkim_key: tuple[Path, bytes], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fivefold.cli import root

    path, record = dkim_key
    out = tmp_path / "eml"
    result = CliRunner().invoke(root, send_argv("--dkim-key", str(path), "--dkim-selector", "sel",
                                                "--dry-run", str(out), sender="Ops <ops@example.org>",
                                                to="a@example.net", subject="signed"))
    assert result.exit_code == 0, result.output
    [eml] = out.glob("*.eml")
    assert dkim.verify(eml.read_bytes(), dnsfunc=lambda name, timeout=5: record)
    missing = CliRunner().invoke(root, send_argv("--dkim-key", str(path), "--dry-run", str(out)))
    assert isinstance(missing.exception, UsageError)  # exit 2 through fivefold.cli.main
    assert "--dkim-key needs --dkim-selector" in str(missing.exception)
