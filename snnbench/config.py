"""Suite files: the pydantic schema of a YAML sweep and loading with located errors.

A suite sweeps datasets × models × methods × seeds; every conversion method is evaluated at all
``timesteps`` from one simulation to ``max(timesteps)``. Unknown keys are errors everywhere, so a typo
never silently falls back to a default. Every failure is raised as :class:`SuiteError`, whose message
names the file, the field path and what was expected.

YAML is read by the one strict reader (:mod:`snnbench.strict_yaml`: no ``!!python/`` tags, duplicate
keys and alias bombs refused, bounded size, regular files only); booleans are not numbers, and the
limits below keep a small file from asking for unbounded work.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Sequence, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from snnbench import strict_yaml
from snnbench.errors import UnusableInputError
from snnbench.user_paths import UnusablePathError


# Limits, each with the reason shown when it is exceeded.
MAX_TIMESTEP = 4096  # the longest published conversion runs use T <= 1024; memory grows with T
MAX_CELLS = 100_000  # cells are listed, planned and recorded one by one
MAX_NAME_CHARS = 200  # a suite's name plus ".jsonl.corrupt" must fit a 255-byte file name
MAX_SEED = 2**63 - 1  # what torch's and the Triton kernels' generators accept, with room for offsets


def config_hash(obj: Any, length: int = 10) -> str:
    """A short stable hash of a JSON-able configuration (cell keys, cached-model names)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class SuiteError(UnusableInputError, ValueError):
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

    alpha: float = Field(0.4, gt=0, allow_inf_nan=False)
    batches: int = Field(3, gt=0, description="K, the number of calibration batches")
    batch_size: int = Field(200, gt=0)
    implementation: Literal["fast", "reference"] = "fast"
    calibration_augment: bool = Field(
        True, description="calibrate on training images with the training augmentation, as the official loader"
    )
    target_levels: Optional[int] = Field(
        None, gt=0, description="L of the ANN targets; 8 reproduces the official script's L = 8 targets"
    )


class FTBCRTSParams(_Strict):
    """FTBC as the RTS code runs it (``emp_bias_corr_moving_avg_timestep``): ``iterations`` rounds, each
    on ``sample_batches`` + 1 fresh batches (the official loop breaks after batch index >= it), every
    layer and step corrected with its own bias applied and its membrane re-simulated. Defaults: the
    official CIFAR script (``run_scripts/cifar_cali.sh``)."""

    alpha: float = Field(0.005, gt=0, allow_inf_nan=False, description="the official --curr_t_alpha")
    iterations: int = Field(50, gt=0, description="the official --num_cali_iters")
    sample_batches: int = Field(
        2, ge=0, description="the official --num_cali_sample_batches; its loop uses this many + 1 batches"
    )
    batch_size: int = Field(32, gt=0, description="the official --batch_size of the calibration loader")
    implementation: Literal["fast", "reference"] = "fast"
    calibration_augment: bool = Field(
        True, description="calibrate on training images with the training augmentation, as the official loader"
    )


class FTBCIterParams(FTBCParams):
    """Iterative FTBC: ``passes`` sweeps over the calibration batches, alpha per pass."""

    passes: int = Field(5, gt=0)


class AdvancedParams(_Strict):
    """SNN Calibration's advanced pipeline (family: snnc): with ``weights`` (the default) each layer's
    weights calibrated first (``weights_cali_model``: Adam on the layer's quantised output against the
    ANN's, layer by layer, as SNN_Calibration's and the FTBC repository's ImageNet scripts run it), then
    every neuron's initial membrane from one batch (``bias_corr_model(correct_mempot=True)``).
    ``weights: false`` is the potential-only variant both repositories' CIFAR scripts run (their
    ``weights_cali_model`` call is commented out there). Weight defaults: SNN_Calibration's
    ``main_cal_imagenet.py`` (the FTBC repository's copy uses ``weights_lr: 1.0e-4``)."""

    batch_size: int = Field(128, gt=0, description="training images in the potential-correction batch")
    calibration_augment: bool = Field(
        True, description="calibrate on training images with the training augmentation, as the official loader"
    )
    weights: bool = Field(True, description="calibrate each layer's weights before the potentials")
    weights_lr: float = Field(1e-5, gt=0, allow_inf_nan=False, description="Adam learning rate (learning_rate)")
    weights_iterations: int = Field(5000, gt=0, description="Adam steps per layer (optimize_iter)")
    weights_samples: int = Field(1024, gt=0, description="training images cached per layer (num_cali_samples)")
    weights_batch_size: int = Field(32, gt=0, description="images per Adam step and per caching pass (batch_size)")

    @model_validator(mode="after")
    def _whole_batches(self) -> "AdvancedParams":
        # The official code caches whole batches only and draws its steps from all num_cali_samples
        # indices: any other count would index past the cache.
        if self.weights_samples % self.weights_batch_size:
            raise ValueError(
                f"weights_samples ({self.weights_samples}) must be a multiple of weights_batch_size "
                f"({self.weights_batch_size})"
            )
        return self


class FTBCSNNCParams(_Strict):
    """FTBC as the FTBC repository's SNNC script runs it (family: snnc): ``ours_wo_avg``
    (``average: false``, bias_corr_model_update_step_by_step) or ``ours_w_avg`` (``average: true``,
    x_bias_corr_model_update_step_by_step), with the script's defaults."""

    average: bool = Field(False, description="ours_w_avg: each step's error is that of the running average")
    alpha: float = Field(0.5, gt=0, description="--curr_t_alpha")
    batches: int = Field(
        10, gt=0, description="--num_cali_sample_batches (ours_w_avg's official loop reads one more: give K+1)"
    )
    batch_size: int = Field(128, gt=0)
    iterations: int = Field(5, gt=0, description="--num_cali_iters: passes, each on new batches (seed + i)")
    calibration_augment: bool = Field(
        True, description="calibrate on training images with the training augmentation, as the official loader"
    )
    bias_order: Literal["official", "kernel"] = Field(
        "official", description="u = (v + x) - b (official) or the QCFS route's (v - b) + x (kernel)"
    )
    residual_biases: bool = Field(
        True,
        description="per-step biases on a residual block's output IF layer too (the FTBC repository's ImageNet "
        "SpikeResModule); false: none there (its CIFAR SpikeResModule, main_cal_cifar.py's res20, ignores them)",
    )

    @model_serializer(mode="wrap")
    def _omit_default_residual_biases(self, handler):
        # Left out at its default so that the records (and cell keys) made before the option existed
        # stay what they were (as DatasetSpec's event options).
        data = handler(self)
        if data.get("residual_biases") is True:
            data.pop("residual_biases")
        return data


def surrogate_names() -> tuple[str, ...]:
    """The kernels' surrogate shapes, less LocalZO (a method of its own)."""
    from snnbench.kernels.surrogates import SURROGATES

    return tuple(name for name in SURROGATES if name != "localzo")


def distribution_names() -> tuple[str, ...]:
    """LocalZO's sample distributions, as the kernels draw them."""
    from snnbench.kernels.localzo import DISTRIBUTIONS

    return tuple(DISTRIBUTIONS)


def _one_of(names: Callable[[], tuple[str, ...]]) -> Any:
    """A string that must be one of ``names()``. The kernels hold these lists; they are read only when
    a suite names a value (loading the kernels takes seconds), so a suite that keeps the defaults, and
    every reader of records, never loads torch or Triton for them."""

    def check(value: str) -> str:
        known = names()
        if value not in known:
            raise ValueError(f"expected one of {', '.join(known)}")
        return value

    return Annotated[str, AfterValidator(check)]


SurrogateName = _one_of(surrogate_names)
DistributionName = _one_of(distribution_names)


class SurrogateParams(_Strict):
    """Dense BPTT through autograd with a surrogate spike derivative."""

    surrogate: SurrogateName = "fast_sigmoid"
    width: float = Field(10.0, gt=0, description="surrogate sharpness (alpha) or width")


class SparsePropParams(_Strict):
    """Sparse Spiking Gradient Descent: neurons with |u - θ| < b_th take part in the backward."""

    b_th: Optional[float] = Field(
        None, gt=0, description="active band; None = matched to a LocalZO run's δ·E|z| or 0.2"
    )
    width: float = Field(100.0, gt=0, description="fast-sigmoid slope of the surrogate")


class SurrogateNormalParams(_Strict):
    """The LocalZO paper's dense baseline: BPTT with the normal-pdf surrogate of std delta."""

    delta: float = Field(0.05, gt=0)


class SparsePropNormalParams(_Strict):
    """The LocalZO paper's S3GD baseline: SparseProp's band with the normal pdf (std delta) inside it."""

    delta: float = Field(0.05, gt=0)
    b_th: Optional[float] = Field(None, gt=0, description="active band |u - θ| < b_th; None = delta·E|z| (normal)")


class LocalZOParams(_Strict):
    """LocalZO: a zeroth-order estimate of the spike derivative from q random samples."""

    delta: float = Field(0.05, gt=0)
    q: int = Field(1, gt=0)
    distribution: DistributionName = "normal"


METHOD_PARAMS: dict[str, type[_Strict]] = {
    "qcfs": QCFSParams,
    "none": QCFSParams,  # the same plain conversion, the name that reads right for a ReLU ANN
    "light": LightParams,
    "ftbc": FTBCParams,
    "ftbc_iter": FTBCIterParams,
    "advanced": AdvancedParams,
    "ftbc_snnc": FTBCSNNCParams,
    "ftbc_rts": FTBCRTSParams,
    "rts": QCFSParams,  # the same plain conversion, the name of the RTS family's uncalibrated row
    "surrogate": SurrogateParams,
    "sparseprop": SparsePropParams,
    "surrogate_normal": SurrogateNormalParams,
    "sparseprop_normal": SparsePropNormalParams,
    "localzo": LocalZOParams,
    "localzo_dense": LocalZOParams,
}
CONVERSION_METHODS = {"qcfs", "none", "rts", "light", "ftbc", "ftbc_iter", "ftbc_rts", "advanced", "ftbc_snnc"}
# Methods of one ANN family only: the SNN Calibration family's (model parameter ``family: snnc``).
SNNC_METHODS = {"advanced", "ftbc_snnc"}
SNNC_FAMILY_METHODS = {"none", "light"} | SNNC_METHODS


def method_applies(method: str, model_params: dict[str, Any], listed: Optional[list[str]] = None) -> bool:
    """Whether a suite's method runs on a model: the SNN Calibration family's own methods on that
    family only, and only the methods the model lists (``methods:``) when it lists any."""
    if listed is not None and method not in listed:
        return False
    if model_params.get("family") == "snnc":
        return method in SNNC_FAMILY_METHODS
    return method not in SNNC_METHODS


TRAINING_METHODS = {"surrogate", "sparseprop", "surrogate_normal", "sparseprop_normal", "localzo", "localzo_dense"}
DIRECT_METHODS = {"surrogate", "localzo"}  # the direct-training (spiking CNN) track


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
    def _check_params(self, info: ValidationInfo) -> "MethodSpec":
        if self.name not in METHOD_PARAMS:
            raise ValueError(f"unknown method {self.name!r}; expected one of {sorted(METHOD_PARAMS)}")
        # A suite file is validated strictly (true is not 1); the context carries that down here.
        strict = bool(info.context and info.context.get("strict"))
        validated = METHOD_PARAMS[self.name].model_validate(self.params, strict=strict)
        object.__setattr__(self, "params", validated.model_dump())
        return self


def _check_rts_params(params: dict[str, Any], activation: str) -> None:
    """RTS's parameters belong to ``activation: rts`` only: ``rts_thresh`` (> 0) and ``shift_relu``
    (integer >= 0) of its ANN, ``shift_snn`` (integer >= 0, omitted: T_max) and ``spiking_output``
    (bool) of its conversion."""
    given = [k for k in ("rts_thresh", "shift_relu", "shift_snn", "spiking_output") if k in params]
    if given and activation != "rts":
        raise ValueError(f"{', '.join(given)}: only for activation: rts (this model's activation is {activation})")
    thresh = params.get("rts_thresh", 1.0)
    # An infinite θ is no clip, and θ/(2·shift_relu) = inf would zero every activation.
    if isinstance(thresh, bool) or not isinstance(thresh, (int, float)) or not 0 < thresh < math.inf:
        raise ValueError(f"rts_thresh must be a positive finite number, got {thresh!r}")
    shift = params.get("shift_relu", 0)
    if isinstance(shift, bool) or not isinstance(shift, int) or shift < 0:
        raise ValueError(f"shift_relu must be a non-negative integer (0: no shift), got {shift!r}")
    shift = params.get("shift_snn")
    if shift is not None and (isinstance(shift, bool) or not isinstance(shift, int) or shift < 0):
        raise ValueError(f"shift_snn must be a non-negative integer (0: no shift; omitted: T_max), got {shift!r}")
    if not isinstance(params.get("spiking_output", True), bool):
        raise ValueError(f"spiking_output must be true or false, got {params['spiking_output']!r}")


class ModelSpec(_Strict):
    """One model of the sweep: a registry name and keyword arguments for its constructor."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    checkpoint: Optional[str] = Field(None, description="a trained ANN to load instead of training")
    # Not part of a cell's configuration (excluded from dumps, so no key changes): which cells exist.
    methods: Optional[list[str]] = Field(
        None, exclude=True, description="the suite's methods this model runs, by name; omitted: every method"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_short_forms(cls, value: Any) -> Any:
        return _named_entry(value, own_fields=("checkpoint", "methods"))

    @model_validator(mode="after")
    def _check_conversion_params(self) -> "ModelSpec":
        from snnbench.threshold_rule import parse_threshold

        activation = self.params.get("activation", "qcfs")
        if activation not in ("qcfs", "relu", "rts"):
            raise ValueError(f"activation must be 'qcfs', 'relu' or 'rts', got {activation!r}")
        _check_rts_params(self.params, activation)
        if "threshold" in self.params:
            parse_threshold(self.params["threshold"])
        batches = self.params.get("threshold_batches", 1)
        if not isinstance(batches, int) or isinstance(batches, bool) or batches < 1:
            raise ValueError(f"threshold_batches must be a positive integer, got {batches!r}")
        self._check_family()
        return self

    def _check_family(self) -> None:
        family = self.params.get("family", "default")
        if family not in ("default", "snnc"):
            raise ValueError(f"family must be 'default' or 'snnc' (SNN Calibration), got {family!r}")
        granularity = self.params.get("threshold_granularity", "layer")
        if granularity not in ("layer", "channel"):
            raise ValueError(f"threshold_granularity must be 'layer' or 'channel', got {granularity!r}")
        relu = self.params.get("activation", "qcfs") == "relu" or "weights" in self.params
        if (family == "snnc" or granularity == "channel") and not relu:
            raise ValueError("family 'snnc' and threshold_granularity 'channel' are for ReLU ANNs (activation: relu)")
        if granularity == "channel" and self.params.get("threshold", "max") != "mse":
            raise ValueError(
                "threshold_granularity 'channel' is SNN Calibration's per-channel MSE rule: set threshold: mse"
            )


# The datasets a suite may name; data/registry.py maps each to its loader (a test keeps the two equal).
DATASET_NAMES = (
    "digits",
    "digits_spiking",
    "cifar10",
    "cifar100",
    "imagenet",
    "fmnist",
    "nmnist",
    "shd",
    "synthetic",
    "synthetic_spiking",
    "dvs_cifar10",
    "dvs_gesture",
    "imagenet100",
)


class DatasetSpec(_Strict):
    """One dataset: a name, where to find it and whether it may be downloaded."""

    name: Literal[DATASET_NAMES]  # type: ignore[valid-type]
    root: Optional[str] = Field(None, description="data root; else --data-root, SNNBENCH_DATA, cache")
    download: bool = False
    limit_train: Optional[int] = Field(None, gt=0, description="use only the first N training samples")
    limit_test: Optional[int] = Field(None, gt=0, description="use only the first N test samples")
    # Event datasets (nmnist, shd) only: how event times become bins and whether test counts are clipped.
    binning: Literal["floor", "round"] = Field(
        "floor", description="event time → bin: floor(t/dt), or round(t/dt) as the official SparseProp code"
    )
    clip_test: bool = Field(
        True, description="clip test-split counts per bin to 1 (training counts always are); the official code does not"
    )

    @model_serializer(mode="wrap")
    def _omit_default_event_options(self, handler):
        # Left out at their defaults so that the records (and cell keys) of suites that never set
        # them stay what they were before the options existed.
        data = handler(self)
        for name in ("binning", "clip_test"):
            if data.get(name) == type(self).model_fields[name].default:
                data.pop(name, None)
        return data

    @model_validator(mode="after")
    def _event_options_on_event_data(self) -> "DatasetSpec":
        if self.name not in ("nmnist", "shd") and (self.binning != "floor" or not self.clip_test):
            raise ValueError(f"binning and clip_test apply to event datasets (nmnist, shd), not {self.name!r}")
        return self

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

    # The name becomes file names (<name>.jsonl.claims, .jsonl.corrupt): a file name has at most 255 bytes.
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", max_length=MAX_NAME_CHARS)
    description: str = ""
    track: Literal["conversion", "training", "direct"] = "conversion"
    datasets: list[DatasetSpec] = Field(..., min_length=1)
    models: list[ModelSpec] = Field(..., min_length=1)
    timesteps: list[int] = Field(..., min_length=1)
    methods: list[MethodSpec] = Field(..., min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Cells may run side by side (snnbench run --jobs); false where their wall times are the result.
    parallel: bool = True
    output: Optional[str] = Field(None, description="results file; default results/runs/<name>.jsonl")

    @field_validator("timesteps")
    @classmethod
    def _positive_sorted_timesteps(cls, value: list[int]) -> list[int]:
        bad = [t for t in value if t < 1]
        if bad:
            raise ValueError(f"every timestep must be a positive integer, got {bad[:5]}")
        big = [t for t in value if t > MAX_TIMESTEP]
        if big:
            raise ValueError(
                f"timesteps must be at most {MAX_TIMESTEP}, got {big[:5]} (a simulation keeps state per "
                "step and its time grows with T; published conversion results stop at T = 1024)"
            )
        return sorted(set(value))

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int]) -> list[int]:
        bad = [v for v in value if not 0 <= v <= MAX_SEED]
        if bad:
            raise ValueError(f"seeds must lie in [0, 2**63 - 1] (what torch's generators accept), got {bad[:5]}")
        if len(set(value)) != len(value):
            raise ValueError(f"seeds repeat ({value[:20]}); each seed is one cell, list it once")
        return value

    @model_validator(mode="after")
    def _bounded_cells(self) -> "Suite":
        n = len(self.datasets) * len(self.models) * len(self.methods) * len(self.seeds)
        if n > MAX_CELLS:
            raise ValueError(
                f"the suite expands to {n} cells (datasets × models × methods × seeds); at most "
                f"{MAX_CELLS} are allowed in one suite (each is planned, run and recorded on its own): split it"
            )
        return self

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
    def _model_methods_known(self) -> "Suite":
        names = [m.name for m in self.methods]
        for i, model in enumerate(self.models):
            if model.methods is not None and not model.methods:
                raise ValueError(f"models.{i}.methods: empty, so the model runs nothing; omit it to run every method")
            repeated = sorted({name for name in model.methods or () if model.methods.count(name) > 1})
            if repeated:
                raise ValueError(f"models.{i}.methods: {', '.join(repeated)} named more than once")
            for name in model.methods or ():
                if name not in names:
                    raise ValueError(f"models.{i}.methods: {name!r} is not one of the suite's methods {names}")
        return self

    @model_validator(mode="after")
    def _methods_fit_the_family(self) -> "Suite":
        """The RTS family's methods need an RTS ANN and the QCFS FTBC does not fit one (calibrate()
        refuses both), refused here so that no ANN is trained for a cell that cannot run."""
        if self.track != "conversion":
            return self
        for i, model in enumerate(self.models):
            rts = model.params.get("activation") == "rts"
            for name in model.methods or [m.name for m in self.methods]:
                if name in ("rts", "ftbc_rts") and not rts:
                    raise ValueError(
                        f"models.{i}: method {name!r} needs an RTS ANN (activation: rts); "
                        "limit the model with methods: [...]"
                    )
                if name in ("ftbc", "ftbc_iter") and rts:
                    raise ValueError(
                        f"models.{i}: method {name!r} does not fit an RTS ANN (activation: rts); use ftbc_rts, "
                        "or limit the model with methods: [...]"
                    )
        return self

    @model_validator(mode="after")
    def _methods_match_track(self) -> "Suite":
        allowed = {"conversion": CONVERSION_METHODS, "training": TRAINING_METHODS, "direct": DIRECT_METHODS}[self.track]
        for i, m in enumerate(self.methods):
            if m.name not in allowed:
                raise ValueError(
                    f"methods.{i}: {m.name!r} is not a {self.track}-track method; expected one of {sorted(allowed)}"
                )
        return self

    @model_validator(mode="after")
    def _methods_match_family(self) -> "Suite":
        # A method of one ANN family runs only on that family's models (the cells of other pairs are
        # not made); each method must apply to some model and each model take some method.
        for i, m in enumerate(self.methods):
            if not any(method_applies(m.name, model.params) for model in self.models):
                why = (
                    "it calibrates the SNN Calibration family (a model with activation: relu and family: snnc)"
                    if m.name in SNNC_METHODS
                    else f"a model with family: snnc takes {sorted(SNNC_FAMILY_METHODS)}"
                )
                raise ValueError(f"methods.{i}: {m.name!r} applies to none of the models; {why}")
        for j, model in enumerate(self.models):
            if not any(method_applies(m.name, model.params) for m in self.methods):
                takes = (
                    sorted(SNNC_FAMILY_METHODS) if model.params.get("family") == "snnc" else "no SNN Calibration method"
                )
                raise ValueError(f"models.{j} ({model.name}) takes none of the methods; it takes {takes}")
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
        if isinstance(got, bool) and e["type"] in ("int_type", "float_type"):
            msg += "; true/false are not numbers"
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
        # Strict: YAML's true/false are not the integers 1/0, "2" is not 2.
        return Suite.model_validate(data, strict=True, context={"strict": True})
    except ValidationError as err:
        raise SuiteError(format_validation_error(path, err)) from None


def read_yaml(path: Path, what: str = "suite file") -> Any:
    """The YAML file at ``path`` through the one strict reader; :class:`SuiteError` names the file and line."""
    try:
        return strict_yaml.read_yaml(path, what)
    except (strict_yaml.YamlError, UnusablePathError) as err:
        raise SuiteError(str(err)) from None


def suite_fields(data: Any, path: Path, overrides: Sequence[str] = ()) -> Any:
    """``data`` (read from ``path``) over its ``base:`` files, with ``overrides`` applied."""
    from snnbench.suite_overrides import SourceError, resolve_sources

    try:
        return resolve_sources(data, path, overrides, read=read_yaml)
    except (SourceError, strict_yaml.YamlError, UnusablePathError) as err:
        raise SuiteError(str(err)) from None


def load_suite(path: Union[str, Path], overrides: Sequence[str] = ()) -> Suite:
    """Read and validate a YAML suite, over its ``base:`` files and with ``key.path=value``
    ``overrides`` applied (see :mod:`snnbench.suite_overrides`); raise :class:`SuiteError` with a
    located message."""
    path = Path(path)
    return parse_suite(suite_fields(read_yaml(path), path, overrides), path)
