"""The one place this project registers its model with the run machinery (``linear_pl.runner``).

Replace the example: point this at your own Project, or delete this file and name --model and --data.
"""

from linear_pl.regression.project import PROJECT

__all__ = ["PROJECT"]
