"""The one YAML reader: everything snnbench reads as YAML (suites, ``base:`` files, ``--set`` values,
bench sweeps, published rows) goes through :func:`parse_yaml` or :func:`read_yaml`.

YAML is read strictly and with bounded work: libyaml's C parser when present, safe construction (no
``!!python/`` tags), duplicate keys are errors naming both lines, what aliases expand to is capped (an
alias bomb would expand to gigabytes), a file is at most ``MAX_YAML_BYTES`` and must be a regular
UTF-8 text file (opened through :mod:`snnbench.user_paths`). Every problem is a :class:`YamlError`
whose message names the source, the line and the column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import yaml

from snnbench.errors import UnusableInputError
from snnbench.user_paths import read_input_bytes

MAX_YAML_BYTES = 1 << 20  # suites, sweeps and published sources are a few KB
MAX_ALIAS_NODES = 100_000  # values YAML aliases may expand to in one document


class YamlError(UnusableInputError, ValueError):
    """YAML that cannot be used; ``str(err)`` names the source and the line."""


def _node_size(node: Any, sizes: dict[int, int]) -> int:
    """Values in a composed YAML node once every alias inside it is expanded (memoised by id)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a cycle counts once; construct_object refuses it anyway
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_node_size(v, sizes) for v in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_node_size(k, sizes) + _node_size(v, sizes) for k, v in node.value)
    else:
        size = 1
    sizes[id(node)] = size
    return size


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses ~10x faster


class StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe YAML that refuses duplicate keys and caps what aliases expand to, with each problem's line."""

    def construct_object(self, node, deep=False):
        if node in self.recursive_objects:
            raise yaml.constructor.ConstructorError(
                None, None, "a YAML alias refers to a value that contains it (a recursive structure)", node.start_mark
            )
        if node in self.constructed_objects:
            # An alias: the value is shared, but whoever walks it later (validation, hashing) walks it
            # in full, so its expanded size counts against a budget that stops an alias bomb at once.
            self._expanded = getattr(self, "_expanded", 0) + _node_size(node, self.__dict__.setdefault("_sizes", {}))
            if self._expanded > MAX_ALIAS_NODES:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"YAML aliases (*name) expand to more than {MAX_ALIAS_NODES} values (an alias bomb?); "
                    "the anchored value that crossed the limit starts here",
                    node.start_mark,
                )
        return super().construct_object(node, deep=deep)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = key_node.value
                if key in seen:
                    first = seen[key]
                    raise yaml.constructor.ConstructorError(
                        f"key {key!r} first given at line {first.line + 1}",
                        first,
                        f"duplicate key {key!r} (YAML would silently keep only the last one)",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_constructor("tag:yaml.org,2002:map", StrictLoader.construct_yaml_map)


def _located(source: str, err: yaml.YAMLError) -> YamlError:
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    kind = "YAML error" if isinstance(err, yaml.constructor.ConstructorError) else "YAML syntax error"
    return YamlError(f"{source}: {kind} at {where}: {problem}" + (f"; {context}" if context else ""))


def parse_yaml(text: str, source: str, what: str = "YAML document") -> Any:
    """The YAML document ``text``, read strictly; ``source`` begins every message (a path, or
    ``--set 'seeds=…'``)."""
    if len(text) > MAX_YAML_BYTES:
        raise YamlError(f"{source}: {len(text)} characters; a {what} may have at most {MAX_YAML_BYTES}")
    if "\x00" in text:
        raise YamlError(f"{source}: contains NUL bytes (a binary file?); a {what} is YAML text")
    try:
        return yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as err:
        raise _located(source, err) from None
    except RecursionError:
        raise YamlError(f"{source}: nested too deeply to be a {what}") from None


def read_yaml(path: Union[str, Path], what: str = "suite file") -> Any:
    """The YAML file at ``path``: a regular UTF-8 file of at most ``MAX_YAML_BYTES``, read strictly."""
    path = Path(path)
    raw = read_input_bytes(path, what, MAX_YAML_BYTES, expected=f"a {what} (YAML text)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise YamlError(
            f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
            f"a {what} is YAML text saved as UTF-8"
        ) from None
    return parse_yaml(text, str(path), what)
