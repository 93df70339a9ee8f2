"""`fivefold mail`: the command-line shell over `fivefold.mail`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from fivefold._common.errors import FivefoldError, UsageError

DEFAULT_MAILDIR = Path("fivefold-maildir")


@click.group(name="mail")
def cli() -> None:
    """Compose and send email over SMTP; run a local capture server."""


def _connection_options(func: Any) -> Any:
    options = [
        click.option("--profile", default=None, help="Use [mail.profiles.NAME] from fivefold.toml."),
        click.option("--server", default=None, help="host:port (default 127.0.0.1:25)."),
        click.option("--security", type=click.Choice(["tls", "starttls", "none"]), default=None,
                     help="Default from the port: 465 tls, 587 starttls, else none."),
        click.option("--user", default=None, help="AUTH user name."),
        click.option("--password-env", default=None, metavar="NAME",
                     help="Environment variable holding the password (never pass it as an argument)."),
        click.option("--password-command", default=None, metavar="CMD",
                     help="Command whose first output line is the password."),
        click.option("--oauth-token-command", default=None, metavar="CMD",
                     help="Command printing an OAuth2 access token (AUTH XOAUTH2)."),
        click.option("--cafile", type=click.Path(path_type=Path), default=None,
                     help="CA bundle to verify the server's certificate (default: system store)."),
        click.option("--insecure", is_flag=True, default=None,
                     help="Do NOT verify the certificate (dangerous; warns)."),
        click.option("--allow-plain", is_flag=True, default=None,
                     help="Allow an unencrypted connection to a non-local server."),
        click.option("--timeout", type=float, default=None, help="Seconds for connect and each command."),
        click.option("--retries", type=int, default=None, help="Retries of transient failures (default 3)."),
        click.option("--dkim-key", type=click.Path(path_type=Path), default=None, help="DKIM private key."),
        click.option("--dkim-selector", default=None, help="DKIM selector."),
        click.option("--dkim-domain", default=None, help="DKIM domain (default: the From domain)."),
        click.option("--dry-run", "dry_run", type=click.Path(path_type=Path), default=None, metavar="DIR",
                     help="Write each message as a .eml file under DIR instead of sending."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _flags(kw: dict[str, Any]) -> dict[str, Any]:
    names = ("server", "security", "user", "password_env", "password_command", "oauth_token_command",
             "cafile", "insecure", "allow_plain", "timeout", "retries", "dkim_key", "dkim_selector",
             "dkim_domain")
    return {name: kw.get(name) for name in names}


def _read_text(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if value == "-":
        return sys.stdin.read()
    try:
        return Path(value).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{what} {value}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {value}: not UTF-8 text") from None


def _inline(values: tuple[str, ...]) -> list[Any]:
    from fivefold.mail.message import Attachment

    out = []
    for value in values:
        # NAME=FILE gives the cid explicitly; a bare FILE is referenced as cid:<file name>.
        cid, sep, path = value.partition("=")
        if not sep:
            cid, path = Path(value).name, value
        out.append(Attachment.from_path(Path(path), cid=cid))
    return out


@cli.command()
@click.option("--from", "sender", default=None, help='"Name <address>" (or [mail] from).')
@click.option("--to", multiple=True, help="Recipient (repeat, or comma-separate).")
@click.option("--cc", multiple=True, help="Cc recipient.")
@click.option("--bcc", multiple=True, help="Bcc recipient (envelope only, never in a header).")
@click.option("--reply-to", multiple=True, help="Reply-To address.")
@click.option("--subject", default="", help="Subject line.")
@click.option("--text", "text_file", default=None, metavar="FILE|-", help="Text body file; - = stdin.")
@click.option("--html", "html_file", default=None, metavar="FILE", help="HTML body file.")
@click.option("--attach", multiple=True, type=click.Path(path_type=Path), help="Attach a file (repeat).")
@click.option("--inline", multiple=True, metavar="[CID=]FILE", help="Inline image for cid: references.")
@click.option("--header", multiple=True, metavar="'Name: value'", help="Extra header (repeat).")
@_connection_options
def send(sender: str | None, to: tuple[str, ...], cc: tuple[str, ...], bcc: tuple[str, ...],
         reply_to: tuple[str, ...], subject: str, text_file: str | None, html_file: str | None,
         attach: tuple[Path, ...], inline: tuple[str, ...], header: tuple[str, ...], profile: str | None,
         dry_run: Path | None, as_json: bool, **kw: Any) -> None:
    """Send one message."""
    from fivefold.mail import config
    from fivefold.mail.message import Attachment, Message

    settings = config.load(_flags(kw), profile=profile, prompt=dry_run is None)
    headers: dict[str, str] = {}
    for item in header:
        name, sep, value = item.partition(":")
        if not sep:
            raise UsageError(f"--header {item!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    sender = sender or settings.sender
    if not sender:
        raise UsageError("--from is required (or set [mail] from in fivefold.toml)")
    message = Message(
        sender=sender, to=list(to), cc=list(cc), bcc=list(bcc), reply_to=list(reply_to), subject=subject,
        text=_read_text(text_file, "--text"), html=_read_text(html_file, "--html"),
        attachments=[Attachment.from_path(path) for path in attach], inline=_inline(inline), headers=headers,
    )
    signer = _signer(settings, message)
    if dry_run is not None:
        from fivefold.mail.dryrun import write_eml

        path = write_eml(message, dry_run, dkim=signer)
        _report({"dry_run": str(path), "envelope": message.envelope()[1]}, as_json,
                f"wrote {path}")
        return
    from fivefold.mail.sending import deliver_prepared, prepare, run_sync

    prepared = prepare(message, signer)
    result = run_sync(deliver_prepared(prepared, settings.endpoint, settings.options,
                                       retries=settings.retries))
    if as_json:
        from fivefold._common.jsonout import emit

        emit(result.to_dict())
    else:
        click.echo(f"sent {result.message_id} to {len(result.accepted)} recipient(s) via {settings.endpoint}")
        for rcpt, reply in result.refused.items():
            click.echo(f"refused {rcpt}: {reply}", err=True)
    if result.refused:
        raise FivefoldError(f"{len(result.refused)} recipient(s) refused: {', '.join(result.refused)}")


def _signer(settings: Any, message: Any) -> Any:
    if settings.dkim_key is None:
        if settings.dkim_selector:
            raise UsageError("--dkim-selector needs --dkim-key")
        return None
    if not settings.dkim_selector:
        raise UsageError("--dkim-key needs --dkim-selector")
    from fivefold.mail.dkim import DkimSigner

    domain = settings.dkim_domain or message.parsed().sender.domain
    return DkimSigner(settings.dkim_key, settings.dkim_selector, domain)


def _report(payload: dict[str, Any], as_json: bool, line: str) -> None:
    if as_json:
        from fivefold._common.jsonout import emit

        emit(payload)
    else:
        click.echo(line)


@cli.command()
@click.option("--template", "template_dir", required=True, type=click.Path(path_type=Path),
              help="Directory with subject.j2, text.j2 and/or html.j2 (optional attach/, inline/).")
@click.option("--csv", "csv_file", required=True, type=click.Path(path_type=Path),
              help="One row per recipient: an email column plus the template's variables.")
@click.option("--from", "sender", default=None, help='"Name <address>" (or [mail] from).')
@click.option("--concurrency", type=int, default=None, help="Parallel connections (default 8).")
@click.option("--outbox", type=click.Path(path_type=Path), default=None,
              help="SQLite journal for resume (default: <csv>.outbox.sqlite).")
@click.option("--no-outbox", is_flag=True, help="Do not journal (a re-run sends everything again).")
@click.option("--retry-failed", is_flag=True, help="Send again the messages the journal records as failed.")
@click.option("--no-pipelining", is_flag=True,
              help="One SMTP command per round trip even if the server offers PIPELINING.")
@_connection_options
def merge(template_dir: Path, csv_file: Path, sender: str | None, concurrency: int | None,
          outbox: Path | None, no_outbox: bool, retry_failed: bool, no_pipelining: bool, profile: str | None,
          dry_run: Path | None, as_json: bool, **kw: Any) -> None:
    """Send one personalised message per CSV row (resumable; validated as a whole first)."""
    from fivefold._common.progress import progress_bar
    from fivefold.mail import config
    from fivefold.mail.merge import merge as run_merge
    from fivefold.mail.merge import plan

    flags = {**_flags(kw), "concurrency": concurrency}
    settings = config.load(flags, profile=profile, prompt=dry_run is None)
    sender = sender or settings.sender
    if not sender:
        raise UsageError("--from is required (or set [mail] from in fivefold.toml)")
    batch = plan(template_dir, csv_file, sender=sender)  # validates everything before sending
    signer = _signer(settings, batch.message(0))
    if dry_run is not None:
        paths = run_merge(batch, dry_run=dry_run, dkim=signer)
        assert isinstance(paths, list)
        _report({"dry_run": [str(p) for p in paths]}, as_json,
                f"wrote {len(paths)} .eml file(s) to {dry_run}")
        return
    journal = None if no_outbox else (outbox or csv_file.with_name(csv_file.name + ".outbox.sqlite"))
    with progress_bar(enabled=None if not as_json else False) as bar:
        task = bar.add_task("sending", total=len(batch.rows), rate="") if bar is not None else None

        def progress(done: int, total: int) -> None:
            if bar is not None and task is not None:
                bar.update(task, completed=done)

        report = run_merge(batch, server=str(settings.endpoint),
                           security=settings.endpoint.security, options=settings.options,
                           concurrency=settings.concurrency, outbox=journal, retries=settings.retries,
                           dkim=signer, retry_failed=retry_failed, progress=progress,
                           pipelining=not no_pipelining)
    assert not isinstance(report, list)
    if as_json:
        from fivefold._common.jsonout import emit

        emit(report.to_dict())
    else:
        where = f"; journal {journal}" if journal else ""
        click.echo(f"sent {report.sent}, failed {report.failed}, already done {report.skipped} "
                   f"of {report.total} ({report.rate:.0f} msg/s){where}")
    if report.failed:
        raise FivefoldError(f"{report.failed} message(s) failed; see the outbox or --json for the replies")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=1025, show_default=True, help="Port (0 picks a free one).")
@click.option("--maildir", type=click.Path(path_type=Path), default=DEFAULT_MAILDIR, show_default=True)
@click.option("--tls", type=click.Choice(["starttls", "tls"]), default=None, is_flag=False,
              flag_value="starttls",
              help="--tls or --tls starttls: require STARTTLS; --tls tls: implicit TLS. The certificate "
                   "is generated.")
@click.option("--auth", default=None, metavar="USER:ENVVAR",
              help="Require AUTH as USER with the password in environment variable ENVVAR.")
@click.option("--count", type=int, default=None, help="Exit after this many messages.")
@click.option("--cert-dir", type=click.Path(path_type=Path), default=None,
              help="Where to write the generated certificate (default: <maildir>/tls).")
@click.option("--discard", is_flag=True, help="Accept and drop messages (a sink for load tests).")
def serve(host: str, port: int, maildir: Path, tls: str | None, auth: str | None, count: int | None,
          cert_dir: Path | None, discard: bool) -> None:
    """Run the local capture server; every message goes into a Maildir."""
    import threading

    from fivefold.mail.server import CaptureServer, DiscardHandler, Received

    credentials = None
    if auth is not None:
        user, sep, env = auth.partition(":")
        if not sep or not user or not env:
            raise UsageError("--auth: expected USER:ENVVAR (the password is read from ENVVAR)")
        from fivefold.mail.secrets import from_env

        credentials = (user, from_env(env, what="--auth password").reveal())
    cert = None
    if tls is not None:
        from fivefold.mail.certs import make_self_signed

        cert = make_self_signed(cert_dir or maildir / "tls")
    done = threading.Event()
    seen = [0]

    def on_message(item: Received) -> None:
        seen[0] += 1
        click.echo(f"{item.key} from={item.mail_from} to={','.join(item.rcpt_tos)} size={item.size} "
                   f"subject={item.subject!r}", err=False)
        sys.stdout.flush()
        if count is not None and seen[0] >= count:
            done.set()

    handler = DiscardHandler() if discard else None
    server = CaptureServer(host=host, port=port, maildir=None if discard else maildir,
                           tls=tls, auth=credentials, cert=cert,  # type: ignore[arg-type]
                           on_message=None if discard else on_message, handler=handler)
    with server:
        extra = f" tls={tls} cafile={server.cafile}" if tls else ""
        click.echo(f"listening on {server.address} maildir={maildir}{extra}")
        sys.stdout.flush()
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            click.echo("stopped", err=True)


@cli.command(name="list")
@click.option("--maildir", type=click.Path(path_type=Path), default=DEFAULT_MAILDIR, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(maildir: Path, as_json: bool) -> None:
    """List the messages in a capture Maildir."""
    from fivefold.mail.maildir import list_messages

    entries = list_messages(maildir)
    if as_json:
        from fivefold._common.jsonout import emit

        emit([e.to_dict() for e in entries])
        return
    for number, entry in enumerate(entries, 1):
        click.echo(f"{number:>4}  {entry.key[:24]:<24}  {entry.sender[:30]:<30}  {entry.subject}")


@cli.command()
@click.argument("ref")
@click.option("--maildir", type=click.Path(path_type=Path), default=DEFAULT_MAILDIR, show_default=True)
@click.option("--raw", is_flag=True, help="Print the message bytes exactly as received.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(ref: str, maildir: Path, raw: bool, as_json: bool) -> None:
    """Show one message (REF: number in `list`, `last`, or a key prefix)."""
    from fivefold.mail.maildir import describe, find, load

    entry = find(maildir, ref)
    if raw:
        sys.stdout.buffer.write(entry.path.read_bytes())
        return
    info = describe(load(entry))
    info["envelope_recipients"] = list(entry.rcpt_tos)
    if as_json:
        from fivefold._common.jsonout import emit

        emit(info)
        return
    for name, value in info["headers"].items():
        click.echo(f"{name}: {value}")
    if entry.rcpt_tos:
        click.echo(f"(envelope: {', '.join(entry.rcpt_tos)})")
    click.echo("")
    click.echo(info["text"].rstrip("\n"))
    click.echo("")
    for part in info["parts"]:
        name = f" {part['filename']}" if part.get("filename") else ""
        size = f" {part['size']} bytes" if "size" in part else ""
        click.echo(f"[{part['type']}{name}{size}]")
