"""DDP on two CPU processes (gloo) gives the answer one process gives.

Run as a process of the script: strategy "ddp" relaunches the current command for the other rank, and
inside pytest that command would be pytest itself. Any model (several layers, a user's shuffling loader)
under DDP: runner/test_ddp.py.
"""

import pytest
from runner.commands import assert_clean

pytestmark = pytest.mark.slow

# 20 samples: at batch 2 on each of 2 ranks, or batch 4 on one, every step sees the same 4 rows.
DATA = ["--num_samples", "20", "--lr", "1e-5", "--max_epochs", "30", "--log_every_n_epochs", "10"]
DDP = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]


def test_two_ranks_at_batch_b_match_one_process_at_batch_2b_and_shuffle_is_honoured(train, script):
    one = train(*DATA, "--batch_size", "4", "--default_root_dir", "one")  # the reference, in this process
    two = script("train", *DATA, *DDP, "--batch_size", "2", "--default_root_dir", "two")
    assert one.status == 0, one.stderr
    assert two.status == 0, two.stderr  # also: no gloo abort at exit

    # Shuffle off is honoured (Lightning would inject shuffle=True), each rank takes its share of the
    # batches, and the averaged gradients equal the double batch's: the same weights to float32 rounding.
    single, ddp = one.results, two.results
    assert single["world_size"] == 1 and ddp["world_size"] == 2
    assert ddp["learned_weights"] == pytest.approx(single["learned_weights"], rel=1e-5)
    assert ddp["final_train_loss"] == pytest.approx(single["final_train_loss"], rel=1e-4)
    assert ddp["global_step"] == single["global_step"] == 30 * 5
    # Every rank ends with identical weights (gathered from both ranks after fit).
    assert ddp["rank_weight_spread"] == 0.0

    # Only rank 0 reports: one header, one table, one verdict, and one results.json.
    assert two.stdout.count("Initial weights") == 1
    assert two.stdout.count("Epoch [30/30]") == 1
    assert two.stdout.count("Not recovered") + two.stdout.count("Recovered") == 1
    assert "Seed set to" not in two.stderr
    assert_clean(two)  # no warnings from either rank (Lightning's all_gather once printed a torch deprecation)

    # And shuffle on is honoured too: other batches, other weights.
    shuffled = script("train", *DATA, *DDP, "--batch_size", "2", "--shuffle", "--default_root_dir", "shuffled")
    assert shuffled.status == 0, shuffled.stderr
    assert shuffled.results["learned_weights"] != pytest.approx(ddp["learned_weights"], rel=1e-5)


def test_default_run_converges_under_ddp(script):
    # Converged between report epochs: the final validation runs on both ranks (a collective).
    run = script("train", *DDP, "--default_root_dir", "ddp")
    assert run.status == 0, run.stderr
    results = run.results
    assert results["converged"] and results["max_abs_error"] < 0.01
    assert results["world_size"] == 2 and results["rank_weight_spread"] == 0.0
    assert (run.run_dir / "checkpoints" / "last.ckpt").is_file()
