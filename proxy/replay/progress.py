"""How a replay shows its progress on stderr: a rich bar on a terminal, plain periodic lines anywhere else (CI)."""

from __future__ import annotations

import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from proxy.replay.engine import Tally
from proxy.replay.requests import Bad


def counts(tally: Tally) -> str:
    """The live counts: what matched, what differed (findings), what failed."""
    o = tally.outcomes
    parts = [f"{o['match']} match", f"{o['diff']} findings", f"{tally.errors} errors"]
    if o["skipped"]:
        parts.append(f"{o['skipped']} not mirrored")
    if o["dropped"]:
        parts.append(f"{o['dropped']} dropped")
    return " · ".join(parts)


def summary(tally: Tally, run_id: str) -> list[str]:
    """The lines printed at the end: what was replayed, its outcomes, what was left out, how to see the report."""
    rate = tally.sent / tally.elapsed if tally.elapsed > 0 else 0.0
    verb = "interrupted after" if tally.interrupted else "replayed"
    lines = [
        f"{verb} {tally.sent} of {tally.total} requests in {tally.elapsed:.1f} s ({rate:,.1f} req/s): {counts(tally)}"
    ]
    if tally.bad:
        lines.append(f"{tally.bad} entries could not be replayed (listed above)")
    lines += [f"{n} {what}" for what, n in sorted(tally.notes.items())]
    if tally.sent:
        lines.append(f"run {run_id}: shadowdiff report --run {run_id}")
    return lines


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("– req/s" if speed is None else f"{speed:,.0f} req/s", style="progress.data.speed")


class RichView:
    """A progress bar with rate, ETA and the live counts; bad entries print above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def bad(self, item: Bad) -> None:
        self.console.print(f"[red]shadowdiff:[/red] {item.where}: {item.reason}", markup=True, highlight=False)

    def start(self, tally: Tally, title: str) -> None:
        self._progress = Progress(
            TextColumn("[bold]replay[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[counts]}"),
            console=self.console,
            transient=False,
        )
        self.console.print(f"replaying {tally.total} requests from {title}")
        self._task = self._progress.add_task("replay", total=tally.total, counts=counts(tally))
        self._progress.start()

    def update(self, tally: Tally) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=tally.answered, counts=counts(tally))

    def stop(self, tally: Tally) -> None:
        if self._progress is not None:
            self.update(tally)
            self._progress.stop()
            self._progress = None


class PlainView:
    """One line every `every` seconds (and a last one): for logs, where a redrawn bar would be noise."""

    def __init__(self, out: TextIO, every: float = 5.0) -> None:
        self.out = out
        self.every = every
        self._last = 0.0

    def bad(self, item: Bad) -> None:
        self._line(f"shadowdiff: {item.where}: {item.reason}")

    def start(self, tally: Tally, title: str) -> None:
        self._last = time.monotonic()
        self._line(f"replaying {tally.total} requests from {title}")

    def update(self, tally: Tally) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._progress(tally)

    def stop(self, tally: Tally) -> None:
        self._progress(tally)

    def _progress(self, tally: Tally) -> None:
        done, total = tally.answered, tally.total
        elapsed = tally.elapsed
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f"{(total - done) / rate:.0f} s" if rate > 0 and done < total else "–"
        percent = 100.0 * done / total if total else 100.0
        self._line(
            f"replay: {done}/{total} ({percent:.0f}%) · {rate:,.1f} req/s · ETA {eta} · {counts(tally)}",
        )

    def _line(self, text: str) -> None:
        print(text, file=self.out, flush=True)
