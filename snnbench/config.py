"""Suite files: the pydantic schema of a YAML sweep and loading with located errors.

A suite sweeps datasets × models × methods × seeds; every conversion method is evaluated at all
``timesteps`` from one simulation to ``max(timesteps)``. Unknown keys are errors everywhere, so a typo
never silently falls back to a default. Every failure is raised as :class:`SuiteError`, whose message
names the file, the field path and what was expected.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


def config_hash(obj: Any, length: int = 10) -> str:
    """A short stable hash of a JSON-able configuration (cell keys, cached-model names)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class SuiteError(ValueError):
    """A suite file that cannot be used; ``str(err)`` is the message to show the user."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# Method parameters. Each method's options live in their own model so a typo in one is caught.


class QCFSParams(_Strict):
    """Plain QCFS conversion: no calibration."""


class LightParams(_Strict):
    """Light calibration (Li et al., ICML 2021): one time-invariant bias per channel from one batch."""

    batch_size: int = Field(128, gt=0, description="training images in the calibration batch")


class FTBCParams(_Strict):
    """FTBC single pass (docs/design.md §4): K calibration batches, step size alpha."""

    alpha: float = Field(0.4, gt=0)
    batches: int = Field(3, gt=0, description="K, the number of calibration batches")
    batch_size: int = Field(200, gt=0)
    implementation: Literal["fast", "reference"] = "fast"


class FTBCIterParams(FTBCParams):
    """Iterative FTBC: ``passes`` sweeps over the calibration batches, alpha per pass."""

    passes: int = Field(5, gt=0)


class SurrogateParams(_Strict):
    """Dense BPTT through autograd with a surrogate spike derivative."""

    surrogate: Literal["sigmoid", "atan", "rectangle", "triangle", "fast_sigmoid", "gaussian"] = (
        "fast_sigmoid"
    )
    width: float = Field(10.0, gt=0, description="surrogate sharpness (alpha) or width")


class SparsePropParams(_Strict):
    """Sparse Spiking Gradient Descent: neurons with |u - θ| < b_th take part in the backward."""

    b_th: Optional[float] = Field(
        None, gt=0, description="active band; None = matched to a LocalZO run's δ·E|z| or 0.2"
    )
    width: float = Field(100.0, gt=0, description="fast-sigmoid slope of the surrogate")


class LocalZOParams(_Strict):
    """LocalZO: a zeroth-order estimate of the spike derivative from q random samples."""

    delta: float = Field(0.05, gt=0)
    q: int = Field(1, gt=0)
    distribution: Literal["normal", "uniform", "laplace"] = "normal"


METHOD_PARAMS: dict[str, type[_Strict]] = {
    "qcfs": QCFSParams,
    "light": LightParams,
    "ftbc": FTBCParams,
    "ftbc_iter": FTBCIterParams,
    "surrogate": SurrogateParams,
    "sparseprop": SparsePropParams,
    "localzo": LocalZOParams,
    "localzo_dense": LocalZOParams,
}
CONVERSION_METHODS = {"qcfs", "light", "ftbc", "ftbc_iter"}
TRAINING_METHODS = {"surrogate", "sparseprop", "localzo", "localzo_dense"}


def _named_entry(value: Any, own_fields: tuple[str, ...] = ()) -> Any:
    """``- qcfs`` and ``- {name: ftbc, alpha: 0.4}`` (the flat form people type) become
    ``{name, params}``; keys in ``own_fields`` stay fields of the entry instead of parameters."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and "name" in value and "params" not in value:
        out = {k: value[k] for k in ("name",) + own_fields if k in value}
        out["params"] = {k: v for k, v in value.items() if k not in out}
        return out
    return value


class MethodSpec(_Strict):
    """One method of the sweep: its name and its validated parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_short_forms(cls, value: Any) -> Any:
        return _named_entry(value)

    @model_validator(mode="after")
    def _check_params(self) -> "MethodSpec":
        if self.name not in METHOD_PARAMS:
            raise ValueError(f"unknown method {self.name!r}; expected one of {sorted(METHOD_PARAMS)}")
        validated = METHOD_PARAMS[self.name].model_validate(self.params)
        object.__setattr__(self, "params", validated.model_dump())
        return self


class ModelSpec(_Strict):
    """One model of the sweep: a registry name and keyword arguments for its constructor."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    checkpoint: Optional[str] = Field(None, description="a trained ANN to load instead of training")

    @model_validator(mode="before")
    @classmethod
    def _from_short_forms(cls, value: Any) -> Any:
        return _named_entry(value, own_fields=("checkpoint",))


class DatasetSpec(_Strict):
    """One dataset: a name, where to find it and whether it may be downloaded."""

    name: Literal["digits", "digits_spiking", "cifar10", "cifar100", "imagenet", "fmnist", "nmnist", "shd", "synthetic"]
    root: Optional[str] = Field(None, description="data root; else --data-root, SNNBENCH_DATA, cache")
    download: bool = False
    limit_train: Optional[int] = Field(None, gt=0, description="use only the first N training samples")
    limit_test: Optional[int] = Field(None, gt=0, description="use only the first N test samples")

    @model_validator(mode="before")
    @classmethod
    def _from_short_form(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class TrainingSpec(_Strict):
    """How the ANN (conversion track) or the SNN (training track) is trained."""

    epochs: int = Field(30, ge=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(0.05, gt=0)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    augment: bool = False
    levels: int = Field(4, gt=0, description="QCFS quantization levels L")
    amp: bool = Field(True, description="mixed precision when on CUDA")
    eval_batch_size: int = Field(256, gt=0)


class Suite(_Strict):
    """A YAML sweep: every combination of datasets × models × methods × seeds is one cell."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    track: Literal["conversion", "training"] = "conversion"
    datasets: list[DatasetSpec] = Field(..., min_length=1)
    models: list[ModelSpec] = Field(..., min_length=1)
    timesteps: list[int] = Field(..., min_length=1)
    methods: list[MethodSpec] = Field(..., min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    output: Optional[str] = Field(None, description="results file; default results/runs/<name>.jsonl")

    @field_validator("timesteps")
    @classmethod
    def _positive_sorted_timesteps(cls, value: list[int]) -> list[int]:
        bad = [t for t in value if t < 1]
        if bad:
            raise ValueError(f"every timestep must be a positive integer, got {bad}")
        return sorted(set(value))

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds repeat ({value}); each seed is one cell, list it once")
        return value

    @model_validator(mode="after")
    def _no_duplicate_entries(self) -> "Suite":
        # The same entry twice would make two cells with one key: the second would overwrite the first.
        for field in ("datasets", "models", "methods"):
            seen: dict[str, int] = {}
            for i, entry in enumerate(getattr(self, field)):
                text = entry.model_dump_json()
                if text in seen:
                    raise ValueError(f"{field}.{i} repeats {field}.{seen[text]} exactly; list each entry once")
                seen[text] = i
        return self

    @model_validator(mode="after")
    def _methods_match_track(self) -> "Suite":
        allowed = CONVERSION_METHODS if self.track == "conversion" else TRAINING_METHODS
        for i, m in enumerate(self.methods):
            if m.name not in allowed:
                raise ValueError(
                    f"methods.{i}: {m.name!r} is not a {self.track}-track method; expected one of {sorted(allowed)}"
                )
        return self

    def results_path(self, results_dir: Optional[Path] = None) -> Path:
        if results_dir is not None:
            return Path(results_dir) / f"{self.name}.jsonl"
        return Path(self.output) if self.output else Path("results/runs") / f"{self.name}.jsonl"


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("function-after", "function-before")]
    # pydantic inserts model/union tags in the path; they mean nothing to someone editing YAML.
    parts = [p for p in parts if not p.startswith(("function-", "tagged-union"))]
    return ".".join(parts) if parts else "(top level)"


def format_validation_error(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid suite ({err.error_count()} problem{'s' if err.error_count() > 1 else ''})"]
    for e in err.errors():
        where = _location(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not part of the suite schema; check the spelling)"
        got = e.get("input")
        got_txt = "" if isinstance(got, (dict, list)) or e["type"] == "missing" else f" (got {got!r})"
        lines.append(f"  {where}: {msg}{got_txt}")
    return "\n".join(lines)


def parse_suite(data: Any, path: Path) -> Suite:
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: expected a mapping of suite fields at the top level, got {type(data).__name__}")
    bench_sections = {"neuron", "sparse", "ftbc"}
    if data and set(data) <= bench_sections:
        raise SuiteError(
            f"{path}: a kernel benchmark sweep ({', '.join(sorted(data))}), not a run suite; "
            f"it is read by `snnbench bench {sorted(data)[0]}`"
        )
    try:
        return Suite.model_validate(data)
    except ValidationError as err:
        raise SuiteError(format_validation_error(path, err)) from None


def read_yaml(path: Path) -> Any:
    """The YAML document of a suite file; raise :class:`SuiteError` with the line and column."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: suite file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(err, "problem", None) or str(err)
        raise SuiteError(f"{path}: YAML syntax error at {where}: {problem}") from None


def load_suite(path: Union[str, Path], overrides: Sequence[str] = ()) -> Suite:
    """Read and validate a YAML suite, over its ``base:`` files and with ``key.path=value``
    ``overrides`` applied (see :mod:`snnbench.suite_overrides`); raise :class:`SuiteError` with a
    located message."""
    from snnbench.suite_overrides import SourceError, resolve_sources

    path = Path(path)
    try:
        data = resolve_sources(read_yaml(path), path, overrides, read=read_yaml)
    except SourceError as err:
        raise SuiteError(str(err)) from None
    return parse_suite(data, path)
