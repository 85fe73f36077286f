"""DDP on two CPU processes (gloo) gives the answer one process gives, on any model.

Run as a process of the script: strategy "ddp" relaunches the current command for the other rank, and inside
pytest that command would be pytest itself. The process imports the fixture classifier from tests/ (on its
PYTHONPATH).
"""

import os

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from runner.commands import assert_clean
from runner.lit_classifier import CLASSIFIER, Blobs

pytestmark = pytest.mark.slow

# 200 samples: 120 to train on, 30 steps an epoch at batch 2 on each of 2 ranks, or at batch 4 on one. No
# dropout: after the start, neither run draws anything at random but the epoch's order. best.ckpt follows a
# torchmetrics accuracy, which Lightning reduces over the ranks.
DATA = [*CLASSIFIER, "--num_samples", "200", "--dropout", "0", "--max_epochs", "4", "--log_every_n_epochs", "2",
        "--monitor", "val/acc", "--mode", "max", "--trainer.log_every_n_steps", "1"]  # fmt: skip
DDP = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]


class AllRanksOrder(Blobs):
    """The classifier's data in the order Lightning's DistributedSampler draws an epoch for all ranks together.

    Under DDP, Lightning gives a user's train loader its own ``DistributedSampler(shuffle=True)``, seeded by
    ``PL_GLOBAL_SEED`` (the run's --seed) and the epoch (``use_distributed_sampler``, documented). Rank r takes
    every other index of that permutation, so a step of two ranks at batch b trains on the 2b indices that one
    process takes at batch 2b from the same permutation: this loader's."""

    def train_dataloader(self) -> DataLoader:
        seed = int(os.environ["PL_GLOBAL_SEED"])  # set by the run's seed_everything before it asks for loaders
        sampler = DistributedSampler(self.train_set, num_replicas=1, rank=0, shuffle=True, seed=seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler)  # Lightning sets its epoch


def test_a_users_classifier_trains_under_ddp_as_one_process_at_the_double_batch(train, script, tmp_path):
    two = script("train", *DATA, *DDP, "--batch_size", "2", "--default_root_dir", "two")
    assert two.status == 0, two.stderr  # also: no gloo abort at exit
    assert_clean(two)  # no warnings from either rank
    ddp = two.results
    assert ddp["world_size"] == 2 and ddp["global_step"] == 4 * 30  # each rank takes its share of the batches
    assert ddp["rank_weight_spread"] == 0.0  # every rank ends with identical weights (gathered after fit)
    assert ddp["test"]["test/acc"] > 0.5
    # Only rank 0 reports: one line an epoch, one verdict, one test line, and one results.json.
    assert two.stdout.count("Epoch [4/4]") == 1
    assert two.stdout.count("After 4 epochs") == 1 and two.stdout.count("Test (best.ckpt)") == 1
    assert "Seed set to" not in two.stderr

    # The averaged gradients of two ranks at batch 2 are one process's at batch 4 on the same rows: the same
    # weights, to float32 rounding.
    one = train(*DATA, "--data", "runner.test_ddp.AllRanksOrder", "--batch_size", "4",
                "--default_root_dir", str(tmp_path / "one"))  # fmt: skip
    assert one.status == 0, one.stderr
    assert one.results["world_size"] == 1 and one.results["global_step"] == ddp["global_step"]
    a, b = (torch.load(r.run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"] for r in (one, two))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a), {k: (a[k] - b[k]).abs().max() for k in a}
    assert ddp["final_train_loss"] == pytest.approx(one.results["final_train_loss"], rel=1e-4)
