"""How a model adds to what a run reports: callbacks it brings through ``configure_callbacks()``.

The run machinery asks a model only what Lightning asks of it. A model that has more to say -- a
weights table, a closed-form baseline, a convergence stop -- returns
:class:`RunExtra` callbacks from ``LightningModule.configure_callbacks()``, Lightning's own way for a
model to bring callbacks. The run finds them among the trainer's callbacks and asks them the four
questions below; a model without them runs without them.
"""

from typing import Any

import lightning as L


class RunExtra(L.Callback):
    """A model's addition to the run's report. Every method is optional."""

    # Keys this extra adds to results.json that the loggers pair with the hyperparameters (as hp/KEY).
    hp_metrics: tuple[str, ...] = ()

    def scalars(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Extra scalars for the loggers, at each progress line (rank 0)."""
        return {}

    def stop_reason(self) -> str | None:
        """Why this callback stopped training (``results.json``'s ``stopped_because``), if it did."""
        return None

    def divergence_advice(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str | None:
        """What to try when the training loss diverged, in place of the generic advice."""
        return None

    def summarize(self, trainer: L.Trainer, pl_module: L.LightningModule, results: dict[str, Any]) -> str | None:
        """Add keys to ``results`` after the final validation (rank 0); return the text to print in place
        of the run's one-line verdict, or None to keep it."""
        return None


def extras_of(trainer: L.Trainer) -> list[RunExtra]:
    """The model's extras among the trainer's callbacks."""
    return [callback for callback in trainer.callbacks if isinstance(callback, RunExtra)]
