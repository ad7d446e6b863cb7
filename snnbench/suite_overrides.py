"""Where a suite's fields come from before the schema sees them: its ``base:`` files, then ``--set``.

A suite may name ``base: other.yaml`` (relative to its own folder; a base may have a base): the
suite's fields override the base's, mappings merged key by key, lists and scalars replaced, so a
family of suites shares one training block. ``--set key.path=value`` then overrides single fields;
the value is read as YAML (``1``, ``0.5``, ``true``, ``[0, 1]``, ``{name: ftbc}``) and a number in the
path indexes a list (``models.0.width=16``). The result is checked by the suite schema like any file,
so an override gets the same located errors as a typo in the YAML.

Nothing here imports the rest of snnbench but the YAML reader and the path opener below it:
``config.load_suite`` passes its file reader in. A ``--set`` value is read by the same strict reader
as a file (an alias bomb or a duplicate key in a value is refused the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from snnbench.strict_yaml import parse_yaml
from snnbench.user_paths import UnusablePathError, input_file

BASE_KEY = "base"
MAX_BASE_DEPTH = 32  # suites in a family share one or two bases; a longer chain is a mistake


class SourceError(ValueError):
    """A base file or an override that cannot be applied; the message names the file and the field."""


def merged(base: Any, top: Any) -> Any:
    """``top`` over ``base``: mappings merge key by key, anything else in ``top`` replaces."""
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for key, value in top.items():
            out[key] = merged(base.get(key), value) if key in base else value
        return out
    return top


def _chain_text(chain: Sequence[Path]) -> str:
    names = [p.name for p in chain]
    shown = names if len(names) <= 6 else [*names[:3], f"… {len(names) - 5} more …", *names[-2:]]
    return " → ".join(shown)


def with_bases(data: Any, path: Path, read: Callable[[Path], Any], seen: Sequence[Path] = ()) -> Any:
    """``data`` (read from ``path``) over its chain of ``base:`` files, without the ``base`` key."""
    if not isinstance(data, dict) or BASE_KEY not in data:
        return data
    data = dict(data)
    name = data.pop(BASE_KEY)
    if not isinstance(name, str) or not name:
        raise SourceError(f"{path}: base: expected the path of a suite file, got {name!r}")
    base_path = (Path(path).parent / name) if not Path(name).is_absolute() else Path(name)
    chain = [*seen, Path(path).resolve()]
    if len(chain) > MAX_BASE_DEPTH:
        raise SourceError(
            f"{chain[0]}: base: a chain of more than {MAX_BASE_DEPTH} base files ({_chain_text(chain)}); "
            "a suite family needs one or two levels: shorten the chain"
        )
    # A folder, a device, a FIFO or a loop of symlinks is named for what it is, before it is read.
    try:
        input_file(base_path, "suite file", expected="a suite file (YAML text)")
    except UnusablePathError as err:
        raise SourceError(f"{path}: base: {name}: {err}") from None
    if base_path.resolve() in chain:
        raise SourceError(f"{path}: base: {name} leads back to {base_path} (a cycle of base files)")
    base = read(base_path)
    if not isinstance(base, dict):
        raise SourceError(f"{base_path}: expected a mapping of suite fields (it is the base of {path})")
    return merged(with_bases(base, base_path, read, chain), data)


def parse_override(text: str, path: Path) -> tuple[list[str], Any]:
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise SourceError(f"{path}: --set {text!r}: expected KEY.PATH=VALUE (e.g. training.epochs=1, seeds=[0,1])")
    if parts[0].strip() == BASE_KEY:
        raise SourceError(
            f"{path}: --set {text!r}: base: files are merged before --set applies, so base cannot be set; "
            "write base: in the suite file, or --set the fields you want from it"
        )
    parsed = parse_yaml(value, f"{path}: --set {text!r}: the value", what="--set value") if value.strip() else ""
    return [p.strip() for p in parts], parsed


def _entry(value: Any) -> Any:
    # `- qcfs` is short for `- {name: qcfs}`: setting a field of it needs the long form.
    return {"name": value} if isinstance(value, str) else value


def _set(data: Any, parts: list[str], value: Any, text: str, path: Path) -> Any:
    head, rest = parts[0], parts[1:]
    where = f"{path}: --set {text!r}"
    if isinstance(data, list):
        if not head.isdigit():
            raise SourceError(f"{where}: {head!r} indexes a list; expected a number from 0 to {len(data) - 1}")
        i = int(head)
        if i >= len(data):
            raise SourceError(f"{where}: the list has {len(data)} entries, so there is no index {i}")
        out = list(data)
        out[i] = _set(_entry(out[i]), rest, value, text, path) if rest else value
        return out
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SourceError(f"{where}: {head!r} is set inside a {type(data).__name__}, not a mapping")
    out = dict(data)
    out[head] = _set(out.get(head), rest, value, text, path) if rest else value
    return out


def apply_overrides(data: Any, overrides: Sequence[str], path: Path) -> Any:
    """``data`` with each ``key.path=value`` of ``overrides`` set, in order."""
    for text in overrides:
        parts, value = parse_override(text, path)
        data = _set(data, parts, value, text, path)
    return data


def resolve_sources(data: Any, path: Path, overrides: Sequence[str], read: Callable[[Path], Any]) -> Any:
    """The suite's fields as the schema should see them: bases first, then overrides."""
    data = with_bases(data, path, read)
    return apply_overrides(data, overrides, path) if overrides else data
