"""Training, evaluation and timing of the spiking MLP: the loop every training-track method shares.

Timing synchronises the device around each phase (forward, backward, optimiser step) so the numbers
are wall-clock time of finished work. Per-layer times come from a :class:`SectionTimer`. Backward
sections are bounded by marks at the same points for every method: ``readout.bwd`` opens right before
``loss.backward()`` (loss, readout projection, ∂L/∂s of the last hidden layer); each hidden layer's
section opens where its backward begins — a gradient hook on its spikes for dense methods, a mark
inside the sparse stack's backward — and runs to the next mark or the end of ``loss.backward()``.

Peak memory (:class:`PeakMemory`) is measured per section, not per process: CUDA resets the
allocator's peak at the start; on the CPU it is the section's peak RSS minus the RSS at its start.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import torch
from torch.utils.data import DataLoader, Dataset

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


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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

    def mean(self, total: float) -> float:
        return total / self.timed_steps if self.timed_steps else math.nan

    @property
    def active_fraction(self) -> list[float]:
        return [a / self.active_steps for a in self.active_sum] if self.active_steps else []


def make_optimizer(model: SpikingMLP, s: TrainSettings) -> torch.optim.Optimizer:
    if s.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=s.lr, betas=(0.9, 0.999), weight_decay=s.weight_decay)
    if s.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    raise ValueError(f"unknown optimizer {s.optimizer!r}")


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
) -> TrainLog:
    opt = make_optimizer(model, settings)
    n_batches = len(train_set) // settings.batch_size or 1
    total_steps = max(1, settings.epochs * n_batches)
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
        if settings.schedule == "cosine"
        else None
    )
    shuffle_gen = torch.Generator().manual_seed(int(seed))
    log = TrainLog()
    start = time.perf_counter()
    model.train()
    epochs_bar = progress.track(f"{method.name}: epochs", settings.epochs) if progress else _null_bar()
    with epochs_bar as epoch_tracker:
        for epoch in range(settings.epochs):
            bar = progress.track(f"{method.name}: epoch {epoch + 1}", n_batches) if progress else _null_bar()
            with bar as tracker:
                for x, y in batches(train_set, settings.batch_size, timesteps, device, True, shuffle_gen, drop_last=True):
                    timed = log.steps >= settings.timing_warmup
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
    log.seconds = time.perf_counter() - start
    return log


@torch.no_grad()
def evaluate(model: SpikingMLP, dataset: Dataset, batch_size: int, timesteps: int, device: torch.device, backend: str = "auto") -> float:
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
        timer = SectionTimer(device)
        model.zero_grad(set_to_none=True)
        sync(device)
        t0 = time.perf_counter()
        out = model(x, method, seed=step_seed(seed, k), timer=timer, backend=backend)
        loss = model.loss(out, y)
        sync(device)
        t1 = time.perf_counter()
        timer.begin("readout.bwd")  # every method: the same work lands in each section (module doc)
        loss.backward()
        timer.end()
        sync(device)
        t2 = time.perf_counter()
        if k == 0:
            continue
        counted += 1
        fwd += (t1 - t0) * 1e3
        bwd += (t2 - t1) * 1e3
        for name, ms in timer.ms.items():
            layer_ms[name] += ms
        fractions = [a + b for a, b in zip(fractions, out.active_fraction)] if fractions else list(out.active_fraction)
    model.zero_grad(set_to_none=True)
    layers: dict[str, dict[str, float]] = defaultdict(dict)
    for name, ms in layer_ms.items():
        layer, phase = name.rsplit(".", 1)
        layers[layer][f"{phase}_ms"] = ms / counted
    for i, f in enumerate(fractions):
        layers[f"hidden{i + 1}"]["active_fraction"] = f / counted
    return StepTiming(fwd / counted, bwd / counted, dict(layers), [f / counted for f in fractions])


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


def _rss_reader():
    """A function returning this process's current RSS in bytes."""
    try:
        import psutil

        process = psutil.Process()
        return lambda: int(process.memory_info().rss)
    except ImportError:
        return lambda: _proc_status_bytes("VmRSS")


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
        self._read = _rss_reader()
        self._start = self._max = self._read()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._max = max(self._max, self._read())

    def __exit__(self, *exc) -> bool:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
            return False
        if self._thread is None:
            peak = _proc_status_bytes("VmHWM")
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
        "step_ms": round(log.mean(log.fwd_ms + log.bwd_ms + log.opt_ms), 4) if log.timed_steps else round(method_step, 4),
        "opt_ms": round(opt_ms, 4),
        "layers": layers,
        "active_fraction": round(sum(log.active_fraction) / len(log.active_fraction), 6) if log.active_fraction else (
            round(sum(hidden_fractions) / len(hidden_fractions), 6) if hidden_fractions else 1.0
        ),
        "measured_fwd_ms": round(method_timing.fwd_ms, 4),
        "measured_bwd_ms": round(method_timing.bwd_ms, 4),
        "dense_fwd_ms": round(dense_timing.fwd_ms, 4),
        "dense_bwd_ms": round(dense_timing.bwd_ms, 4),
        "dense_step_ms": round(dense_step, 4),
        "bwd_speedup": round(dense_timing.bwd_ms / max(method_timing.bwd_ms, 1e-9), 3),
        "step_speedup": round(dense_step / max(method_step, 1e-9), 3),
    }
