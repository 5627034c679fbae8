"""The console that text output (tables of runs, pipelines, costs) is printed on.

On a terminal, rich uses the terminal's width. Piped into a file or another program it would
fall back to 80 columns and wrap or cut every wide table (ids, timestamps), so there it gets a
fixed width that fits the widest table we print; scripts should read ``--format json`` anyway.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

PIPED_WIDTH = 200


def stdout_console(**options: Any) -> Console:
    """A stdout console: the terminal's width, or :data:`PIPED_WIDTH` when output is not a terminal."""
    console = Console(**options)
    return console if console.is_terminal else Console(width=PIPED_WIDTH, **options)


__all__ = ["PIPED_WIDTH", "stdout_console"]
