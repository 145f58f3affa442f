"""Terminal tables: rich when the `cli` extra is installed, aligned plain text otherwise."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], file=None
) -> None:
    file = file or sys.stdout
    cells = [[_fmt(v) for v in row] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(c)), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        print(title, file=file)
        for row in [list(columns), *cells]:
            print(
                "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=file
            )
        return
    # No outer border: tables fit 100 columns (compare's has nine) and read the same.
    table = Table(title=title, title_justify="left", show_edge=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in cells:
        table.add_row(*row)
    # Piped output (logs, CI) is not squeezed to 80 columns.
    width = None if file.isatty() else 200
    Console(file=file, width=width).print(table)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
