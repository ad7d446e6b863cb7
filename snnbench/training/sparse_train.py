"""Training, evaluation and timing of the spiking MLP: the loop every training-track method shares.

Timing synchronises the device around each phase (forward, backward, optimiser step) so the numbers
are wall-clock time of finished work. Per-layer times come from a :class:`SectionTimer`. Backward
sections are bounded by marks at the same points for every method: ``readout.bwd`` opens right before
``loss.backward()`` (loss, readout projection, ∂L/∂s of the last hidden layer); each hidden layer's
section opens where its backward begins — a gradient hook on its spikes for dense methods, a mark
inside the sparse stack's backward — and runs to the next mark or the end of ``loss.backward()``.

Per-layer timing in the scope of the published SparseProp speed-ups (:class:`LayerSampler`): every
``stride``-th training step, before the optimiser moves the weights, the method and two dense
baselines run forward and backward on that step's batch — the dense PyTorch time loop under
autograd (the published baseline) and the fused Triton BPTT (on CUDA; on the CPU it is the same
PyTorch loop, so it is not run twice). Each hidden layer's sections are the layer alone: its
forward (input trace, current, scan and, for sparse methods, the recording of the active entries
in both orders — the layout work SparseProp does by sort / unique inside its backward, so the
forward+backward sum is the like-for-like number) and its backward (weight gradient and the input
gradient for the layer below).

Peak memory (:class:`PeakMemory`) is measured per section, not per process: CUDA resets the
allocator's peak at the start; on the CPU it is the section's peak RSS minus the RSS at its start.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator, Optional

import psutil
import torch
from torch.utils.data import DataLoader, Dataset

from snnbench.records.device import synchronize as sync
from snnbench.training.optim import lr_schedule, optimizer_by_name
from snnbench.training.snn_mlp import SpikingMLP, TrainingMethod


class SectionTimer:
    """Accumulates milliseconds per named section; ``on_backward`` makes gradient hooks that switch sections."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.ms: dict[str, float] = defaultdict(float)
        self._open: Optional[tuple[str, float]] = None

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        sync(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.ms[name] += (time.perf_counter() - start) * 1e3

    def begin(self, name: str) -> None:
        sync(self.device)
        now = time.perf_counter()
        if self._open is not None:
            self.ms[self._open[0]] += (now - self._open[1]) * 1e3
        self._open = (name, now)

    def end(self) -> None:
        if self._open is not None:
            sync(self.device)
            self.ms[self._open[0]] += (time.perf_counter() - self._open[1]) * 1e3
            self._open = None

    def on_backward(self, name: str):
        def hook(grad):
            self.begin(name)
            return None

        return hook


def batches(
    dataset: Dataset,
    batch_size: int,
    timesteps: int,
    device: torch.device,
    shuffle: bool = False,
    generator: Optional[torch.Generator] = None,
    limit: Optional[int] = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Time-major batches ``x[T, B, N]`` (cropped or zero-padded to ``timesteps``) and labels.

    ``drop_last`` (training) skips a final partial batch, as SparseProp's generator does: a batch of
    a few samples would get a full optimiser step from a very noisy gradient.
    """
    drop_last = drop_last and len(dataset) >= batch_size
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0, drop_last=drop_last
    )
    for k, (x, y) in enumerate(loader):
        if limit is not None and k >= limit:
            break
        x = x.float()
        if x.shape[1] >= timesteps:
            x = x[:, :timesteps]
        else:
            x = torch.cat([x, x.new_zeros(x.shape[0], timesteps - x.shape[1], x.shape[2])], 1)
        yield x.transpose(0, 1).contiguous().to(device), y.to(device)


@dataclass
class TrainSettings:
    epochs: int = 1
    batch_size: int = 256
    lr: float = 2e-4
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    timing_warmup: int = 2  # steps excluded from the per-step timing averages
    backend: str = "auto"


@dataclass
class TrainLog:
    steps: int = 0
    timed_steps: int = 0
    fwd_ms: float = 0.0
    bwd_ms: float = 0.0
    opt_ms: float = 0.0
    loss: float = math.nan
    active_sum: list[float] = field(default_factory=list)
    active_steps: int = 0
    seconds: float = 0.0
    sampling_s: float = 0.0  # spent in LayerSampler passes (not part of ``seconds``)

    def mean(self, total: float) -> float:
        return total / self.timed_steps if self.timed_steps else math.nan

    @property
    def active_fraction(self) -> list[float]:
        return [a / self.active_steps for a in self.active_sum] if self.active_steps else []


def step_seed(seed: int, step: int) -> int:
    """Fresh LocalZO draws every step, reproducible from the cell's seed."""
    return (int(seed) * 100_003 + int(step) * 7 + 1) % (2**31 - 1)


def train(
    model: SpikingMLP,
    method: TrainingMethod,
    train_set: Dataset,
    settings: TrainSettings,
    timesteps: int,
    device: torch.device,
    seed: int = 0,
    progress=None,
    sampler: Optional["LayerSampler"] = None,
) -> TrainLog:
    """Train in place; ``sampler`` (optional) times the layers on every ``sampler.stride``-th step."""
    opt = optimizer_by_name(
        model.parameters(),
        settings.optimizer,
        settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )
    n_batches = len(train_set) // settings.batch_size or 1
    # A constant rate needs no scheduler step inside the timed optimizer step.
    sched = lr_schedule(opt, "cosine", settings.epochs * n_batches) if settings.schedule == "cosine" else None
    shuffle_gen = torch.Generator().manual_seed(int(seed))
    log = TrainLog()
    start = time.perf_counter()
    model.train()
    epochs_bar = progress.track(f"{method.name}: epochs", settings.epochs) if progress else _null_bar()
    with epochs_bar as epoch_tracker:
        for epoch in range(settings.epochs):
            bar = progress.track(f"{method.name}: epoch {epoch + 1}", n_batches) if progress else _null_bar()
            with bar as tracker:
                for x, y in batches(
                    train_set, settings.batch_size, timesteps, device, True, shuffle_gen, drop_last=True
                ):
                    timed = log.steps >= settings.timing_warmup
                    if sampler is not None and sampler.due(log.steps):
                        s0 = time.perf_counter()
                        sampler.sample(model, x, y, step_seed(seed, log.steps))
                        log.sampling_s += time.perf_counter() - s0
                    sync(device)
                    t0 = time.perf_counter()
                    out = model(x, method, seed=step_seed(seed, log.steps), backend=settings.backend)
                    loss = model.loss(out, y)
                    sync(device)
                    t1 = time.perf_counter()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    sync(device)
                    t2 = time.perf_counter()
                    opt.step()
                    if sched is not None:
                        sched.step()
                    sync(device)
                    t3 = time.perf_counter()
                    if timed:
                        log.timed_steps += 1
                        log.fwd_ms += (t1 - t0) * 1e3
                        log.bwd_ms += (t2 - t1) * 1e3
                        log.opt_ms += (t3 - t2) * 1e3
                    if out.active_fraction:
                        if not log.active_sum:
                            log.active_sum = [0.0] * len(out.active_fraction)
                        log.active_sum = [a + f for a, f in zip(log.active_sum, out.active_fraction)]
                        log.active_steps += 1
                    log.loss = float(loss.detach())
                    log.steps += 1
                    tracker.advance()
            epoch_tracker.advance()
    log.seconds = time.perf_counter() - start - log.sampling_s  # training alone, without the timing passes
    return log


@torch.no_grad()
def evaluate(
    model: SpikingMLP, dataset: Dataset, batch_size: int, timesteps: int, device: torch.device, backend: str = "auto"
) -> float:
    """Test accuracy in percent."""
    model.eval()
    correct = total = 0
    for x, y in batches(dataset, batch_size, timesteps, device):
        out = model(x, None, backend=backend)
        correct += int((out.logits.argmax(1) == y).sum())
        total += int(y.numel())
    return 100.0 * correct / max(1, total)


@dataclass
class StepTiming:
    fwd_ms: float
    bwd_ms: float
    layers: dict[str, dict[str, float]]
    active_fraction: list[float]


def time_steps(
    model: SpikingMLP,
    method: TrainingMethod,
    sample: list[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    seed: int = 0,
    backend: str = "auto",
) -> StepTiming:
    """Mean forward / backward time and per-layer sections of ``method`` on ``sample`` (weights unchanged).

    The first batch is a warm-up (compilation, allocator) and is not counted.
    """
    layer_ms: dict[str, float] = defaultdict(float)
    fwd = bwd = 0.0
    fractions: list[float] = []
    counted = 0
    for k, (x, y) in enumerate([sample[0], *sample]):
        p = timed_pass(model, method, x, y, device, step_seed(seed, k), backend)
        if k == 0:
            continue
        counted += 1
        fwd += p.fwd_ms
        bwd += p.bwd_ms
        for name, ms in p.sections.items():
            layer_ms[name] += ms
        fractions = [a + b for a, b in zip(fractions, p.active_fraction)] if fractions else list(p.active_fraction)
    model.zero_grad(set_to_none=True)
    layers: dict[str, dict[str, float]] = defaultdict(dict)
    for name, ms in layer_ms.items():
        layer, phase = name.rsplit(".", 1)
        layers[layer][f"{phase}_ms"] = ms / counted
    for i, f in enumerate(fractions):
        layers[f"hidden{i + 1}"]["active_fraction"] = f / counted
    return StepTiming(fwd / counted, bwd / counted, dict(layers), [f / counted for f in fractions])


@dataclass
class TimedPass:
    fwd_ms: float
    bwd_ms: float
    sections: dict[str, float]  # "hidden1.fwd", "hidden1.bwd", ..., "readout.bwd" → ms
    active_fraction: list[float]


def timed_pass(
    model: SpikingMLP,
    method: TrainingMethod,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    seed: int,
    backend: str = "auto",
) -> TimedPass:
    """One forward + loss + backward of ``method`` with per-section times; gradients are left in place."""
    timer = SectionTimer(device)
    model.zero_grad(set_to_none=True)
    sync(device)
    t0 = time.perf_counter()
    out = model(x, method, seed=seed, timer=timer, backend=backend)
    loss = model.loss(out, y)
    sync(device)
    t1 = time.perf_counter()
    timer.begin("readout.bwd")  # every method: the same work lands in each section (module doc)
    loss.backward()
    timer.end()
    sync(device)
    t2 = time.perf_counter()
    return TimedPass((t1 - t0) * 1e3, (t2 - t1) * 1e3, dict(timer.ms), list(out.active_fraction))


PHASES = ("fwd", "bwd", "fwdbwd")


@dataclass
class LayerSampler:
    """Per-layer times of the method and the two dense baselines on sampled training steps (module doc)."""

    method: TrainingMethod
    dense: TrainingMethod  # the dense surrogate of the same shape as the method's g
    device: torch.device
    stride: int = 5
    warmup: int = 2  # the first steps compile kernels and warm the allocator: never sampled
    backend: str = "auto"
    # A context that keeps the passes out of the caller's peak-memory measurement (PeakMemory.paused).
    pause: Callable[[], ContextManager] = contextlib.nullcontext
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    samples: int = 0

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ValueError(f"stride must be a positive integer, got {self.stride!r}")

    @property
    def fused_backend(self) -> str:
        return "triton" if self.device.type == "cuda" else "torch"

    def due(self, step: int) -> bool:
        return step >= self.warmup and (step - self.warmup) % self.stride == 0

    def sample(self, model: SpikingMLP, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
        runs = [("method", self.method, self.backend), ("torch_loop", self.dense, "torch")]
        if self.fused_backend == "triton":
            runs.append(("fused", self.dense, "auto"))
        # The dense method on the CPU is the PyTorch loop itself: one pass serves both names.
        same = self.method == self.dense and self.fused_backend != "triton" and self.backend in ("auto", "torch")
        with self.pause():
            for name, method, backend in runs[1:] if same else runs:
                for section, ms in timed_pass(model, method, x, y, self.device, seed, backend).sections.items():
                    for key in (name, "method") if same else (name,):
                        self.sums[f"{key}.{section}"] += ms
            model.zero_grad(set_to_none=True)
        self.samples += 1

    def _mean(self, run: str, layer: int, phase: str) -> float:
        if run == "fused" and self.fused_backend != "triton":
            run = "torch_loop"  # the same code on the CPU: measured once
        if phase == "fwdbwd":
            return self._mean(run, layer, "fwd") + self._mean(run, layer, "bwd")
        return self.sums.get(f"{run}.hidden{layer}.{phase}", math.nan) / max(1, self.samples)

    def metrics(self, n_hidden: int, active_fraction: list[float]) -> dict[str, Any]:
        """Flat ``layer{l}_*`` metrics (each name carries its scope) and a description of the scope."""
        out: dict[str, Any] = {}
        if not self.samples:
            return out
        for layer in range(1, n_hidden + 1):
            for phase in PHASES:
                ms = self._mean("method", layer, phase)
                out[f"layer{layer}_{phase}_ms"] = round(ms, 4)
                for base in ("torch_loop", "fused"):
                    base_ms = self._mean(base, layer, phase)
                    out[f"layer{layer}_{base}_{phase}_ms"] = round(base_ms, 4)
                    out[f"layer{layer}_{phase}_speedup_vs_{base}"] = round(base_ms / max(ms, 1e-9), 3)
            fraction = active_fraction[layer - 1] if layer <= len(active_fraction) else 1.0
            out[f"layer{layer}_active_fraction"] = round(fraction, 6)
        out["layer_timing"] = {
            "stride": self.stride,
            "samples": self.samples,
            "torch_loop": f"{self.dense.surrogate} surrogate, PyTorch time loop under autograd",
            "fused": (
                f"{self.dense.surrogate} surrogate, fused Triton BPTT"
                if self.fused_backend == "triton"
                else "no CUDA: the PyTorch time loop (the same numbers as torch_loop)"
            ),
        }
        return out


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise OSError(f"{field} not in /proc/self/status")


def _reset_kernel_peak_rss() -> bool:
    """Linux: reset this process's peak RSS (VmHWM) to its current RSS; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _proc_status_bytes("VmHWM")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of the ``with`` block only, not inherited from earlier cells of the process.

    ``kind`` says what ``peak_bytes`` is:
    - ``"cuda_max_allocated"``: ``torch.cuda.max_memory_allocated`` after a reset at block start
      (includes tensors already allocated then, e.g. the model's weights);
    - ``"cpu_rss_increase"``: the block's peak RSS minus the RSS at block start. On Linux the kernel
      tracks the peak exactly: the block resets the process's VmHWM (``/proc/self/clear_refs``) and
      reads it at the end. Elsewhere a thread samples the RSS every ``interval_s`` (misses shorter
      peaks; its GIL wake-ups can slow Python-heavy loops such as autograd through Python Functions).
      Either way memory the allocator reuses from before the block is not counted: a lower bound on
      the block's working set.
    """

    def __init__(self, device: torch.device, interval_s: float = 0.005) -> None:
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.kind = "cuda_max_allocated" if self.device.type == "cuda" else "cpu_rss_increase"
        self.peak_bytes = 0
        self._held = 0  # the peak before the last pause (see paused)
        self._paused = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        if _reset_kernel_peak_rss():
            self._start = _proc_status_bytes("VmRSS")
            return self
        process = psutil.Process()
        self._read = lambda: int(process.memory_info().rss)
        self._start = self._max = self._read()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self._paused:
                self._max = max(self._max, self._read())

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Work inside is not counted: the peak so far is kept and the tracker restarts afterwards."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._held = max(self._held, int(torch.cuda.max_memory_allocated(self.device)))
        elif self._thread is None:
            self._held = max(self._held, _proc_status_bytes("VmHWM"))
        self._paused = True
        try:
            yield
        finally:
            self._paused = False
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
            elif self._thread is None:
                _reset_kernel_peak_rss()

    def __exit__(self, *exc) -> bool:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = max(self._held, int(torch.cuda.max_memory_allocated(self.device)))
            return False
        if self._thread is None:
            peak = max(self._held, _proc_status_bytes("VmHWM"))
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._max, self._read())
        self.peak_bytes = max(0, int(peak - self._start))
        return False


class _null_bar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def advance(self, n: int = 1) -> None:
        pass

    def update(self, description: str) -> None:
        pass


def summarize(
    log: TrainLog,
    method_timing: StepTiming,
    dense_timing: StepTiming,
) -> dict[str, Any]:
    """Per-step and per-layer metrics, speed-ups against the dense surrogate measured on the same batches."""
    opt_ms = log.mean(log.opt_ms)
    opt_ms = 0.0 if math.isnan(opt_ms) else opt_ms
    layers: dict[str, Any] = {}
    for name, entry in method_timing.layers.items():
        dense = dense_timing.layers.get(name, {})
        row = {k: round(v, 4) for k, v in entry.items()}
        if "bwd_ms" in entry and dense.get("bwd_ms"):
            row["dense_bwd_ms"] = round(dense["bwd_ms"], 4)
            row["bwd_speedup"] = round(dense["bwd_ms"] / max(entry["bwd_ms"], 1e-9), 3)
        layers[name] = row
    hidden_fractions = method_timing.active_fraction or log.active_fraction
    method_step = method_timing.fwd_ms + method_timing.bwd_ms + opt_ms
    dense_step = dense_timing.fwd_ms + dense_timing.bwd_ms + opt_ms
    return {
        "fwd_ms": round(log.mean(log.fwd_ms), 4) if log.timed_steps else round(method_timing.fwd_ms, 4),
        "bwd_ms": round(log.mean(log.bwd_ms), 4) if log.timed_steps else round(method_timing.bwd_ms, 4),
        "step_ms": round(log.mean(log.fwd_ms + log.bwd_ms + log.opt_ms), 4)
        if log.timed_steps
        else round(method_step, 4),
        "opt_ms": round(opt_ms, 4),
        "layers": layers,
        "active_fraction": round(sum(log.active_fraction) / len(log.active_fraction), 6)
        if log.active_fraction
        else (round(sum(hidden_fractions) / len(hidden_fractions), 6) if hidden_fractions else 1.0),
        "measured_fwd_ms": round(method_timing.fwd_ms, 4),
        "measured_bwd_ms": round(method_timing.bwd_ms, 4),
        "dense_fwd_ms": round(dense_timing.fwd_ms, 4),
        "dense_bwd_ms": round(dense_timing.bwd_ms, 4),
        "dense_step_ms": round(dense_step, 4),
        "bwd_speedup": round(dense_timing.bwd_ms / max(method_timing.bwd_ms, 1e-9), 3),
        "step_speedup": round(dense_step / max(method_step, 1e-9), 3),
    }
