"""Output of the command line: tables, progress and messages through rich, or plain text."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from s3cache import AsyncS3Cache

__all__ = ["UI", "dumps", "duration", "load_rich", "plural", "scoped", "size", "where"]

_PLAIN_REFRESH_S: Final = 0.2


def load_rich() -> Any:
    """The ``rich`` package, or None when it is not installed."""
    try:
        import rich.console
        import rich.progress
        import rich.table
        import rich.text
    except ImportError:
        return None
    return rich


class UI:
    """Writes tables, progress and messages through rich, or as plain text without it."""

    def __init__(self, *, plain: bool) -> None:
        self.rich: Any = None if plain else load_rich()
        #: The latest progress of the command, ``label: detail`` (None before any): what a
        #: command stopped by an error or Ctrl-C had done, for its one-line summary.
        self.so_far: str | None = None
        self._out: Any = None
        self._err: Any = None
        if self.rich is not None:
            self._out = self.rich.console.Console(highlight=False)
            self._err = self.rich.console.Console(stderr=True, highlight=False)

    def line(self, text: str = "", style: str | None = None) -> None:
        """One line of text on stdout."""
        if self._out is not None:
            self._out.print(self.rich.text.Text(text, style=style or ""), soft_wrap=True)
        else:
            print(text, file=sys.stdout)

    def note(self, text: str) -> None:
        """One line on stderr: remarks that are not the command's output."""
        if self._err is not None:
            self._err.print(self.rich.text.Text(text, style="dim"), soft_wrap=True)
        else:
            print(text, file=sys.stderr)

    def json(self, value: Any, *, line: bool = False) -> None:
        """A JSON document on stdout, never styled (``line``: on one line, as JSON Lines)."""
        text = json.dumps(value, ensure_ascii=False, default=repr) if line else dumps(value)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def table(
        self,
        columns: Sequence[tuple[str, bool]],
        rows: Sequence[Sequence[str]],
        *,
        header: bool = True,
    ) -> None:
        """A table: ``columns`` are (title, right-aligned); the last column may be long."""
        if self._out is not None:
            table = self.rich.table.Table(
                box=self.rich.box.SIMPLE_HEAD, pad_edge=False, show_header=header
            )
            for title, right in columns:
                table.add_column(title, justify="right" if right else "left", overflow="fold")
            for row in rows:
                table.add_row(*(self.rich.text.Text(cell) for cell in row))
            self._out.print(table)
            return
        widths = [max([len(t)] + [len(r[i]) for r in rows]) for i, (t, _) in enumerate(columns)]

        def fmt(cells: Sequence[str]) -> str:
            parts = [
                c.rjust(w) if right else c.ljust(w)
                for c, w, (_, right) in zip(cells, widths, columns, strict=True)
            ]
            parts[-1] = cells[-1]  # no padding after the last column
            return "  ".join(parts)

        if header:
            print(fmt([t for t, _ in columns]), file=sys.stdout)
        for row in rows:
            print(fmt(row), file=sys.stdout)

    def verdict(self, status: str, name: str, detail: str) -> None:
        """One line of ``check``: a coloured status word, the item, the detail."""
        colour = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}[status]
        if self._out is not None:
            text = self.rich.text.Text()
            text.append(f"{status.upper():<5}", style=colour)
            text.append(f" {name:<21} {detail}")
            self._out.print(text, soft_wrap=True)
        else:
            print(f"{status.upper():<5} {name:<21} {detail}", file=sys.stdout)

    @contextmanager
    def progress(self, label: str) -> Iterator[Callable[[str], None]]:
        """A live progress line on stderr; yields ``update(detail)``, which also keeps the
        latest as :attr:`so_far`. Drawn only on a terminal."""
        draw = self._progress_bar if self._err is not None else self._progress_line

        def remember(detail: str) -> None:
            self.so_far = f"{label}: {detail}"
            shown(detail)

        with draw(label) as shown:
            yield remember

    @contextmanager
    def _progress_bar(self, label: str) -> Iterator[Callable[[str], None]]:
        """rich's progress bar on stderr (it draws only on a terminal)."""
        columns = (
            self.rich.progress.SpinnerColumn(),
            self.rich.progress.TextColumn("{task.description}"),
            self.rich.progress.BarColumn(),
            self.rich.progress.TextColumn("{task.fields[detail]}", markup=False),
            self.rich.progress.TimeElapsedColumn(),
        )
        bar = self.rich.progress.Progress(*columns, console=self._err, transient=True)
        task = bar.add_task(label, total=None, detail="")
        with bar:
            yield lambda detail: bar.update(task, detail=detail)

    @contextmanager
    def _progress_line(self, label: str) -> Iterator[Callable[[str], None]]:
        """One plain line on stderr, redrawn at most every 0.2 s, on a terminal only."""
        if not sys.stderr.isatty():
            yield lambda detail: None
            return
        last = 0.0

        def update(detail: str) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= _PLAIN_REFRESH_S:
                last = now
                sys.stderr.write(f"\r{label}: {detail}\x1b[K")
                sys.stderr.flush()

        try:
            yield update
        finally:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def dumps(value: Any) -> str:
    """``value`` as indented JSON for people (non-ASCII kept, anything else as its repr)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr)


def plural(n: int, one: str, many: str | None = None) -> str:
    """A count and its noun, singular or plural: ``1 entry``, ``2 entries``, ``1,000 objects``.

    ``many`` defaults to ``one`` + ``s``. Every count the command line prints goes through here.
    """
    return f"{n:,} {one if n == 1 else (many if many is not None else one + 's')}"


def size(n: int) -> str:
    """Bytes for people: ``512 B``, ``1.5 KiB``."""
    amount = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float | None) -> str:
    """Seconds for people: ``42s``, ``3m07s``, ``5h02m``, ``12d03h``; ``-`` for None."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    s = int(abs(seconds))
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d{s % 86400 // 3600:02d}h"


def where(cache: AsyncS3Cache) -> str:
    """The cache's place as a URL: ``s3://bucket/prefix/``."""
    return f"s3://{cache.bucket}/{cache.prefix}"


def scoped(cache: AsyncS3Cache, document: dict[str, Any]) -> dict[str, Any]:
    """A JSON document of a command on the prefix, with where it ran."""
    return {"bucket": cache.bucket, "prefix": cache.prefix, **document}
