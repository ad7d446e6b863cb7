"""The types of the ``neuron`` section of a bench sweep file (``bench neuron --sweep FILE``): read by
the one strict YAML reader (:func:`snnbench.bench.sweep.load_section`, which checks its keys) and
checked here by a pydantic schema, so ``timesteps: "many"`` or an unknown dtype is one line naming the
file and the field (exit 2), never a traceback mid-bench.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from snnbench.errors import BenchInputError

DTYPE_NAMES = ("fp32", "bf16", "fp16")
IMPL_NAMES = (
    "copy",
    "snnbench",
    "snnbench_uint8",
    "snnbench_localzo",
    "torch_loop",
    "torch_compile",
    "spikingjelly",
)

Dtype = Literal[DTYPE_NAMES]  # type: ignore[valid-type]
Impl = Literal[IMPL_NAMES]  # type: ignore[valid-type]


class SweepError(BenchInputError):
    """A sweep file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NeuronModel(_Strict):
    tau: float = Field(gt=0)
    decay_input: bool
    threshold: float = Field(gt=0)
    reset: Literal["soft", "hard", "subtract"]
    v_reset: float
    surrogate: str
    alpha: float = Field(gt=0)


class InputDraw(_Strict):
    mean: float
    std: float = Field(ge=0)


class Timing(_Strict):
    warmup_ms: float = Field(ge=0)
    rep_ms: float = Field(gt=0)


class LocalZO(_Strict):
    distribution: str
    delta: float = Field(gt=0)
    q: int = Field(gt=0)


class CompilePoints(_Strict):
    timesteps: list[int] = Field(min_length=1)
    sizes: list[int] = Field(min_length=1)
    dtypes: list[Dtype]
    budget_s: float = Field(ge=0)


class Tier(_Strict):
    """The sizes a CPU run or a ``--quick`` run uses instead (each optional: the section's stays)."""

    timesteps: Optional[list[int]] = Field(None, min_length=1)
    sizes: Optional[list[int]] = Field(None, min_length=1)
    timing: Optional[Timing] = None


class NeuronSweep(_Strict):
    model: NeuronModel
    input: InputDraw
    timesteps: list[int] = Field(min_length=1)
    sizes: list[int] = Field(min_length=1)
    dtypes: list[Dtype] = Field(min_length=1)
    modes: list[Literal["fwd", "fwd_bwd"]] = Field(min_length=1)
    impls: list[Impl] = Field(min_length=1)
    graph_impls: list[Impl]
    save_dtype: Dtype
    localzo: LocalZO
    compile: CompilePoints
    timing: Timing
    cpu: Tier
    quick: Tier


def _check_positive(sweep: NeuronSweep, path: Path) -> None:
    lists = {"timesteps": sweep.timesteps, "sizes": sweep.sizes}
    for tier in ("cpu", "quick", "compile"):
        part = getattr(sweep, tier)
        lists |= {f"{tier}.timesteps": part.timesteps or [], f"{tier}.sizes": part.sizes or []}
    for name, values in lists.items():
        bad = [v for v in values if v < 1]
        if bad:
            raise SweepError(f"{path}: neuron.{name}: expected positive integers, got {bad[:5]}")


def _problems(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        got = e.get("input")
        got_txt = "" if isinstance(got, (dict, list)) or e["type"] == "missing" else f" (got {got!r})"
        lines.append(f"neuron.{where}: {msg}{got_txt}")
    return "; ".join(lines)


def check_neuron_sweep(section: dict[str, Any], path: Path) -> None:
    """Refuse a ``neuron`` section (its keys already checked) whose values have the wrong types."""
    try:
        sweep = NeuronSweep.model_validate(section)
    except ValidationError as err:
        raise SweepError(f"{path}: invalid neuron sweep: {_problems(err)}") from None
    _check_positive(sweep, path)
