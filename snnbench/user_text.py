"""The one way snnbench prints text: verbatim, never read as rich markup.

Paths, keys, suite names, notes and error messages come from the user or from files; printed as rich
markup, ``[/x]`` in a path raises ``MarkupError`` (after the work was done) and ``[red]`` in a name
restyles the line. Every verb and every bench prints through :func:`say` (and ``warn``/``error``), and
the consoles the command line makes (:func:`verbatim_console`) have markup off, so a table cell or a
title holding such text is shown as written. ``tests/test_user_text.py`` keeps every ``print`` of a
console going through here.

Rich is imported lazily: a bench may run where it is absent and then prints plain lines.
"""

from __future__ import annotations

from typing import Any, Optional


def verbatim_console(*, stderr: bool = False, **options: Any) -> Any:
    """A rich Console that never interprets markup or highlights text (styles come from ``Text``)."""
    from rich.console import Console

    return Console(stderr=stderr, markup=False, highlight=False, **options)


def _text_class(console: Any) -> Any:
    """rich's ``Text`` when ``console`` is a rich Console; None for a plain printer (or no rich)."""
    try:
        from rich.console import Console
        from rich.text import Text
    except ImportError:  # a bench on a machine without rich: plain print
        return None
    return Text if isinstance(console, Console) else None


def say(console: Any, message: Any, style: Optional[str] = None) -> None:
    """Print ``message`` as written (``style`` colours the whole line)."""
    text = _text_class(console)
    if text is None:
        console.print(str(message))
    else:
        console.print(text(str(message), style=style or ""), highlight=False)


def labelled(console: Any, label: str, style: str, message: Any) -> None:
    """``label`` in ``style`` (``warning:``, ``error:``), then ``message`` verbatim."""
    text = _text_class(console)
    if text is None:
        console.print(f"{label} {message}")
    else:
        console.print(text.assemble((label, style), " ", str(message)), highlight=False)


def warn(console: Any, message: Any) -> None:
    labelled(console, "warning:", "yellow", message)


def error(console: Any, message: Any) -> None:
    labelled(console, "error:", "bold red", message)
