"""linear_pl: train any LightningModule on any LightningDataModule; with the tutorials' example.

``linear_pl.runner`` is the run machinery (command line, run directory, checkpoints, results, errors): it
knows no model. ``linear_pl.regression`` is the tutorials' example (networks, synthetic and CSV data, closed
form, conditioning, the weights report), registered as the default in ``linear_pl/registry.py``.
"""
