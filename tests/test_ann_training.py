"""ANN training: cached by configuration, resumable after a crash with the same final weights."""

from contextlib import contextmanager

import pytest
import torch
from torch.utils.data import TensorDataset

from snnbench.config import TrainingSpec
from snnbench.models.digits_cnn import digits_cnn
from snnbench.context import ProgressReporter, StepTracker
from snnbench.training.ann import train_ann


class Crash(Exception):
    pass


class CrashAfterEpochs(ProgressReporter):
    """Raises once ``n`` epochs have finished, like a process killed between epochs."""

    def __init__(self, n: int) -> None:
        self.n = n

    @contextmanager
    def track(self, description, total):
        outer = self

        class _T(StepTracker):
            count = 0

            def advance(self, n: int = 1) -> None:
                if description == "epochs":
                    self.count += n
                    if self.count >= outer.n:
                        raise Crash()

        yield _T()


def data():
    x = torch.rand(96, 1, 8, 8)
    return TensorDataset(x, (x.mean((1, 2, 3)) * 20).long() % 10)


def test_resume_after_crash_gives_the_same_weights(tmp_path):
    training = TrainingSpec(epochs=3, batch_size=32, lr=0.05)
    ds = data()
    torch.manual_seed(0)
    reference = train_ann(digits_cnn(width=4), ds, training, device=torch.device("cpu"), seed=1)

    ckpt = tmp_path / "ann.pt"
    torch.manual_seed(0)
    with pytest.raises(Crash):
        train_ann(
            digits_cnn(width=4),
            ds,
            training,
            device=torch.device("cpu"),
            seed=1,
            checkpoint_path=ckpt,
            progress=CrashAfterEpochs(2),
        )
    assert not ckpt.exists() and ckpt.with_suffix(".state.pt").exists()
    torch.manual_seed(123)  # a different fresh init must not matter: the saved state is loaded
    resumed = train_ann(digits_cnn(width=4), ds, training, device=torch.device("cpu"), seed=1, checkpoint_path=ckpt)
    assert resumed.epochs_run == 1
    for (name, a), (_, b) in zip(reference.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    assert ckpt.exists() and not ckpt.with_suffix(".state.pt").exists()

    cached = train_ann(digits_cnn(width=4), ds, training, device=torch.device("cpu"), seed=1, checkpoint_path=ckpt)
    assert cached.cached and cached.epochs_run == 0


def test_concurrent_trainers_of_one_configuration_train_once(tmp_path):
    # Two cells of one configuration (two methods on Ray) share a checkpoint: one trains, one loads.
    from concurrent.futures import ThreadPoolExecutor

    training = TrainingSpec(epochs=2, batch_size=32, lr=0.05)
    ds = data()
    ckpt = tmp_path / "shared.pt"

    def one(_):
        return train_ann(digits_cnn(width=4), ds, training, device=torch.device("cpu"), seed=3, checkpoint_path=ckpt)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, range(2)))
    assert sorted(r.cached for r in results) == [False, True]
    for a, b in zip(results[0].model.state_dict().values(), results[1].model.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert not list(tmp_path.glob("*.tmp"))
