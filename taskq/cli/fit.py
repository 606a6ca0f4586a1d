"""Tables that fit the output's width without ever cutting an id: other columns give way.

Ids (task ids, dead letter ids) and names (queues, workers) are copied from the tables into
the next command, so their columns never wrap, fold or end in ``…``. When the width is short,
the other columns first wrap, then the least useful are dropped (a caption says which);
only when the ids alone are wider than the output is the table wider than it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from taskq.cli.visible import visible

Cell = str | Text

_MIN_WIDTH = 6
"""The narrowest a column that gives way is made (or its longest header word, if longer)."""


@dataclass(frozen=True, slots=True)
class Col:
    """A column: ``whole`` for ids and names (never cut, never left out); the others are left
    out when the width is short, the highest ``drop`` first (0: the last to go; ties: the
    rightmost first); ``right`` for numbers."""

    header: str
    drop: int = 0
    whole: bool = False
    right: bool = False


def cell_text(cell: Cell) -> Text:
    """A cell as rich Text: a string is never read as markup, and its control characters are
    shown as escapes (:func:`taskq.cli.visible.visible`); Text (made by the CLI) is kept."""
    return cell if isinstance(cell, Text) else Text(visible(cell))


def _longest_word(text: str) -> int:
    return max((cell_len(w) for w in text.split()), default=0)


def table_width(widths: Iterable[int]) -> int:
    """Columns of a table whose column contents are ``widths`` wide: one space of padding on
    each side of every column and a border between and around them."""
    ws = list(widths)
    return sum(ws) + 3 * len(ws) + 1


def fitted(title: str, cols: Sequence[Col], rows: Sequence[Sequence[Cell]], *, width: int,
           empty: str = "") -> Table:
    """A table of ``rows`` no wider than ``width`` (unless its ids alone are), with every
    ``whole`` cell on one line, in full."""
    texts = [[cell_text(c) for c in row] for row in rows]
    natural = [max([cell_len(col.header), *(row[i].cell_len for row in texts)])
               for i, col in enumerate(cols)]
    least = [
        max([_longest_word(col.header), *(row[i].cell_len for row in texts)])
        if col.whole else min(natural[i], max(_longest_word(col.header), _MIN_WIDTH))
        for i, col in enumerate(cols)
    ]
    kept = list(range(len(cols)))
    while table_width(least[i] for i in kept) > width:
        droppable = [i for i in kept if not cols[i].whole]
        if not droppable:
            break
        kept.remove(max(droppable, key=lambda i: (cols[i].drop, i)))
    t = Table(title=title, title_justify="left")
    for i in kept:
        col = cols[i]
        if col.whole:
            t.add_column(col.header, no_wrap=True, min_width=least[i])
        else:
            t.add_column(col.header, justify="right" if col.right else "left")
    for row in texts:
        t.add_row(*(row[i] for i in kept))
    needed = table_width(least[i] for i in kept)
    if needed > width:
        t.width = needed  # only the ids are left and they are wider than the output
    notes = [empty] if empty and not rows else []
    hidden = [cols[i].header for i in range(len(cols)) if i not in kept]
    if hidden:
        notes.append(f"too narrow for: {', '.join(hidden)} (widen the terminal, or --json)")
    if notes:
        t.caption = "; ".join(notes)
    return t


def details(title: str, rows: Sequence[tuple[str, Cell]], *, whole: Iterable[str] = ()
            ) -> Table:
    """A two-column table of field and value; the values of the fields named in ``whole``
    (ids) are never folded, longer values fold."""
    keep = set(whole)
    widest = max((cell_text(v).cell_len for name, v in rows if name in keep), default=0)
    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold", min_width=widest or None)
    for name, value in rows:
        t.add_row(name, cell_text(value))
    return t
