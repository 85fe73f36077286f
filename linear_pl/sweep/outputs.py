"""What a sweep leaves in its study directory: trials.csv, best.yaml, two plots; and its closing table."""

import csv
import io
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import optuna
from optuna.trial import FrozenTrial, TrialState
from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

from linear_pl.runner.checkpoint_io import write_atomically
from linear_pl.runner.cli import parse_flags
from linear_pl.runner.internals import one_line
from linear_pl.sweep.space import as_flags, shown
from linear_pl.sweep.worker import ran, resumed_elsewhere

PLOTS = {"optimization_history.png": plot_optimization_history, "param_importances.png": plot_param_importances}


def listed(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials that ran or are running."""
    return [t for t in study.get_trials(deepcopy=False) if ran(t)]


def kind_of(trial: FrozenTrial, taken_over: dict[int, int]) -> str:
    """How a trial ended, as the sweep says it: Optuna's state, but DIVERGED for a diverged trial (Optuna
    has it PRUNED), INTERRUPTED for one a signal stopped and DIED for one whose worker died and that
    another trial resumed (both FAIL in Optuna)."""
    if trial.user_attrs.get("diverged"):
        return "DIVERGED"
    if trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted"):
        return "INTERRUPTED"
    if trial.state == TrialState.FAIL and trial.number in taken_over:
        return "DIED"
    return trial.state.name


def write_trials_csv(study: optuna.Study, keys: list[str], path: Path) -> None:
    """One row a trial: number, state (Optuna's, but DIVERGED for a diverged trial), value, each param,
    epochs, seconds, run directory, a failure's reason, and the trial whose last.ckpt it resumed from."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["number", "state", "value", *keys, "epochs", "seconds", "run_dir", "reason", "resumed_from"])
    trials = study.get_trials(deepcopy=False)
    taken_over = resumed_elsewhere(trials)
    for t in trials:
        if not ran(t):
            continue
        attrs, kind = t.user_attrs, kind_of(t, taken_over)
        reason = attrs.get("reason")
        if kind == "DIED":
            reason = f"its worker died; resumed as trial {taken_over[t.number]}"
        elif t.state == TrialState.FAIL and "seconds" not in attrs:  # it never ended in its worker
            reason = "its worker died"
        writer.writerow(
            [t.number, "DIVERGED" if kind == "DIVERGED" else t.state.name, t.value, *(t.params.get(k) for k in keys)]
            + [attrs.get("epochs"), attrs.get("seconds"), attrs.get("run_dir"), reason, attrs.get("resumed_from")]
        )
    # Atomically, as every file here: workers that finish together each write the study's files.
    write_atomically(path, text.getvalue().encode())


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """The complete trials, best first."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(complete, key=lambda t: t.value, reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)


def write_best_config(base_args: list[str], best: FrozenTrial, path: Path) -> None:
    """The best trial's complete config: its params over the base flags, as the trial's config.yaml has them.

    Built here from the flags rather than copied from the trial's config.yaml, which may be on another machine.
    """
    cli = parse_flags([*base_args, *as_flags(best.params)])
    write_atomically(path, cli.parser.dump(cli.config, skip_none=False).encode())


def draw_plots(study: optuna.Study, study_dir: Path) -> list[str]:
    """The optimization history and the param importances as PNGs; a line for a plot that cannot be drawn."""
    plt.switch_backend("Agg")  # files only, no window
    notes = []
    for name, plot in PLOTS.items():
        try:
            with warnings.catch_warnings():  # Optuna marks its matplotlib backend experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # Importances from too few or too alike trials are equal: the plot shows that; no need to warn.
                warnings.filterwarnings("ignore", message="The number of trials is too small to compute importances")
                warnings.filterwarnings("ignore", message="Target and region quantiles select the same set of trials")
                axes = plot(study)
            png = io.BytesIO()
            axes.figure.savefig(png, format="png", dpi=100, bbox_inches="tight")
            write_atomically(study_dir / name, png.getvalue())
        except (ValueError, RuntimeError) as error:  # e.g. importances need two complete trials
            notes.append(f"{name}: not drawn ({one_line(str(error))})")
        finally:
            plt.close("all")
    return notes


def best_table(study: optuna.Study, monitor: str, keys: list[str], top: int = 5) -> str:
    """The best ``top`` complete trials as a table."""
    trials = ranked(study)[:top]
    header = ["trial", monitor, "epochs", *keys]  # (seconds: in trials.csv)
    rows = [
        [str(t.number), f"{t.value:.4g}", str(t.user_attrs.get("epochs"))] + [shown(t.params[k]) for k in keys]
        for t in trials
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in [header, *rows])
