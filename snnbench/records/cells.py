"""A suite expands into cells (dataset × model × method × seed); each has a stable key.

The key is readable and carries a short hash of everything that changes the cell's result (model
parameters, method parameters, training settings, timesteps), so editing a suite's settings creates
new cells instead of silently reusing stale records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from snnbench.config import DatasetSpec, MethodSpec, ModelSpec, Suite, TrainingSpec, config_hash, method_applies
from snnbench.records.device import device_kind


@dataclass(frozen=True)
class Cell:
    suite: str
    track: str
    dataset: DatasetSpec
    model: ModelSpec
    method: MethodSpec
    seed: int
    timesteps: tuple[int, ...]
    training: TrainingSpec
    device: str

    def config(self) -> dict[str, Any]:
        """The resolved configuration stored with the record (plain JSON types)."""
        return {
            "suite": self.suite,
            "track": self.track,
            "dataset": self.dataset.model_dump(),
            "model": self.model.model_dump(),
            "method": self.method.model_dump(),
            "seed": self.seed,
            "timesteps": list(self.timesteps),
            "training": self.training.model_dump(),
            "device": self.device,
        }

    @property
    def key(self) -> str:
        cfg = self.config()
        # Where the data lives does not change the result; the device does (every timing), so a
        # CPU record never makes a GPU run skip its cell.
        cfg["dataset"] = {k: v for k, v in cfg["dataset"].items() if k not in ("root", "download")}
        return f"{self.dataset.name}/{self.model.name}/{self.method.name}/seed={self.seed}/{config_hash(cfg)}"


def expand(suite: Suite) -> list[Cell]:
    device = device_kind(suite.device)
    cells = []
    for dataset in suite.datasets:
        for model in suite.models:
            for method in suite.methods:
                if not method_applies(method.name, model.params, model.methods):
                    continue  # not listed for this model, or a method of another ANN family
                for seed in suite.seeds:
                    cells.append(
                        Cell(
                            suite=suite.name,
                            track=suite.track,
                            dataset=dataset,
                            model=model,
                            method=method,
                            seed=seed,
                            timesteps=tuple(suite.timesteps),
                            training=suite.training,
                            device=device,
                        )
                    )
    return cells
