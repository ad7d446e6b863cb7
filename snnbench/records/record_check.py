"""The one record schema every reader applies to every line of a results file.

A results file is anyone's text: a hand-edited line, another tool's JSON, a record of another schema
version. :func:`record_problem` says why a record cannot be used (its nested types, integer ranges,
nesting depth), so every reader (export, compare, table, leaderboard, plot) skips it with FILE:LINE
and the reason, and ``run`` recomputes its cell instead of counting it done.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from snnbench.records.schema import SCHEMA_VERSION

MAX_DEPTH = 24  # records nest five levels deep (metrics.neurobench.synaptic_operations.Dense)
MAX_KEY_CHARS = 2048
INT64 = 2**63 - 1  # pandas' and numpy's integer columns, torch's seeds

Int64 = Annotated[int, Field(ge=-INT64 - 1, le=INT64)]
Seed = Annotated[int, Field(ge=0, le=INT64)]
TimeStep = Annotated[int, Field(ge=0, le=INT64)]


class _Open(BaseModel):
    """Known fields typed; fields this snnbench does not read are kept as they are."""

    model_config = ConfigDict(extra="allow", strict=True)


class Hardware(_Open):
    device: Optional[str] = None
    name: Optional[str] = None
    capability: Optional[str] = None
    cores: Optional[Int64] = None
    memory_gib: Optional[float] = None


class Env(_Open):
    hardware: Optional[Hardware] = None
    git_sha: Optional[str] = None
    card: Optional[str] = None
    gpu: Optional[str] = None
    device_name: Optional[str] = None


class Entry(_Open):
    """A dataset, model or method of the cell: its name and parameters."""

    name: Optional[str] = None
    params: dict[str, Any] = Field(default_factory=dict)


class Config(_Open):
    suite: Optional[str] = None
    track: Optional[str] = None
    dataset: Optional[Entry] = None
    model: Optional[Entry] = None
    method: Optional[Entry] = None
    seed: Optional[Seed] = None
    timesteps: Optional[list[TimeStep]] = None
    training: Optional[dict[str, Any]] = None
    device: Optional[str] = None


def _check_metric(value: Any, where: str) -> None:
    """Numbers fit a float column, integers an int64 one; a per-T mapping's keys are time steps."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return
    if isinstance(value, int):
        if not -INT64 - 1 <= value <= INT64:
            raise ValueError(f"{where} is an integer outside int64")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_metric(item, f"{where}.{i}")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if key.isdigit() and int(key) > INT64:
                raise ValueError(f"{where} has time step {key[:30]}…, outside int64")
            _check_metric(item, f"{where}.{key}")
        return
    raise ValueError(f"{where} is {type(value).__name__}")  # pragma: no cover (JSON has no other type)


TimeStepKey = Annotated[str, Field(pattern=r"^[0-9]{1,18}$")]


class Metrics(_Open):
    """The metrics readers interpret by name, typed as the tables and figures read them: ``snn_acc``
    maps a time step (digits) to an accuracy, ``ann_acc`` is an accuracy, ``neurobench`` a mapping.
    Every other metric is checked by :func:`_check_metric` only."""

    snn_acc: Optional[dict[TimeStepKey, Optional[float]]] = None
    ann_acc: Optional[float] = None
    neurobench: Optional[dict[str, Any]] = None


class Record(_Open):
    schema_version: Literal[SCHEMA_VERSION] = Field(alias="schema")  # type: ignore[valid-type]
    key: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    suite: Optional[str] = None
    track: Optional[str] = None
    dataset: Optional[str] = None
    model: Optional[str] = None
    method: Optional[str] = None
    seed: Optional[Seed] = None
    config: Optional[Config] = None
    metrics: Metrics
    wall_s: Optional[float] = None
    finished_at: Optional[str] = None
    env: Optional[Env] = None

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_values(cls, value: Any) -> Any:
        if isinstance(value, dict):
            _check_metric(value, "metrics")
        return value


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests (iteratively, so a hostile line cannot exhaust the stack); stops
    counting past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "dict_type": "an object",
    "model_type": "an object",
    "list_type": "a list",
    "bool_type": "true or false",
}


def _reason(err: ValidationError) -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"])
    got = e.get("input")
    if e["loc"] == ("schema",):
        return f"schema version {got!r}; this snnbench reads version {SCHEMA_VERSION}"
    if e["type"] in _EXPECTED:
        return f"field {where!r} is {type(got).__name__}, expected {_EXPECTED[e['type']]}"
    if e["type"] == "missing":
        return f"field {where!r} is missing"
    if e["type"] == "string_pattern_mismatch" and e["loc"][:2] == ("metrics", "snn_acc"):
        return f"field 'metrics.snn_acc' has key {str(got)[:30]!r}; expected a time step (digits)"
    if e["type"] == "value_error":  # our own check: its message says what is wrong
        return e["msg"].removeprefix("Value error, ")
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    return f"field {where!r}: {e['msg']} (got {shown[:60]})"


def record_problem(record: Any) -> Optional[str]:
    """Why ``record`` (a parsed line) is not a usable record of this schema, or None."""
    if not isinstance(record, dict):
        kind = {list: "array", str: "string"}.get(type(record), type(record).__name__)
        return f"a JSON {kind}, expected an object"
    if "key" not in record:
        return "no 'key'"
    if depth(record) > MAX_DEPTH:
        return f"nested more than {MAX_DEPTH} levels deep"
    try:
        Record.model_validate(record)
    except ValidationError as err:
        return _reason(err)
    return None
