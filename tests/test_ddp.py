"""DDP on two CPU processes (gloo) gives the answer one process gives.

Run as a process of the script: strategy "ddp" relaunches the current command for the other rank, and
inside pytest that command would be pytest itself. Any model (several layers, a user's shuffling loader)
under DDP: runner/test_ddp.py.
"""

import pytest
from runner.commands import assert_clean

pytestmark = pytest.mark.slow

DDP = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
# 20 samples, raw features at lr 1e-5 for 3 epochs, far from converged: other batches show in the weights.
DATA = [
    "--num_samples",
    "20",
    "--precondition",
    "none",
    "--lr",
    "1e-5",
    "--max_epochs",
    "3",
    "--log_every_n_epochs",
    "1",
]


def test_the_default_run_under_ddp_matches_one_process_at_the_double_batch_and_shuffle_is_honoured(train, script):
    # The default run (10 samples, batch 1) on 2 ranks, against one process at batch 2: every step sees the same 2
    # rows. It converges between report epochs: the final validation runs on both ranks (a collective).
    one = train("--batch_size", "2", "--default_root_dir", "one")  # the reference, in this process
    two = script("train", *DDP, "--default_root_dir", "two")
    assert one.status == 0, one.stderr
    assert two.status == 0, two.stderr  # also: no gloo abort at exit

    # Shuffle off is honoured (Lightning would inject shuffle=True), each rank takes its share of the
    # batches, and the averaged gradients equal the double batch's: the same weights to float32 rounding.
    single, ddp = one.results, two.results
    assert single["world_size"] == 1 and ddp["world_size"] == 2
    assert ddp["converged"] and ddp["max_abs_error"] < 0.01
    assert ddp["learned_weights"] == pytest.approx(single["learned_weights"], rel=1e-5)
    assert ddp["epochs"] == single["epochs"] and ddp["global_step"] == single["global_step"] == single["epochs"] * 5
    # Every rank ends with identical weights (gathered from both ranks after fit).
    assert ddp["rank_weight_spread"] == 0.0
    assert (two.run_dir / "checkpoints" / "last.ckpt").is_file()

    # Only rank 0 reports: one header, one table, one verdict, and one results.json.
    assert two.stdout.count("Initial weights") == 1
    assert two.stdout.count("Epoch [10/3000]") == 1
    assert two.stdout.count("Not recovered") + two.stdout.count("Recovered") == 1
    assert "Seed set to" not in two.stderr
    assert_clean(two)  # no warnings from either rank (Lightning's all_gather once printed a torch deprecation)

    # And shuffle on is honoured too: other batches than one process's at the double batch without shuffling
    # (which two ranks without shuffling match, above), so other weights.
    unshuffled = train(*DATA, "--batch_size", "4", "--default_root_dir", "unshuffled")
    shuffled = script("train", *DATA, *DDP, "--batch_size", "2", "--shuffle", "--default_root_dir", "shuffled")
    assert unshuffled.status == 0 and shuffled.status == 0, shuffled.stderr
    assert shuffled.results["global_step"] == unshuffled.results["global_step"] == 3 * 5
    assert shuffled.results["learned_weights"] != pytest.approx(unshuffled.results["learned_weights"], rel=1e-2)
