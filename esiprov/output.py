"""How the ``esiprov`` command prints: tables for people, JSON for scripts, ages and one-line texts.

Piped output has no colour, no wrapping and no trailing blanks, so ``grep`` and
``awk`` see one record per line. On a terminal, a table wider than the screen
keeps what an operator copies (a job id) whole and drops the least useful
columns first (``fit_columns``). Listings that can be long (``state list`` of a
whole fleet) are printed as they are read (``stream_table``, ``stream_json``),
never held whole in memory.
"""
from __future__ import annotations

import itertools
import json
import sys
from typing import Any, Iterable, Mapping, Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: blanks between two columns, as rich draws box.SIMPLE_HEAD without edges
GAP = 3
#: rows a streamed table measures its columns on; later, wider values push their line out of line
SAMPLE = 500


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def stream_json(rows: Iterable[Any]) -> None:
    """A JSON array written one element per line as they come: a fleet's worth of rows never sits in memory."""
    separator = "[\n"
    for row in rows:
        sys.stdout.write(separator + "  " + json.dumps(row))
        separator = ",\n"
    sys.stdout.write("[]\n" if separator == "[\n" else "\n]\n")


def console(stderr: bool = False) -> Console:
    """Rich on a terminal; piped, tables keep their natural width (no wrapping, no colour)."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 4096, highlight=False)


def cell(value: Any) -> str:
    return "" if value is None else str(value)


def natural_widths(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, int]:
    """Each column's width with nothing cut: its longest value or its header."""
    return {c: max([len(c)] + [len(cell(row.get(c))) for row in rows]) for c in columns}


def fit_columns(columns: Sequence[str], widths: Mapping[str, int], width: int, importance: Sequence[str],
                wrapping: Mapping[str, int] | None = None) -> list[str]:
    """The columns (in their order) that fit ``width``: the least important are dropped first.

    ``importance`` lists columns most important first; a column not in it goes first and
    the most important one is never dropped. A column in ``wrapping`` may wrap down to the
    width it maps to, so it counts as that much; every other column keeps its whole width.
    """
    wrapping = wrapping or {}
    shown = list(columns)
    ranked = [c for c in columns if c not in importance] + [c for c in reversed(importance) if c in columns]

    def needed(cols: Sequence[str]) -> int:
        return sum(min(widths[c], wrapping.get(c, widths[c])) for c in cols) + GAP * (len(cols) - 1)

    for column in ranked[:-1]:
        if needed(shown) <= width:
            break
        shown.remove(column)
    return shown


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], title: str | None = None,
          importance: Sequence[str] = (), wrapping: Mapping[str, int] | None = None) -> None:
    """A table; on a terminal narrower than it, columns are dropped (``fit_columns``) before any is cut.

    Columns in ``wrapping`` fold onto several lines; every other column is never cut.
    """
    rows = list(rows)
    out = console()
    if out.is_terminal and importance:
        columns = fit_columns(columns, natural_widths(rows, columns), out.width, importance, wrapping)
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=title, title_justify="left")
    for column in columns:
        wraps = column in (wrapping or {})
        grid.add_column(column.upper(), no_wrap=not wraps, overflow="fold" if wraps else "ellipsis")
    for row in rows:
        grid.add_row(*(Text(cell(row.get(c))) for c in columns))
    if out.is_terminal:
        out.print(grid)
        return
    with out.capture() as captured:  # piped: no padding after the last column, for grep and awk
        out.print(grid)
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))


def stream_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], sample: int = SAMPLE) -> int:
    """Print rows as they come, in columns measured on the first ``sample``; return how many were printed.

    The look of ``table`` (upper-case header, a rule, three blanks between columns) without holding
    the rows: a value wider than any in the sample shifts the rest of its own line only.
    """
    iterator = iter(rows)
    first = list(itertools.islice(iterator, sample))
    if not first:
        return 0
    widths = natural_widths(first, columns)

    def line(values: Sequence[str]) -> str:
        return (" " * GAP).join(v.ljust(widths[c]) for c, v in zip(columns, values)).rstrip()

    print(line([c.upper() for c in columns]))
    print("─" * (sum(widths.values()) + GAP * (len(columns) - 1)))
    printed = 0
    for row in itertools.chain(first, iterator):
        print(line([cell(row.get(c)) for c in columns]))
        printed += 1
    return printed


def age(seconds: float | None) -> str:
    """Seconds as the largest whole unit: 5s, 1m, 2h, 1d."""
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def one_line(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
