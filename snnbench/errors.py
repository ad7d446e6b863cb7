"""The one thing every "this input cannot be used" error shares, so the CLI can tell them apart.

An exception that also derives from :class:`UnusableInputError` is the user's input (a file, a folder,
an option) being unusable: the command line prints its message as one line and exits 2 with no
traceback. Anything else is an internal error and keeps its traceback (exit 1).
"""


class UnusableInputError(Exception):
    """Mixin for errors caused by unusable input; ``str(err)`` names the file, field and expectation."""


class UsageError(UnusableInputError, ValueError):
    """A command-line option or combination of options that cannot work (``--address`` without Ray)."""


class MissingDependencyError(UnusableInputError, ModuleNotFoundError):
    """An optional package the input needs is not installed (tonic for event data); the message says
    which and how to install it."""


class BenchInputError(UsageError):
    """A ``snnbench bench`` option or sweep value that cannot work (a size past memory, an unknown
    name): exit 2. Any other exception in a bench is an internal failure (exit 1)."""
