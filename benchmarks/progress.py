"""Live progress: a rich progress bar when rich is importable and stdout is a terminal, else
plain lines."""

from __future__ import annotations

import sys
from typing import Any, Protocol

from benchmarks.metrics import CellResult
from benchmarks.workloads import size_label

__all__ = ["Progress", "make_progress"]


class Progress(Protocol):
    """What the runner reports to."""

    def start(self, total: int) -> None: ...
    def note(self, text: str) -> None: ...
    def cell_started(self, what: str) -> None: ...
    def cell_done(self, result: CellResult) -> None: ...
    def stop(self) -> None: ...


def summary(r: CellResult) -> str:
    """One line per finished cell."""
    err = f", {r.errors} errors" if r.errors else ""
    return (
        f"{r.contender:<16} {r.workload:<9} {size_label(r.size):>5} c={r.concurrency:<3} "
        f"{r.ops_per_s:8.0f} ops/s  p50 {r.p50_ms:6.1f} ms  CPU {r.cpu_us_per_op:6.0f} us/op{err}"
    )


class PlainProgress:
    """Numbered lines on stderr-free stdout; works in CI logs and pipes."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0

    def start(self, total: int) -> None:
        self.total = total

    def note(self, text: str) -> None:
        print(text, flush=True)

    def cell_started(self, what: str) -> None:
        pass

    def cell_done(self, result: CellResult) -> None:
        self.done += 1
        print(f"[{self.done:>3}/{self.total}] {summary(result)}", flush=True)

    def stop(self) -> None:
        pass


class RichProgress:
    """A rich progress bar with the current cell, finished cells printed above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichBar

        self.console = Console()
        self.bar = RichBar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.task: Any = None

    def start(self, total: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("starting", total=total)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def cell_started(self, what: str) -> None:
        self.bar.update(self.task, description=what)

    def cell_done(self, result: CellResult) -> None:
        self.console.print(summary(result), markup=False, highlight=False)
        self.bar.advance(self.task)

    def stop(self) -> None:
        self.bar.stop()


def make_progress(plain: bool) -> Progress:
    """Rich when asked for, importable and on a terminal; plain lines otherwise."""
    if not plain and sys.stdout.isatty():
        try:
            return RichProgress()
        except ImportError:
            pass
    return PlainProgress()
