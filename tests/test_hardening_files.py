"""Nothing from a file executes: a code-executing pickle planted in every file snnbench reads is
refused with a message naming the file, and the payload never runs. Truncated files are named too."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.config import DatasetSpec
from snnbench.data.registry import load_dataset
from snnbench.models.checkpoint import load_checkpoint
from snnbench.models.digits_cnn import digits_cnn
from snnbench.safe_io import UnusableFileError
from snnbench.training.ann import train_ann

runner = CliRunner()


class Payload:
    """Unpickling this creates the marker file: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant_torch(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"features.0.weight": torch.zeros(1), "evil": Payload(marker)}, path)


def _training():
    from snnbench.config import TrainingSpec

    return TrainingSpec(epochs=1, batch_size=32, amp=False)


def _tiny_train_set():
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(64, 1, 8, 8, generator=g), torch.randint(10, (64,), generator=g))


def test_planted_pickles_are_refused_by_every_reader(tmp_path):
    marker = tmp_path / "PWNED"
    model = digits_cnn(width=4)

    checkpoint = tmp_path / "ckpt.pt"
    _plant_torch(checkpoint, marker)
    with pytest.raises(UnusableFileError, match=str(checkpoint)) as err:
        load_checkpoint(model, checkpoint)
    assert "refused without running" in str(err.value)

    cached = tmp_path / "cache" / "ann" / "x.pt"
    _plant_torch(cached, marker)
    with pytest.raises(UnusableFileError, match=str(cached)):
        train_ann(model, _tiny_train_set(), _training(), device=torch.device("cpu"), seed=0, checkpoint_path=cached)

    resume = tmp_path / "cache" / "ann" / "y.state.pt"
    _plant_torch(resume, marker)
    with pytest.raises(UnusableFileError, match="training-resume state"):
        train_ann(
            model,
            _tiny_train_set(),
            _training(),
            device=torch.device("cpu"),
            seed=0,
            checkpoint_path=resume.with_name("y.pt"),
        )

    folder = tmp_path / "data" / "cifar-100-python"
    folder.mkdir(parents=True)
    with open(folder / "train", "wb") as fh:
        pickle.dump({"data": Payload(marker), "fine_labels": [0]}, fh)
    with open(folder / "test", "wb") as fh:
        pickle.dump({"data": [], "fine_labels": []}, fh)
    with pytest.raises(UnusableFileError, match=str(folder / "train")):
        load_dataset(DatasetSpec(name="cifar100"), tmp_path / "data")

    # The suite file itself: YAML is loaded safely, a python tag is an error, not a call.
    suite = tmp_path / "evil.yaml"
    suite.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    result = runner.invoke(app, ["validate", str(suite)])
    assert result.exit_code == 2 and "Traceback" not in result.output

    assert not marker.exists(), "a payload ran"
    # (tests/test_ann_training.py resumes from a real state file: it loads with weights_only=True.)


def test_truncated_files_are_named(tmp_path):
    model = digits_cnn(width=4)
    cached = tmp_path / "ann" / "x.pt"
    cached.parent.mkdir()
    torch.save(model.state_dict(), cached)
    cached.write_bytes(cached.read_bytes()[:200])
    with pytest.raises(UnusableFileError, match=f"{cached}: the cached trained ANN cannot be read"):
        train_ann(model, _tiny_train_set(), _training(), device=torch.device("cpu"), seed=0, checkpoint_path=cached)

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    import numpy as np

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, fh)
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:100])
    with pytest.raises(UnusableFileError, match=str(folder / "data_batch_3")):
        load_dataset(DatasetSpec(name="cifar10"), tmp_path)


def test_empty_imagefolder_class_names_the_folder(tmp_path):
    import numpy as np
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / "imagenet" / split / cls).mkdir(parents=True)
    for split in ("train", "val"):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "imagenet" / split / "a" / "x.png")
    (tmp_path / "imagenet" / "train" / "b" / "notes.txt").write_text("not an image")
    with pytest.raises(UnusableFileError, match=str(tmp_path / "imagenet" / "train" / "b")):
        load_dataset(DatasetSpec(name="imagenet"), tmp_path)
