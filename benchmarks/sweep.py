"""``sweep``: three ``scripts/sweep.py`` studies on the ``mlp-sine`` preset with ``--seed`` ``--sweep_seed``, each in
a directory of its own: a grid of 10 log-spaced learning rates x 3 hidden sizes, TPE over the same space (lr a
log range from the grid's lowest to its highest) with median pruning, and the same TPE without pruning. Each's
best val/loss, trial states and trial-epochs (trials.csv); TPE's best against the grid's, and the share of the
trial-epochs pruning saves. And TPE with pruning over a wide range of rates (1e-4 to 0.3, most of which
diverge): how many trials after the 10th diverged."""

import csv
import json
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.measure import REPO, run_command

# The MLP on the sine target over 10 log-spaced rates from 1e-4 (slow: val/loss 12-37 after 60 epochs) to 3e-3
# (81-233, or diverged) x 3 sizes, the best between (3.6-4.6 at 4.5e-4-1e-3 with two hidden layers); and TPE
# over the same. Above about 4e-3 every run diverges at once: a failed trial, which TPE does not learn from --
# over 1e-4-1e-2 it spent 12 of 30 trials up there -- so the range stops below. Epochs and trials: benchmarks.flags.
SWEEP_PRESET = "mlp-sine"
SWEEP_LRS = [float(f"{1e-4 * 30 ** (i / 9):.3g}") for i in range(10)]
SWEEP_HIDDEN_SIZES = [[32], [64, 64], [128, 128]]
# And a wide study: TPE with the median pruner over rates 1e-4-0.3, more than half of whose log range diverges.
# A diverged trial is told to Optuna as pruned (at its last reported value), which TPE learns from; as FAIL,
# which it ignores, TPE kept proposing rates that diverge.
SWEEPS = {"grid": ("grid", "none"), "tpe-median": ("tpe", "median"), "tpe-none": ("tpe", "none")}
WIDE_SWEEP, WIDE_LRS, WIDE_AFTER = "tpe-wide", (1e-4, 0.3), 10
STATES = ("COMPLETE", "PRUNED", "DIVERGED", "FAIL")


def space(sampler: str, lrs: tuple[float, float] | None = None) -> dict:
    """The space file's contents: the grid's categoricals, or for TPE the rate as a log range over the grid's
    (or over ``lrs``)."""
    hidden = {"type": "categorical", "choices": SWEEP_HIDDEN_SIZES}
    if sampler == "grid":
        return {"model.lr": {"type": "categorical", "choices": SWEEP_LRS}, "model.hidden_sizes": hidden}
    low, high = lrs or (SWEEP_LRS[0], SWEEP_LRS[-1])
    return {"model.lr": {"type": "float", "low": low, "high": high, "log": True}, "model.hidden_sizes": hidden}


def run_study(name: str, trials: int, epochs: int, seed: int) -> dict:
    """One study by scripts/sweep.py in a new directory: its trials.csv summed up, and its wall time."""
    sampler, pruner = SWEEPS.get(name, ("tpe", "median"))
    with tempfile.TemporaryDirectory() as root:
        space_file = Path(root) / "space.yaml"
        lrs = WIDE_LRS if name == WIDE_SWEEP else None
        space_file.write_text(yaml.safe_dump(space(sampler, lrs), sort_keys=False))
        command = [
            sys.executable, str(REPO / "scripts" / "sweep.py"), "--space", str(space_file), "--study", name,
            "--n_trials", str(trials), "--sampler", sampler, "--pruner", pruner, "--preset", SWEEP_PRESET,
            "--max_epochs", str(epochs), "--seed", str(seed), "--default_root_dir", root,
        ]  # fmt: skip
        seconds, _ = run_command(command, Path(root))
        with open(Path(root) / "sweeps" / name / "trials.csv", newline="") as file:
            rows = list(csv.DictReader(file))
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    best = min(complete, key=lambda r: float(r["value"]), default=None)
    return {
        "name": name, "sampler": sampler, "pruner": pruner, "trials": len(rows),
        "states": {state: sum(r["state"] == state for r in rows) for state in STATES},
        "points": len({(r["model.lr"], r["model.hidden_sizes"]) for r in rows}),  # distinct params
        "trial_epochs": sum(int(r["epochs"] or 0) for r in rows),  # empty: failed before an epoch
        # Trials numbered WIDE_AFTER and on (the sampler's choices, past its first trials) that diverged.
        "diverged_later": sum(r["state"] == "DIVERGED" for r in rows if int(r["number"]) >= WIDE_AFTER),
        "later": sum(int(r["number"]) >= WIDE_AFTER for r in rows),
        "best_value": float(best["value"]) if best else None,
        "best_params": {"model.lr": float(best["model.lr"]), "model.hidden_sizes": best["model.hidden_sizes"]}
        if best else None,
        "wall_seconds": seconds,
    }  # fmt: skip


def measure(trials: int, epochs: int, seed: int) -> dict:
    """The grid (every point once, up to ``trials``), TPE with median pruning and TPE without, each ``trials``
    trials of ``epochs`` epochs at most; TPE's best over the grid's, and the trial-epochs pruning saves. And
    the wide study: how many of its trials after the first WIDE_AFTER diverged."""
    grid_trials = min(trials, len(SWEEP_LRS) * len(SWEEP_HIDDEN_SIZES))
    rows = [run_study(name, grid_trials if name == "grid" else trials, epochs, seed) for name in SWEEPS]
    grid, pruned, unpruned = rows
    return {
        "preset": SWEEP_PRESET, "epochs": epochs, "trials": trials, "seed": seed, "lrs": SWEEP_LRS,
        "hidden_sizes": SWEEP_HIDDEN_SIZES, "sweeps": rows,
        "wide": {"lrs": list(WIDE_LRS), "after": WIDE_AFTER, **run_study(WIDE_SWEEP, trials, epochs, seed)},
        "tpe_over_grid": ratio(pruned["best_value"], grid["best_value"]),
        "unpruned_tpe_over_grid": ratio(unpruned["best_value"], grid["best_value"]),
        "pruning_saves": 1 - pruned["trial_epochs"] / unpruned["trial_epochs"] if unpruned["trial_epochs"] else None,
    }  # fmt: skip


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``; None where either is missing (a study with no complete trial)."""
    return None if value is None or not reference else value / reference


def shown(value: float | None, spec: str = ".2f") -> str:
    """A number as ``spec`` formats it, or "-" where there is none (a study with no complete trial)."""
    return "-" if value is None else format(value, spec)


def lines(r: dict) -> list[str]:
    header = f"{'sweep':<10} {'trials':>6} {'points':>6} {'complete':>8} {'pruned':>6} {'diverged':>8} "
    header += f"{'failed':>6} {'epochs':>6} {'wall s':>7} {'best val/loss':>13} {'at lr':>9} {'hidden':>10}"
    lines = [header]
    for row in [*r["sweeps"], r["wide"]]:
        states, best = row["states"], row["best_params"]
        at = f"{best['model.lr']:>9.3g} {best['model.hidden_sizes']:>10}" if best else f"{'-':>9} {'-':>10}"
        lines.append(
            f"{row['name']:<10} {row['trials']:>6} {row['points']:>6} {states['COMPLETE']:>8} "
            f"{states['PRUNED']:>6} {states['DIVERGED']:>8} {states['FAIL']:>6} {row['trial_epochs']:>6} "
            f"{row['wall_seconds']:>7.1f} {shown(row['best_value'], '.4g'):>13} {at}"
        )
    epochs = {row["name"]: row["trial_epochs"] for row in r["sweeps"]}
    lines.append(
        f"tpe-median best / grid best {shown(r['tpe_over_grid'])} (goal <= 1; tpe-none's "
        f"{shown(r['unpruned_tpe_over_grid'])}); pruning saves 1 - {epochs['tpe-median']}/{epochs['tpe-none']} "
        f"= {shown(r['pruning_saves'])} of the trial-epochs (goal >= 0.33)"
    )
    hidden = ", ".join(json.dumps(h) for h in r["hidden_sizes"])
    lines.append(
        f"(scripts/sweep.py --preset {r['preset']} --max_epochs {r['epochs']} --seed {r['seed']}, "
        f"{r['trials']} trials each; grid: model.lr {len(r['lrs'])} rates {r['lrs'][0]:g}-{r['lrs'][-1]:g} "
        f"log-spaced x model.hidden_sizes {hidden}, every point once, no pruning; TPE: model.lr a log range over "
        "the same; points: distinct params; epochs: the trials' epochs summed; failed: e.g. diverged)"
    )
    wide = r["wide"]
    lines.append(
        f"tpe-wide: model.lr a log range {wide['lrs'][0]:g}-{wide['lrs'][1]:g}, where the MLP diverges above about "
        f"4e-3: {wide['diverged_later']} of its {wide['later']} trials after the first {wide['after']} diverged "
        f"({wide['states']['DIVERGED']} of {wide['trials']} in all)"
    )
    if (grid := r["sweeps"][0])["points"] < grid["trials"]:
        lines.append(f"NOTE: the grid ran {grid['points']} distinct points in {grid['trials']} trials: not a grid")
    return lines
