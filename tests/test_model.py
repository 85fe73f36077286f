"""The model, and Lightning's training of it against the tutorial's own plain PyTorch loop."""

import lightning as L
import pytest
import torch
from torch import nn

from linear_pl.regression import DotProduct, LinearModel, SyntheticDataModule


def test_forward_takes_one_sample_or_a_batch():
    model = LinearModel(num_features=3, bias=True, lr=0.1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        model.bias.fill_(0.5)
    assert model(torch.tensor([1.0, 1.0, 1.0])).shape == ()
    assert model(torch.tensor([1.0, 1.0, 1.0])).item() == 6.5
    assert model(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])).tolist() == [1.5, 6.5]


def test_bias_is_none_without_bias_like_nn_linear():
    model = LinearModel(num_features=4)
    assert model.bias is None
    assert isinstance(model.weight, nn.Parameter) and model.weight.shape == (4,)
    assert [name for name, _ in model.named_parameters()] == ["net.weight"]


def tutorial_plain_loop(x, y, weight, bias, lr, epochs):
    """Tutorial 1's loop as written: one sample at a time, fixed order, MSELoss, SGD."""
    w = nn.Parameter(weight.clone())
    params = [w] if bias is None else [w, nn.Parameter(bias.clone())]
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(params, lr=lr)
    for _ in range(epochs):
        for x_sample, y_sample in zip(x, y):
            y_pred = w @ x_sample + (params[1] if bias is not None else 0)
            loss = loss_fn(y_pred, y_sample)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("bias", [False, True])
def test_lightning_matches_the_plain_loop_step_for_step(bias):
    epochs, lr = 30, 1e-5
    datamodule = SyntheticDataModule(true_weights=[2, 3, 4, 7], true_bias=1.5 if bias else None, seed=3)
    torch.manual_seed(0)
    model = LinearModel(num_features=4, bias=bias, lr=lr)
    initial = [p.detach().clone() for p in model.parameters()]
    trainer = L.Trainer(
        max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(model, datamodule)

    expected = tutorial_plain_loop(
        datamodule.train_x, datamodule.train_y, initial[0], initial[1] if bias else None, lr, epochs
    )
    assert trainer.global_step == epochs * 10
    assert not torch.equal(model.weight.detach(), initial[0])  # it did train
    torch.testing.assert_close(model.weight.detach(), expected[0], rtol=1e-6, atol=1e-6)
    if bias:
        torch.testing.assert_close(model.bias.detach(), expected[1], rtol=1e-6, atol=1e-6)


def test_dot_product_is_the_tutorials_my_linear():
    torch.manual_seed(0)
    net = DotProduct(7)
    torch.manual_seed(0)
    assert torch.equal(net.weight, torch.randn(7))  # initialised as the tutorial does


def test_a_subclass_changes_the_loss_in_one_method():
    class L1Model(LinearModel):
        def loss(self, prediction, y):
            return (prediction - y.reshape(prediction.shape)).abs().mean()

    datamodule = SyntheticDataModule(true_weights=[2, 3], seed=1)
    model = L1Model(num_features=2, lr=1e-3)
    trainer = L.Trainer(
        max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, datamodule)
    with torch.no_grad():  # the epoch's train/loss and val/loss are the mean absolute error
        val_l1 = (model(datamodule.val_x) - datamodule.val_y).abs().mean()
    torch.testing.assert_close(trainer.callback_metrics["val/loss"], val_l1)
    assert trainer.callback_metrics["train/loss"] > 0
