"""``classifier``: what the run machinery costs a model it did not write: ``examples/digits.py``'s ``DigitsCNN`` on
``Digits``, seed 0, ``--epochs`` epochs, by a bare Trainer (logger, checkpoints, progress bar, summary, sanity
check off) and by ``build_run`` as ``scripts/train.py`` builds it. Both validate every epoch
(``--log_every_n_epochs 1``). ``fit`` alone, best of ``--repeats`` rounds alternating which way goes first; each
fit loads its data (``Digits.setup`` reloads, and fit calls it)."""

import contextlib
import gc
import io
import statistics
import tempfile
import time

import lightning as L

from examples import digits
from linear_pl.runner.cli import build_run

DIGITS = ["--model", "examples.digits.DigitsCNN", "--data", "examples.digits.Digits", "--monitor", "val/acc",
          "--mode", "max"]  # fmt: skip


def bare_fit(epochs: int, accelerator: str) -> dict:
    """DigitsCNN's ``Trainer.fit`` on Digits by a bare Trainer, seeded as the run seeds (--seed 0)."""
    L.seed_everything(0, workers=True)  # as LightningCLI does, before the model draws its weights
    model, data = digits.DigitsCNN(), digits.Digits(seed=0)
    # Validates every epoch: Lightning's default check_val_every_n_epoch=1.
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(model, data)
    val_acc = float(trainer.callback_metrics["val/acc"])  # waits for an accelerator's queued work
    return {"seconds": time.perf_counter() - start, "val_acc": val_acc, "epochs": trainer.current_epoch}


def linear_pl_fit(epochs: int, accelerator: str, root: str) -> dict:
    """DigitsCNN's ``Trainer.fit`` on Digits as scripts/train.py builds it, validating every epoch.

    ``--patience`` is the number of epochs, so that its early stopping runs but cannot end the run
    before the bare Trainer's: both train the same epochs.
    """
    flags = ["--max_epochs", str(epochs), "--log_every_n_epochs", "1", "--patience", str(epochs)]
    run = build_run([*DIGITS, *flags, "--accelerator", accelerator, "--devices", "1", "--default_root_dir", root])
    with contextlib.redirect_stdout(io.StringIO()):  # the progress lines
        start = time.perf_counter()
        run.trainer.fit(run.model, run.datamodule)
        val_acc = float(run.trainer.callback_metrics["val/acc"])  # waits for an accelerator's queued work
        seconds = time.perf_counter() - start
    run.trainer.strategy.checkpoint_io.wait()  # its last write done before the run's folder is removed
    return {"seconds": seconds, "val_acc": val_acc, "epochs": run.trainer.current_epoch}


def measure(epochs: int, accelerator: str, repeats: int) -> dict:
    """DigitsCNN on Digits trained by a bare Trainer and by linear_pl, rounds alternating; the best time counts."""
    digits.Digits().setup("fit")  # sklearn's first load (its imports, the file's first read), for neither way
    seconds, val_acc, epochs_run = {}, {}, {}
    with tempfile.TemporaryDirectory() as root:
        ways = {
            "bare": lambda: bare_fit(epochs, accelerator),
            "linear_pl": lambda: linear_pl_fit(epochs, accelerator, root),
        }
        round_ratios = []
        for round_ in range(repeats):
            this_round = {}
            for way in sorted(ways, reverse=round_ % 2 == 1):  # bare first, then linear_pl first, ...
                measured = ways[way]()  # a fresh model, data module and Trainer, seeded alike
                gc.collect()
                this_round[way] = measured["seconds"]
                seconds[way] = min(seconds.get(way, float("inf")), measured["seconds"])
                val_acc[way], epochs_run[way] = measured["val_acc"], measured["epochs"]
            # Two fits a few seconds apart differ by up to 20% here: the two ways of one round share
            # the machine's mood, so the median of the rounds' ratios is steadier than best against best.
            round_ratios.append(this_round["bare"] / this_round["linear_pl"])
    return {
        "model": "examples.digits.DigitsCNN", "data": "examples.digits.Digits", "epochs": epochs,
        "repeats": repeats, "validate_every_n_epochs": 1, "epochs_run": epochs_run, "fit_seconds": seconds,
        "bare_over_linear_pl": seconds["bare"] / seconds["linear_pl"], "round_ratios": round_ratios,
        "median_round_ratio": statistics.median(round_ratios), "val_acc": val_acc,
    }  # fmt: skip


def lines(r: dict) -> list[str]:
    seconds, acc = r["fit_seconds"], r["val_acc"]
    return [
        f"{'model':<9} {'epochs':>6} {'bare s':>8} {'linear_pl s':>11} {'bare/pl':>7} {'median':>6} "
        f"{'bare val/acc':>12} {'pl val/acc':>10}",
        f"{'DigitsCNN':<9} {r['epochs']:>6} {seconds['bare']:>8.3f} {seconds['linear_pl']:>11.3f} "
        f"{r['bare_over_linear_pl']:>7.2f} {r['median_round_ratio']:>6.2f} {acc['bare']:>12.4f} "
        f"{acc['linear_pl']:>10.4f}",
        f"(examples/digits.py; Trainer.fit seconds alone, best of {r['repeats']} rounds alternating the ways, "
        "and the median of the rounds' bare/pl; both validate every epoch, linear_pl with "
        "--log_every_n_epochs 1; goal bare/pl >= 0.95)",
    ]
