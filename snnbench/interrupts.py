"""Ctrl-C ends a command even where a library catches the KeyboardInterrupt it raised.

Python raises KeyboardInterrupt wherever the main thread happens to be, and the code in between may
catch it: pydantic wraps it in a ``PydanticSerializationError`` that keeps no ``__cause__``, other
code swallows it and carries on with half its work. A runner that treats every ``Exception`` of a cell
as that cell's failure would then record a failed (or a truncated) cell and start the next one, and
the run would end with exit 1 long after the user asked it to stop. So while a command runs, SIGINT
also sets a flag (:func:`watching`); every handler that turns an exception into a failure it reports
and goes on from (a failed cell, a skipped peer, an untimed option) first calls
:func:`raise_if_interrupt`, and the executors call :func:`check` before and after each cell.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

_requested = threading.Event()


@contextmanager
def watching() -> Iterator[None]:
    """While the block runs, SIGINT is noted as well as raised (as Python's own handler raises it).
    Where SIGINT is not Python's default (ignored, as in pytest-xdist's workers, or a caller's own
    handler) or this is not the main thread, nothing changes."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return

    active = True  # a copy of this handler that outlives the block (saved and put back) notes nothing

    def note_and_raise(signum: int, frame: object) -> None:
        if active:
            _requested.set()
        signal.default_int_handler(signum, frame)

    _requested.clear()
    signal.signal(signal.SIGINT, note_and_raise)
    try:
        yield
    finally:
        active = False
        if signal.getsignal(signal.SIGINT) is note_and_raise:  # a handler set meanwhile stays
            signal.signal(signal.SIGINT, signal.default_int_handler)
        _requested.clear()


def requested() -> bool:
    """Whether SIGINT arrived since :func:`watching` began, whatever became of its KeyboardInterrupt."""
    return _requested.is_set()


def is_interrupt(err: BaseException) -> bool:
    """Whether ``err`` is the interrupt in disguise: a KeyboardInterrupt anywhere in its chain of
    causes and contexts, or any exception raised after SIGINT arrived (a library's wrapper that kept
    no chain)."""
    if requested():
        return True
    seen: set[int] = set()
    stack: list[Optional[BaseException]] = [err]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        stack += [current.__cause__, current.__context__]
    return False


def raise_if_interrupt(err: BaseException) -> None:
    """Raise KeyboardInterrupt (from ``err``) if ``err`` is the interrupt in disguise."""
    if is_interrupt(err):
        raise KeyboardInterrupt from err


def check() -> None:
    """Raise KeyboardInterrupt if SIGINT arrived and its KeyboardInterrupt was swallowed on the way."""
    if requested():
        raise KeyboardInterrupt
