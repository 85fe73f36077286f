"""The synthetic data: what it holds, that it is reproducible, and how it is batched."""

import lightning as L
import pytest
import torch

from linear_pl.regression import LinearModel, SyntheticDataModule
from linear_pl.regression.closed_form import least_squares, stable_lr
from linear_pl.regression.data import TUTORIAL_WEIGHTS


def make(**kwargs) -> SyntheticDataModule:
    datamodule = SyntheticDataModule(**kwargs)
    datamodule.setup("fit")
    return datamodule


def test_default_is_tutorial_one():
    dm = make()
    assert dm.true_weights == TUTORIAL_WEIGHTS == [2, 3, 4, 7, 11, 5, 13]
    assert dm.train_x.shape == (10, 7) and dm.train_x.dtype == torch.float32
    assert dm.train_y.shape == (10,)
    assert torch.equal(dm.train_x, dm.train_x.round())  # integers, like randint
    assert dm.train_x.min() >= 1 and dm.train_x.max() <= 100
    torch.testing.assert_close(dm.train_y, dm.train_x @ torch.tensor(TUTORIAL_WEIGHTS))


def test_bounds_are_inclusive_like_randint():
    dm = make(num_samples=2000, low=3, high=5, true_weights=[1.0])
    assert set(dm.train_x.flatten().tolist()) == {3.0, 4.0, 5.0}


def test_bias_and_noise():
    dm = make(true_weights=[1.0, 2.0], true_bias=10.0, num_samples=4000, noise_std=0.5)
    residual = dm.train_y - dm.train_x @ torch.tensor([1.0, 2.0]) - 10.0
    assert abs(residual.std().item() - 0.5) < 0.03
    assert abs(residual.mean().item()) < 0.03


def test_same_seed_same_data_and_training_set_ignores_validation_size():
    a, b = make(seed=7), make(seed=7, num_val_samples=500)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.train_x, make(seed=8).train_x)
    assert b.val_x.shape == (500, 7)


def test_same_seed_gives_these_exact_numbers_on_every_machine():
    # Pinned from a run: torch's CPU generator gives the same stream on every machine.
    assert make(seed=0).train_x[0].tolist() == [45.0, 40.0, 34.0, 61.0, 64.0, 80.0, 28.0]


def test_batches_are_slices_in_fixed_order():
    dm = make(num_samples=10, batch_size=4)
    batches = list(dm.train_dataloader())
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([x for x, _ in batches]), dm.train_x)
    # views of the data, not copies
    assert batches[1][0].untyped_storage().data_ptr() == dm.train_x.untyped_storage().data_ptr()


def test_shuffle_order_depends_on_seed_and_epoch_only():
    def order(seed, epoch):
        loader = make(shuffle=True, seed=seed).train_dataloader()
        loader.sampler.set_epoch(epoch)  # as Lightning does each epoch
        return [y.item() for _, y in loader]

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert sorted(order(1, 0)) == sorted(make(seed=1).train_y.tolist())


def test_stable_lr_is_one_over_the_largest_squared_norm_for_batch_one():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert stable_lr(x) == 1 / 25
    assert stable_lr(x, bias=True) == 1 / 26  # the bias is a feature of value 1
    # The batch's mean squared norm; norms are taken in float32, so equal to float32 precision.
    assert stable_lr(x, batch_size=2) == pytest.approx(1 / 15, rel=1e-6)


def test_stable_lr_is_where_sgd_starts_to_diverge():
    # One sample: SGD multiplies the error by (1 - 2 lr ||x||^2) each step.
    x, y = torch.tensor([[3.0, 4.0]]), torch.tensor([1.0])
    limit = stable_lr(x)
    for factor, grows in [(0.9, False), (1.1, True)]:
        w = torch.zeros(2, requires_grad=True)
        optimizer = torch.optim.SGD([w], lr=factor * limit)
        for _ in range(200):
            loss = torch.nn.functional.mse_loss(x @ w, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert (loss.item() > 1.0) == grows


def test_least_squares_recovers_exact_weights_and_bias():
    dm = make(true_weights=[1.3, 2.9, 3.7], true_bias=0.7, num_samples=50)
    weights, bias = least_squares(dm.train_x, dm.train_y, bias=True)
    torch.testing.assert_close(torch.tensor(weights), torch.tensor([1.3, 2.9, 3.7]), atol=1e-4, rtol=0)
    assert abs(bias - 0.7) < 1e-3


def test_drawing_in_chunks_gives_the_same_data(monkeypatch):
    whole = SyntheticDataModule(num_samples=50, noise_std=1.0, target="sine")
    whole.setup()
    monkeypatch.setattr("linear_pl.regression.data._CHUNK_ELEMENTS", 8)  # one row of 7 features per chunk
    chunked = SyntheticDataModule(num_samples=50, noise_std=1.0, target="sine")
    chunked.setup()
    for name in ("train_x", "train_y", "val_x", "val_y"):
        assert torch.equal(getattr(whole, name), getattr(chunked, name))


def test_data_lives_on_the_training_device_and_batches_are_views_of_it():
    class SeeBatches(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            x, y = batch
            assert x.device == trainer.strategy.root_device
            # A view into the data module's tensor: no copy, no host-to-device transfer per step.
            assert x.untyped_storage().data_ptr() == trainer.datamodule.train_x.untyped_storage().data_ptr()
            self.seen = getattr(self, "seen", 0) + 1

    see = SeeBatches()
    dm = SyntheticDataModule(batch_size=3)
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[see],
    )  # fmt: skip
    trainer.fit(LinearModel(lr=1e-6), dm)
    assert dm.train_x.device == trainer.strategy.root_device
    assert see.seen == 4  # 10 samples at batch 3: 3 + 3 + 3 + 1
