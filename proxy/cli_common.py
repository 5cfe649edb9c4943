"""What every `shadowdiff` command shares: one-line errors, help that keeps its words, strict input, terminal tables.

- Errors: one line on stderr, `shadowdiff <command>: <what went wrong>`, exit code 2 (`ERROR`); usage errors from
  click (a bad `--format`, a missing argument) get the same treatment through `ShadowdiffGroup`. Exit code 1 is left
  for a negative answer (`check`: not ready; a declined confirmation), 130 for Ctrl-C.
- Help: plain click help (no rich markup, so `[readiness]` and `[default: ...]` stay words), arguments shown as
  SERVICE, option values as TEXT / INTEGER / [a|b], command summaries never cut with "...".
- Input: `parse_rate` ("5%" and "0.05", never a bare "5"); `choice_option` for case-insensitive choices (`--to V2`).
- Output: `console` and `table`: rich tables that fold long cells instead of cutting them with an ellipsis.

Commands added later use these the same way: `Annotated[float, typer.Option(parser=parse_rate, metavar="RATE")]`,
`with one_line_errors(): ...`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from typer import _click as click  # typer >= 0.29 vendors click: its commands, contexts and errors are these classes
from typer.core import TyperArgument, TyperGroup, TyperOption

from proxy.errors import ShadowdiffError

ERROR = 2
"""Exit code of every error (bad input, unreachable admin plane, missing store)."""
NO = 1
"""Exit code of a negative answer: `check` not ready, a confirmation declined."""
INTERRUPTED = 130
PIPE_WIDTH = 150
"""Width of tables written to a pipe or a file: wide enough not to fold, a terminal gets its own width."""


# ---------------------------------------------------------------- errors


def fail(message: str, code: int = ERROR) -> NoReturn:
    """Print `shadowdiff: message` on stderr and exit with `code`."""
    typer.echo(f"shadowdiff: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def one_line_errors(code: int = ERROR) -> Iterator[None]:
    """Our own errors and bad values become one line on stderr; Ctrl-C exits quietly with 130."""
    try:
        yield
    except ShadowdiffError as exc:
        fail(str(exc), code)
    except ValueError as exc:  # the apps' settings objects validate with ValueError
        fail(str(exc), code)
    except OSError as exc:  # a file we were asked to write or read
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}", code)
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED) from None


def _one_line(exc: click.exceptions.ClickException) -> str:
    message = " ".join(exc.format_message().replace("Value error, ", "").split())
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if isinstance(ctx, click.Context) else "shadowdiff"
    hint = f" (see {where} --help)" if isinstance(exc, click.exceptions.UsageError) else ""
    return f"{where}: {message}{hint}"


# ---------------------------------------------------------------- help that keeps its words


_PLAIN_TYPES = {
    "str": "TEXT",
    "int": "INTEGER",
    "int range": "INTEGER",
    "float": "NUMBER",
    "float range": "NUMBER",
    "path": "PATH",
    "bool": "BOOLEAN",
}


def _plain_type(label: str | None) -> str | None:
    """Typer's "<int range>" or "<v1|v2>" as click's INTEGER or [v1|v2]."""
    if not label:
        return label
    inner = label.strip("<>")
    if "|" in inner:
        return f"[{inner}]"
    return _PLAIN_TYPES.get(inner, inner.upper())


class _Argument(TyperArgument):
    """SERVICE in the usage line and the help, not {service} and "service <str>"."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        name = self.metavar or (self.name or "").upper()
        name = name if self.required else f"[{name}]"
        return [name + ("..." if self.nargs != 1 else "")]

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None


class _Option(TyperOption):
    def display_type_rich(self, ctx: click.Context) -> str | None:
        if self.metavar is not None:
            return self.metavar
        return _plain_type(super().display_type_rich(ctx))


def _tidy(command: click.Command) -> None:
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
            if param.metavar is None:
                param.metavar = (param.name or "").upper()
        elif type(param) is TyperOption:
            param.__class__ = _Option


class ShadowdiffGroup(TyperGroup):
    """The `shadowdiff` group: plain help, whole command summaries, one-line errors with exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            _tidy(command)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args, prog_name, complete_var, standalone_mode=False, windows_expand_args=windows_expand_args, **extra
            )
        except click.exceptions.NoArgsIsHelpError as exc:
            if not standalone_mode:
                raise
            typer.echo(exc.format_message())  # `shadowdiff` alone: the help, as asked
            sys.exit(0)
        except click.exceptions.ClickException as exc:
            if not standalone_mode:
                raise
            typer.echo(_one_line(exc), err=True)
            sys.exit(ERROR)
        except typer.Abort:
            if not standalone_mode:
                raise
            typer.echo("shadowdiff: aborted", err=True)
            sys.exit(NO)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


def new_app(help: str) -> typer.Typer:
    """The `shadowdiff` Typer app with the behaviour above."""
    return typer.Typer(
        cls=ShadowdiffGroup,
        name="shadowdiff",
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )


# ---------------------------------------------------------------- strict input


def parse_rate(value: str) -> float:
    """A rate as a fraction below 1 ("0.05") or a percentage ("5%"); a bare "5" is refused, not read as 500%."""
    text = value.strip()
    percent = text.endswith("%")
    try:
        number = float(text[:-1] if percent else text)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a rate: write a fraction (0.05) or a percentage (5%)") from None
    if number != number or number < 0:
        raise typer.BadParameter(f"{value!r} is not a rate between 0 and 100%")
    if percent and number > 100:
        raise typer.BadParameter(f"{value!r} is more than 100%")
    if not percent and (number > 1 or (number == 1 and "." not in text)):
        raise typer.BadParameter(
            f"{value!r} is ambiguous: a bare number is a fraction, so write {text}% or {number / 100:g}"
        )
    return number / 100 if percent else number


def choice_option(*param_decls: str, **kwargs: Any) -> Any:
    """`typer.Option` for a `Literal[...]` (or Enum) value, matched case-insensitively: `--to V2` is `v2`."""
    return typer.Option(*param_decls, case_sensitive=False, **kwargs)


def interactive() -> bool:
    """Whether someone can answer a question: stdin is a terminal."""
    return sys.stdin.isatty()


def confirm(question: str, *, force: bool, refusal: str) -> None:
    """Go on when `force`, or when the user says yes; a "no" exits 1, no terminal to ask exits 2 with `refusal`."""
    if force:
        return
    if not interactive():
        fail(refusal)
    if not typer.confirm(question, default=False, err=True):
        fail("nothing changed", NO)


# ---------------------------------------------------------------- tables that fit


def console(width: int | None = None, file: Any = None) -> Console:
    """A console of `width` columns; by default the terminal's (or $COLUMNS), PIPE_WIDTH into a pipe or a file."""
    out = Console(file=file, width=width)
    if width is None and not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = max(out.width, PIPE_WIDTH)
    return out


def table(title: str | None = None) -> Table:
    """A compact rich table (one space between columns, a rule under the header) whose cells fold, never end in
    an ellipsis."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 0), show_edge=False)


def text_column(t: Table, header: str, *, min_width: int | None = None, ratio: int | None = None) -> None:
    """A left-aligned column that wraps and folds: a long endpoint takes two lines, never "POST /api/ord…"."""
    t.add_column(header, overflow="fold", min_width=min_width, ratio=ratio)


def number_column(t: Table, header: str) -> None:
    """A right-aligned column that keeps its numbers whole."""
    t.add_column(header, justify="right", no_wrap=True, overflow="fold")
