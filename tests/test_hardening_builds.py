"""The preflight builds what the cell builds: every model entry, torchvision weights, one sample of every
dataset, every cache and resume state and the device are checked by the cell's own functions before
the first cell runs. Each case through the CLI (exit 2, the message, no traceback, earlier records
intact) and through the API (an UnusableInputError with the same message)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import snnbench
from snnbench.cli import app
from snnbench.errors import UnusableInputError

runner = CliRunner()
DEFAULT_METHODS = {
    "conversion": ["qcfs"],
    "direct": [{"name": "surrogate", "surrogate": "atan"}],
    "training": [{"name": "surrogate", "surrogate": "fast_sigmoid", "width": 10}],
}
EARLIER = {"schema": 1, "key": "digits/other/qcfs/seed=0/x", "metrics": {}}


def _suite(tmp_path: Path, track: str, models: list, *, datasets=None, methods=None, **extra) -> Path:
    suite = {
        "name": f"t_{track}",
        "track": track,
        "datasets": datasets or [{"name": "digits", "limit_train": 64, "limit_test": 32}],
        "models": models,
        "timesteps": [2],
        "methods": methods or DEFAULT_METHODS[track],
        "device": "cpu",
        "training": {"epochs": 1, "batch_size": 32},
        **extra,
    }
    path = tmp_path / f"t_{track}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _refused(tmp_path: Path, suite: Path, *needles: str, verbs=("validate", "run"), data_root=None) -> None:
    """Exit 2 with every needle on validate --deep and run, no traceback; an earlier record kept; the API
    raises the same message."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    results = out / f"{yaml.safe_load(suite.read_text())['name']}.jsonl"
    results.write_text(json.dumps(EARLIER) + "\n")
    common = ["--results-dir", str(out), "--cache-dir", str(tmp_path / "cache")]
    common += ["--data-root", str(data_root)] if data_root else []
    for verb in verbs:
        args = [verb, str(suite), *common] + (["--deep"] if verb == "validate" else [])
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (verb, result.output, result.exception)
        assert "Traceback" not in result.output and "allow_pickle" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        for needle in needles:
            assert needle in result.output, (verb, needle, result.output)
    assert results.read_text().splitlines() == [json.dumps(EARLIER)]
    with pytest.raises(UnusableInputError) as err:
        snnbench.run(suite, results_dir=out, cache_dir=tmp_path / "cache", data_root=data_root)
    for needle in needles:
        assert needle in str(err.value)


def test_model_entries_of_every_track_are_built_before_any_cell(tmp_path):
    direct = [
        {"name": "spiking_cnn_small", "channels": [4, 8], "loss": "hinge"},
        {"name": "spiking_cnn_small", "channels": "wide"},
        {"name": "spiking_cnn_small", "norm": "layernorm"},
    ]
    _refused(
        tmp_path,
        _suite(tmp_path, "direct", direct),
        "models.0 (spiking_cnn_small",
        "loss: expected one of ['tet', 'mean'], got 'hinge'",
        "models.1",
        "channels: expected two positive integers [c1, c2], got 'wide'",
        "models.2",
        "norm: expected one of ['tdbn', 'bn', 'none'], got 'layernorm'",
    )
    mlp = _suite(tmp_path, "training", [{"name": "snn_mlp", "hidden": "wide"}], datasets=["digits_spiking"])
    _refused(tmp_path, mlp, "models.0 (snn_mlp", "hidden: expected a positive integer or a list of them, got 'wide'")
    # The conversion track's size check no longer swallows what torch raises on the meta device.
    negative = _suite(tmp_path, "conversion", [{"name": "digits_cnn", "width": -3}])
    _refused(tmp_path, negative, "models.0", "negative dimension -3")
    # A width of 0 builds on any device (torch only warns): the check refuses the empty layers.
    zero = _suite(tmp_path, "conversion", [{"name": "digits_cnn", "width": 0}])
    _refused(tmp_path, zero, "models.0: model 'digits_cnn' with {'width': 0} has layers of size 0")
    qcfs_mse = _suite(tmp_path, "conversion", [{"name": "digits_cnn", "width": 4, "threshold": "mse"}])
    _refused(tmp_path, qcfs_mse, "models.0.threshold: applies to ReLU networks")


def test_torchvision_weights_are_resolved_before_any_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))  # nothing cached: enum weights need download
    import torchvision

    def case(weights, *needles):
        entry = {"name": "torchvision:squeezenet1_1", "weights": weights}
        _refused(tmp_path, _suite(tmp_path, "conversion", [entry]), "models.0 (torchvision:squeezenet1_1", *needles)

    case(5, "weights: expected a state-dict file path or a weights enum name, got 5")
    case(str(tmp_path / "gone.pth"), "gone.pth not found")
    case("NOPE", "has no weights 'NOPE'")
    case("IMAGENET1K_V1", "not downloaded without permission", "download: true")
    text = tmp_path / "notes.pth"
    text.write_text("hello world\nnot a tensor\n")
    case(str(text), str(text), "cannot be read")
    other = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small(num_classes=10).state_dict(), other)
    case(str(other), "checkpoint does not fit SqueezeNet", "missing keys [features.0.weight")


def _frames(root: Path, steps: int, per_class: int = 6) -> list[Path]:
    from snnbench.data.dvs import CIFAR10_CLASSES

    files = []
    for cls in CIFAR10_CLASSES:
        folder = root / "CIFAR10DVS" / f"frames_number_{steps}_split_by_number" / cls
        folder.mkdir(parents=True)
        for i in range(per_class):
            files.append(folder / f"{i}.npz")
            np.savez(files[-1], frames=np.ones((steps, 2, 4, 4), dtype=np.float32))
    return files


def test_dvs_frame_files_are_read_before_any_cell(tmp_path):
    root = tmp_path / "data"
    first = _frames(root, steps=2)[0]  # sample 0 of the training split
    suite = _suite(
        tmp_path,
        "direct",
        [{"name": "spiking_cnn_small", "channels": [2, 2], "image_size": 48}],
        datasets=[{"name": "dvs_cifar10"}],
    )
    first.write_bytes(b"garbage" * 10)
    _refused(tmp_path, suite, str(first), "not an .npz archive", "refused without unpickling", data_root=root)
    np.savez(first, frames=np.array([{"a": 1}], dtype=object))
    _refused(tmp_path, suite, str(first), "object array", data_root=root)
    np.savez(first, frames=np.ones((3, 2, 4, 4), dtype=np.float32))
    _refused(
        tmp_path, suite, str(first), "shape [3, 2, 4, 4]; expected numbers of shape [T=2, 2, H, W]", data_root=root
    )


def _cifar10(root: Path, wrong_label: int) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [wrong_label if name == "data_batch_3" else 1, 2]
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": np.zeros((2, 3072), dtype=np.uint8), "labels": labels}, fh)
    return folder / "data_batch_3"


def test_cifar_labels_out_of_range_name_the_batch(tmp_path):
    root = tmp_path / "data"
    bad = _cifar10(root, wrong_label=10)
    suite = _suite(tmp_path, "conversion", [{"name": "digits_cnn", "width": 4}], datasets=["cifar10"])
    _refused(tmp_path, suite, str(bad), "label 10 out of range; cifar10 labels are 0..9", data_root=root)


def test_caches_and_resume_states_load_with_the_cells_loaders(tmp_path):
    from snnbench.api import load_suite
    from snnbench.records.cells import expand
    from snnbench.training.conv_train import cache_path

    suite = _suite(tmp_path, "direct", [{"name": "spiking_cnn_small", "channels": [2, 2]}])
    cached = cache_path(expand(load_suite(suite))[0], tmp_path / "cache", None)
    cached.parent.mkdir(parents=True)
    torch.save({"model": {"w": torch.zeros(2)}, "metrics": {}}, cached)
    _refused(tmp_path, suite, str(cached), "not a cached direct-trained SNN of this model")
    cached.rename(cached.with_suffix(".state.pt"))
    _refused(tmp_path, suite, str(cached.with_suffix(".state.pt")), "not a training-resume state of this model")


def test_device_checkpoint_data_root_and_tonic(tmp_path, monkeypatch):
    if not torch.cuda.is_available():
        cuda = _suite(tmp_path, "conversion", [{"name": "digits_cnn", "width": 4}], device="cuda")
        _refused(tmp_path, cuda, "device: cuda was asked for, but torch sees no CUDA device")
    text = tmp_path / "ckpt.pt"
    text.write_text("a text file\n")
    ckpt = _suite(tmp_path, "conversion", [{"name": "digits_cnn", "width": 4, "checkpoint": str(text)}])
    _refused(tmp_path, ckpt, str(text), "cannot be read (truncated or not a PyTorch file")
    afile = tmp_path / "afile"
    afile.write_text("")
    cifar = _suite(tmp_path, "conversion", [{"name": "digits_cnn", "width": 4}], datasets=["cifar10"])
    _refused(tmp_path, cifar, f"{afile} is a file; expected the folder that holds the datasets", data_root=afile)
    spikes = _suite(tmp_path, "direct", [{"name": "spiking_cnn_small"}], datasets=["digits_spiking"])
    _refused(tmp_path, spikes, "dataset 'digits_spiking' on the direct track", "needs image data [C, H, W]")
    monkeypatch.setitem(__import__("sys").modules, "tonic", None)  # import tonic raises ImportError
    shd = _suite(tmp_path, "training", [{"name": "snn_mlp", "hidden": 8}], datasets=[{"name": "shd", "download": True}])
    _refused(tmp_path, shd, "SHD is read with tonic, which is not installed", data_root=tmp_path / "empty")


def test_unusable_input_inside_a_cell_ends_the_run_with_exit_2(tmp_path, monkeypatch):
    import snnbench.conversion.pipeline as pipeline
    from snnbench.safe_io import UnusableFileError

    def cell(cell, ctx):
        if cell.seed == 1:
            raise UnusableFileError("planted.pt: refused in the cell")
        return {"ann_acc": 50.0, "snn_acc": {"2": 40.0}}

    monkeypatch.setattr(pipeline, "run_conversion_cell", cell)
    suite = _suite(tmp_path, "conversion", [{"name": "digits_cnn", "width": 4}], seeds=[0, 1])
    result = runner.invoke(app, ["run", str(suite), "--results-dir", str(tmp_path / "out")])
    assert result.exit_code == 2 and "planted.pt: refused in the cell" in result.output, result.output
    assert "cell failed" not in result.output and "Traceback" not in result.output
    records = [json.loads(line) for line in (tmp_path / "out" / "t_conversion.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in records] == [0]  # the cell before it is recorded
    with pytest.raises(UnusableFileError, match="refused in the cell"):
        snnbench.run(suite, results_dir=tmp_path / "out2")


def test_ann_cache_key_covers_the_data_folder(tmp_path):
    from snnbench.api import load_suite
    from snnbench.conversion.pipeline import ann_cache_path
    from snnbench.records.cells import expand

    cifar = expand(load_suite(_suite(tmp_path, "conversion", [{"name": "digits_cnn"}], datasets=["cifar10"])))[0]
    assert ann_cache_path(cifar, tmp_path, tmp_path / "A") != ann_cache_path(cifar, tmp_path, tmp_path / "B")
    digits = expand(load_suite(_suite(tmp_path, "conversion", [{"name": "digits_cnn"}])))[0]
    assert ann_cache_path(digits, tmp_path, tmp_path / "A") == ann_cache_path(digits, tmp_path, tmp_path / "B")


def test_api_takes_one_string_for_a_list_option(tmp_path):
    suite = _suite(tmp_path, "conversion", [{"name": "digits_cnn", "width": 4}])
    assert snnbench.load_suite(suite, "training.epochs=3").training.epochs == 3


def test_the_preflight_leaves_torch_random_state_as_it_was(tmp_path):
    from snnbench.records.cells import expand
    from snnbench.runner.preflight import check_cells

    suite = snnbench.load_suite(_suite(tmp_path, "conversion", [{"name": "digits_cnn", "width": 4}], seeds=[3]))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    check_cells(suite, expand(suite), None, tmp_path / "cache")  # builds seed the model with seed 3
    assert torch.equal(torch.get_rng_state(), before)


def test_a_ray_task_hands_unusable_input_to_the_driver(tmp_path):
    """The task body returns the message apart from other failures (which are retried); the driver
    raises it as a local run does. Checked without starting Ray."""
    from snnbench.context import RunContext
    from snnbench.records.cells import expand
    from snnbench.runner.ray_executor import _run_cell_task
    from snnbench.safe_io import UnusableFileError

    cell = expand(snnbench.load_suite(_suite(tmp_path, "conversion", [{"name": "digits_cnn", "width": 4}])))[0]

    def refuse(cell, ctx):
        raise UnusableFileError("planted.pt: refused in the worker")

    result = _run_cell_task(cell, RunContext(device=torch.device("cpu"), cache_dir=tmp_path), refuse, 0, 1)
    assert result["unusable"] == "planted.pt: refused in the worker" and result["metrics"] is None
