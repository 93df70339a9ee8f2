"""fivefold.mail against the usual ways of sending, on the same local sink, in one run.

1,000 personalised messages (text + HTML, name and number per recipient) to one SMTP sink
running in its own process (so the client's CPU is measured alone):

* fivefold ``merge`` (Jinja2 rendered once, per-recipient fill, 8 pooled connections, PIPELINING:
  one write per message), and the same with ``pipelining=False`` (aiosmtplib, one command per
  round trip), to show what pipelining is worth, and with an outbox file (the journal's cost),
* fivefold ``send_many`` with ``Message`` objects (stdlib composing, 8 pooled connections),
* the tutorial pattern: ``MIMEMultipart`` + a new ``smtplib`` connection per message,
* Django's SMTP backend ``send_messages`` (settings configured in-process),
* yagmail (one connection, ``send`` per message), redmail (one connection, ``with sender``).

Then a 25 MB attachment sent by fivefold in a fresh process, reporting its peak RSS.
Every contender runs ``--rounds`` times (default 3), interleaved; the medians are printed.
Run: ``.venv/bin/python benchmarks/mail.py [--count 1000] [--rounds 3]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SENDER = "News <news@example.org>"
TEXT = "Dear {name},\n\nyour number this week is {n}.\n\n-- the fivefold team\n"
HTML = "<p>Dear <b>{name}</b>,</p><p>your number this week is <i>{n}</i>.</p><p>-- the fivefold team</p>"


# -- the sink (run as a subprocess: `python benchmarks/mail.py --sink`) ------------------------
class SinkProtocol(asyncio.Protocol):
    """A lean SMTP sink: replies per command line, counts DATA up to CRLF.CRLF, stores nothing.

    A bare Protocol rather than streams, so the sink spends as little CPU per command as it
    can and the benchmark measures the clients. It advertises PIPELINING as Postfix and Exim
    do, and answers commands that arrive together in order (RFC 2920).
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""
        self.in_data = False
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    self.buffer = self.buffer[-4:]
                    return
                self.buffer = self.buffer[end + 5:]
                self.in_data = False
                self.transport.write(b"250 2.0.0 ok\r\n")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.transport.write(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                                     b"250-SIZE 500000000\r\n250 HELP\r\n")
            elif verb == b"DATA":
                self.in_data = True
                self.buffer = b"\r\n" + self.buffer  # so an empty body still ends at CRLF.CRLF
                self.transport.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                self.transport.write(b"221 bye\r\n")
                self.transport.close()
                return
            else:
                self.transport.write(b"250 ok\r\n")


def run_sink() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(SinkProtocol, "127.0.0.1", 0, backlog=512)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


def start_sink() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, __file__, "--sink"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"127.0.0.1:{port}"


# -- the contenders --------------------------------------------------------------------------
def rows(count: int) -> list[dict[str, str]]:
    return [{"email": f"user{i}@example.org", "name": f"User Nr {i}", "n": str(i * 7)} for i in range(count)]


def fivefold_merge(server: str, data: list[dict[str, str]], *, pipelining: bool = True,
                   outbox: Path | None = None) -> None:
    from fivefold.mail.merge import merge
    from fivefold.mail.templates import MergeTemplate

    template = MergeTemplate(subject="Your number, {{ name }}", text=TEXT.replace("{name}", "{{ name }}")
                             .replace("{n}", "{{ n }}"), html=HTML.replace("{name}", "{{ name }}")
                             .replace("{n}", "{{ n }}"))
    report = merge(template, data, sender=SENDER, server=server, concurrency=8, pipelining=pipelining,
                   outbox=outbox)
    assert not isinstance(report, list) and report.sent == len(data), report


def fivefold_merge_unpipelined(server: str, data: list[dict[str, str]]) -> None:
    fivefold_merge(server, data, pipelining=False)


def fivefold_merge_outbox(server: str, data: list[dict[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fivefold_merge(server, data, outbox=Path(tmp) / "outbox.sqlite")


def fivefold_send_many(server: str, data: list[dict[str, str]]) -> None:
    from fivefold.mail import Message, send_many

    messages = [Message(sender=SENDER, to=[f"{r['name']} <{r['email']}>"],
                        subject=f"Your number, {r['name']}", text=TEXT.format(**r), html=HTML.format(**r))
                for r in data]
    report = send_many(messages, server=server, concurrency=8)
    assert report.sent == len(data), report


def tutorial_smtplib(server: str, data: list[dict[str, str]]) -> None:
    import smtplib
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    host, port = server.split(":")
    for r in data:
        msg = MIMEMultipart("alternative")
        msg["Subject"] = f"Your number, {r['name']}"
        msg["From"] = SENDER
        msg["To"] = r["email"]
        msg.attach(MIMEText(TEXT.format(**r), "plain"))
        msg.attach(MIMEText(HTML.format(**r), "html"))
        # As the tutorials write it (smtplib then resolves the local FQDN for EHLO on each connection).
        with smtplib.SMTP(host, int(port), timeout=30) as smtp:
            smtp.sendmail("news@example.org", [r["email"]], msg.as_string())


def django_send_messages(server: str, data: list[dict[str, str]]) -> None:
    import django
    from django.conf import settings

    host, port = server.split(":")
    if not settings.configured:
        settings.configure(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST=host,
                           EMAIL_PORT=int(port), EMAIL_USE_TLS=False, EMAIL_TIMEOUT=30,
                           DEFAULT_CHARSET="utf-8")
        django.setup()
    from django.core.mail import EmailMultiAlternatives, get_connection

    messages = []
    for r in data:
        message = EmailMultiAlternatives(subject=f"Your number, {r['name']}", body=TEXT.format(**r),
                                         from_email=SENDER, to=[f"{r['name']} <{r['email']}>"])
        message.attach_alternative(HTML.format(**r), "text/html")
        messages.append(message)
    sent = get_connection().send_messages(messages)
    assert sent == len(data)


def yagmail_send(server: str, data: list[dict[str, str]]) -> None:
    import yagmail

    host, port = server.split(":")
    client = yagmail.SMTP(user="news@example.org", host=host, port=int(port), smtp_starttls=False,
                          smtp_ssl=False, smtp_skip_login=True, soft_email_validation=False)
    try:
        for r in data:
            client.send(to=r["email"], subject=f"Your number, {r['name']}",
                        contents=[TEXT.format(**r), HTML.format(**r)])
    finally:
        client.close()


def redmail_send(server: str, data: list[dict[str, str]]) -> None:
    from redmail.email.sender import EmailSender

    host, port = server.split(":")
    sender = EmailSender(host=host, port=int(port), use_starttls=False)
    with sender:  # keeps one connection open for every send in the block
        for r in data:
            sender.send(subject=f"Your number, {r['name']}", sender=SENDER, receivers=[r["email"]],
                        text=TEXT.format(**r), html=HTML.format(**r))


CONTENDERS: list[tuple[str, Callable[[str, list[dict[str, str]]], None]]] = [
    ("fivefold merge (8 conns)", fivefold_merge),
    ("fivefold merge + outbox file", fivefold_merge_outbox),
    ("fivefold merge, no PIPELINING", fivefold_merge_unpipelined),
    ("fivefold send_many (8 conns)", fivefold_send_many),
    ("tutorial smtplib (conn/msg)", tutorial_smtplib),
    ("django send_messages", django_send_messages),
    ("yagmail", yagmail_send),
    ("redmail", redmail_send),
]


def _cpu_of(pid: int) -> float:
    """User + system seconds of another process (the sink), from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(func: Callable[[str, list[dict[str, str]]], None], server: str, data: list[dict[str, str]],
            sink_pid: int) -> tuple[float, float, float]:
    """Messages per second, client CPU µs per message, sink CPU µs per message."""
    sink_started = _cpu_of(sink_pid)
    started_cpu = time.process_time()
    started = time.perf_counter()
    func(server, data)
    wall = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    sink = _cpu_of(sink_pid) - sink_started
    return len(data) / wall, cpu / len(data) * 1e6, sink / len(data) * 1e6


BIG_SCRIPT = """
import json, sys
from pathlib import Path
import aiosmtplib
from fivefold.mail import Attachment, Message, send

def hwm():
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))

base = hwm()
msg = Message(sender="a@example.org", to=["b@example.org"], subject="25 MB", text="attached",
              attachments=[Attachment.from_path(Path(sys.argv[2]))])
assert send(msg, server=sys.argv[1], timeout=120).ok
print(json.dumps({"base_kib": base, "peak_kib": hwm()}))
"""


def big_attachment(server: str, size: int = 25_000_000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.bin"
        path.write_bytes(os.urandom(size))
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        done = subprocess.run([sys.executable, "-c", BIG_SCRIPT, server, str(path)], capture_output=True,
                              text=True, timeout=300, env=env, check=True)
    figures = json.loads(done.stdout)
    return {"peak_mb": figures["peak_kib"] / 1024, "base_mb": figures["base_kib"] / 1024,
            "ratio": figures["peak_kib"] * 1024 / size}


PEERS = ("tutorial smtplib (conn/msg)", "django send_messages", "yagmail", "redmail")
OURS = ("fivefold merge (8 conns)", "fivefold send_many (8 conns)")
CPU_TARGET_US = 200.0


def report_ratios(results: dict[str, tuple[float, float, float]]) -> None:
    """Each fivefold path against each peer (msg/s and CPU), then the issue's targets."""
    for name in OURS:
        mine = results.get(name)
        if mine is None:
            continue
        print()
        for other, (rate, cpu, _) in results.items():
            if other != name and (other in PEERS or (name == OURS[0] and other.startswith("fivefold"))):
                print(f"{name:<30} vs {other:<30} {mine[0] / rate:>6.1f}x msg/s   "
                      f"{cpu / mine[1]:>6.1f}x less CPU")
    print()
    for name in OURS:
        if name in results:
            cpu = results[name][1]
            verdict = "met" if cpu < CPU_TARGET_US else "NOT met"
            print(f"target: {name} client CPU {cpu:.0f} µs/msg < {CPU_TARGET_US:.0f} µs: {verdict}")
    mine = results.get(OURS[0])
    for other, (rate, _, _) in results.items():
        if mine is not None and other in PEERS:
            need = 5.0 if other.startswith("tutorial") else 1.5
            verdict = "met" if mine[0] / rate >= need else "NOT met"
            print(f"target: fivefold merge >= {need:g}x the msg/s of {other}: {mine[0] / rate:.1f}x, "
                  f"{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--only", default=None, help="comma-separated substrings of contender names")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are printed")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink()
        return
    data = rows(args.count)
    proc, server = start_sink()
    try:
        # Import everything first: import time is not sending time.
        import django  # noqa: F401
        import redmail  # noqa: F401
        import yagmail  # noqa: F401

        import fivefold.mail.bulk
        import fivefold.mail.merge  # noqa: F401

        fivefold_merge(server, rows(20))  # warm-up (first-use imports of aiosmtplib, jinja2)
        chosen = [(name, func) for name, func in CONTENDERS
                  if not args.only or any(part in name for part in args.only.split(","))]
        # Rounds interleave the contenders, and each figure is the median of its rounds, so a
        # burst of load from other processes does not land on one contender only.
        rounds: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in chosen}
        for _ in range(args.rounds):
            for name, func in chosen:
                rounds[name].append(measure(func, server, data, proc.pid))
        results: dict[str, tuple[float, float, float]] = {}
        for name, figures in rounds.items():
            rate, cpu, sink_cpu = (statistics.median(column) for column in zip(*figures, strict=True))
            results[name] = (rate, cpu, sink_cpu)
            print(f"{name:<30} {rate:>8.0f} msg/s   client {cpu:>6.0f} µs CPU/msg   "
                  f"sink {sink_cpu:>5.0f} µs/msg", flush=True)
        report_ratios(results)
        big = big_attachment(server)
        print(f"\n25 MB attachment: peak RSS {big['peak_mb']:.0f} MB (interpreter + libraries alone "
              f"{big['base_mb']:.0f} MB) = {big['ratio']:.2f}x the attachment size")
        load = os.getloadavg()
        print(f"(machine load average {load[0]:.1f} on {os.cpu_count()} CPUs; {args.count} messages each; "
              f"medians of {args.rounds} interleaved rounds)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
