"""Hyperparameter sweeps on Optuna: every trial a normal run of the training command, in a worker process.

Needs the ``sweep`` extra: ``pip install -e ".[sweep]"`` (Optuna, optuna-integration, matplotlib).
"""
