"""The one way snnbench prints text: verbatim, never read as rich markup.

Paths, keys, suite names, notes and error messages come from the user or from files; printed as rich
markup, ``[/x]`` in a path raises ``MarkupError`` (after the work was done) and ``[red]`` in a name
restyles the line. Every verb and every bench prints through :func:`say` (and ``warn``/``error``), and
the consoles the command line makes (:func:`verbatim_console`) have markup off, so a table cell or a
title holding such text is shown as written. ``tests/test_user_text.py`` keeps every ``print`` of a
console going through here.
"""

from __future__ import annotations

from typing import Any, Optional

from rich.console import Console
from rich.text import Text


def verbatim_console(*, stderr: bool = False, **options: Any) -> Console:
    """A rich Console that never interprets markup or highlights text (styles come from ``Text``)."""
    return Console(stderr=stderr, markup=False, highlight=False, **options)


def say(console: Any, message: Any, style: Optional[str] = None) -> None:
    """Print ``message`` as written (``style`` colours the whole line). ``console`` is a rich Console,
    or any object with ``print(text)`` (an API caller's logger), which gets the plain string."""
    if isinstance(console, Console):
        console.print(Text(str(message), style=style or ""), highlight=False)
    else:
        console.print(str(message))


def labelled(console: Any, label: str, style: str, message: Any) -> None:
    """``label`` in ``style`` (``warning:``, ``error:``), then ``message`` verbatim."""
    if isinstance(console, Console):
        console.print(Text.assemble((label, style), " ", str(message)), highlight=False)
    else:
        console.print(f"{label} {message}")


def warn(console: Any, message: Any) -> None:
    labelled(console, "warning:", "yellow", message)


def error(console: Any, message: Any) -> None:
    labelled(console, "error:", "bold red", message)
