"""Mail-merge templates (Jinja2) and CSV rows, validated as a whole before anything is sent.

A template directory holds ``subject.j2`` (or ``subject.txt``), ``text.j2`` and/or
``html.j2``, and optionally ``attach/`` (files attached to every message) and ``inline/``
(images the HTML refers to as ``cid:<file name>``). Templates are compiled once; each
row only fills them in. Missing variables are errors (``StrictUndefined``), and the CSV
must have every column the templates use, checked before the first message goes out.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from email.headerregistry import Address
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fivefold._common.errors import UsageError
from fivefold.mail.addresses import AddressError, parse_address
from fivefold.mail.message import Attachment

if TYPE_CHECKING:
    import jinja2

EMAIL_COLUMNS = ("email", "to", "address")


@dataclass
class MergeTemplate:
    subject: str
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    inline: list[Attachment] = field(default_factory=list)
    source: str = "<template>"

    def __post_init__(self) -> None:
        if self.text is None and self.html is None:
            raise UsageError(f"{self.source}: needs a text.j2 or html.j2 body")
        import jinja2

        self._env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                       keep_trailing_newline=True)
        html_env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=True,
                                      keep_trailing_newline=True)
        self._compiled: dict[str, jinja2.Template] = {}
        self._globals: dict[str, dict[str, Any]] = {}
        self._asts: dict[str, Any] = {}
        self._envs: dict[str, jinja2.Environment] = {}
        self._fills: dict[str, _Fill] = {}
        for name, body, env in (("subject", self.subject, self._env), ("text", self.text, self._env),
                                ("html", self.html, html_env)):
            if body is None:
                continue
            try:
                self._asts[name] = env.parse(body)
                self._envs[name] = env
                fill = _Fill.of(self._asts[name], autoescape=name == "html")
                if fill is None:
                    self._template(name)  # compiled now: errors such as an unknown filter show here
                else:  # compiled only if a row ever needs Jinja (a template of names cannot fail to)
                    self._fills[name] = fill
            except jinja2.TemplateSyntaxError as exc:
                raise UsageError(f"{self.source}: {name} template, line {exc.lineno}: "
                                 f"{exc.message}") from None

    def _template(self, name: str) -> jinja2.Template:
        template = self._compiled.get(name)
        if template is None:
            body = {"subject": self.subject, "text": self.text, "html": self.html}[name]
            assert body is not None  # only names with a parsed body get here
            template = self._compiled[name] = self._envs[name].from_string(body)
            # Template.render() merges the globals (a ChainMap, iterated in Python) into every
            # row's context; merging them once here saves about a fifth of a render.
            self._globals[name] = dict(template.globals)
        return template

    def _render(self, name: str, row: dict[str, str]) -> str:
        """``Template.render(row)`` with the globals merged once (same output and errors)."""
        fill = self._fills.get(name)
        if fill is not None:
            try:
                return fill.render(row)
            except KeyError:  # a variable missing from the row: Jinja says which, below
                pass
        template = self._template(name)
        context = dict(self._globals[name])
        context.update(row)
        try:
            return str(template.environment.concat(  # type: ignore[attr-defined]
                template.root_render_func(template.new_context(context, shared=True))))
        except Exception:
            return str(template.environment.handle_exception())

    @classmethod
    def load(cls, directory: Path) -> MergeTemplate:
        if not directory.is_dir():
            raise UsageError(f"--template {directory}: not a directory")

        def read(*names: str) -> str | None:
            for name in names:
                path = directory / name
                if path.exists():
                    try:
                        return path.read_text(encoding="utf-8")
                    except (OSError, UnicodeDecodeError) as exc:
                        raise UsageError(f"{path}: cannot read template: {exc}") from None
            return None

        subject = read("subject.j2", "subject.txt")
        if subject is None:
            raise UsageError(f"--template {directory}: no subject.j2")
        attach = sorted(p for p in (directory / "attach").glob("*") if p.is_file())
        inline = sorted(p for p in (directory / "inline").glob("*") if p.is_file())
        return cls(subject=subject.strip(), text=read("text.j2", "text.txt"),
                   html=read("html.j2", "html.html"),
                   attachments=[Attachment.from_path(p) for p in attach],
                   inline=[Attachment.from_path(p, cid=p.name) for p in inline], source=str(directory))

    @property
    def variables(self) -> set[str]:
        from jinja2 import meta

        names: set[str] = set()
        for ast in self._asts.values():
            names |= meta.find_undeclared_variables(ast)
        return names

    def render_subject(self, row: dict[str, str]) -> str:
        import jinja2

        try:
            return self._render("subject", row).strip()
        except jinja2.TemplateError as exc:
            raise UsageError(f"{self.source}: cannot render for {row.get('email', '?')}: {exc}") from None

    def render_bodies(self, row: dict[str, str]) -> tuple[str | None, str | None]:
        import jinja2

        try:
            text = self._render("text", row) if "text" in self._asts else None
            html = self._render("html", row) if "html" in self._asts else None
        except jinja2.TemplateError as exc:
            raise UsageError(f"{self.source}: cannot render for {row.get('email', '?')}: {exc}") from None
        return text, html

    def render(self, row: dict[str, str]) -> tuple[str, str | None, str | None]:
        import jinja2

        try:
            subject = self._template("subject").render(row).strip()
            text = self._template("text").render(row) if "text" in self._asts else None
            html = self._template("html").render(row) if "html" in self._asts else None
        except jinja2.TemplateError as exc:
            raise UsageError(f"{self.source}: cannot render for {row.get('email', '?')}: {exc}") from None
        return subject, text, html


class _Fill:
    """A template that is only text and ``{{ name }}`` outputs, rendered as a join.

    Most merge templates are just that; Jinja's render then costs a new context, a
    generator and a name lookup per variable, several times the substitution itself. The
    output is the one Jinja's compiled code yields for such a template: ``str(value)``,
    or ``markupsafe.escape(value)`` when autoescaping (the HTML template).
    """

    def __init__(self, pieces: list[str], slots: list[tuple[int, str]], autoescape: bool) -> None:
        self.pieces = pieces
        self.slots = slots
        if autoescape:
            from markupsafe import escape

            self.convert: Callable[[Any], str] = escape
        else:
            self.convert = str

    @classmethod
    def of(cls, ast: Any, *, autoescape: bool) -> _Fill | None:
        """The fill for a parsed template, or ``None`` when it uses anything else (filters,
        tags, expressions, attribute lookups): Jinja renders those."""
        from jinja2 import nodes

        pieces: list[str] = []
        slots: list[tuple[int, str]] = []
        for statement in ast.body:
            if not isinstance(statement, nodes.Output):
                return None
            for node in statement.nodes:
                if type(node) is nodes.TemplateData:
                    pieces.append(node.data)
                elif type(node) is nodes.Name and node.ctx == "load":
                    slots.append((len(pieces), node.name))
                    pieces.append("")
                else:
                    return None
        return cls(pieces, slots, autoescape)

    def render(self, row: dict[str, Any]) -> str:
        """Raises ``KeyError`` for a name the row lacks (a global or an error: Jinja's call)."""
        out = self.pieces.copy()
        convert = self.convert
        for index, name in self.slots:
            out[index] = convert(row[name])
        return "".join(out)


def read_rows(path: Path, template: MergeTemplate) -> list[dict[str, str]]:
    """All rows of the CSV, checked: the email column and every template variable (each
    address is parsed once, by :class:`fivefold.mail.merge.MergePlan`, with :func:`row_address`)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "") for k, v in row.items()} for row in reader]
    except OSError as exc:
        raise UsageError(f"--csv {path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"--csv {path}: not a UTF-8 CSV file: {exc}") from None
    return check_rows(rows, columns, template, source=str(path))


def email_column(columns: list[str]) -> str | None:
    return next((c for c in EMAIL_COLUMNS if c in columns), None)


def check_rows(rows: list[dict[str, str]], columns: list[str], template: MergeTemplate, *,
               source: str = "rows") -> list[dict[str, str]]:
    column = email_column(columns)
    if column is None:
        raise UsageError(f"{source}: no email column (expected one of: {', '.join(EMAIL_COLUMNS)})")
    missing = sorted(template.variables - set(columns))
    if missing:
        raise UsageError(f"{source}: the template uses column(s) missing from the CSV: {', '.join(missing)}")
    if not rows:
        raise UsageError(f"{source}: no rows")
    for row in rows:
        row.setdefault("email", row.get(column, ""))
    return rows


def row_address(row: dict[str, str], column: str, name_column: str | None, *, where: str) -> Address:
    """The row's recipient, with the name column as display name unless the address has one."""
    name = row.get(name_column, "").strip() if name_column else ""
    try:
        return parse_address(row.get(column, ""), field=where, name=name)
    except AddressError as exc:
        raise UsageError(str(exc)) from None
