"""How fast is linear_pl? ``python -m benchmarks`` (``make benchmark``) measures it, a section each:

- ``answer``: the default run over data seeds 0..N-1, with preconditioning and without, beside tutorial 1's script;
- ``floor``: each workload trained three ways on the same tensors: a plain loop, a bare LightningModule, linear_pl;
- ``classifier``: ``examples/digits.py``'s CNN by a bare Trainer and by linear_pl's run;
- ``scale``: the whole command of ``scripts/train.py`` against ``examples/plain_script.py`` on a large workload;
- ``files``: the load cost of a generated 1M-row CSV and Parquet file, against polars' own read;
- ``sweep``: a grid, TPE with pruning and TPE without, by ``scripts/sweep.py``;
- ``larger``: a 50M-parameter MLP: bare, with Lightning's ModelCheckpoint, and linear_pl's run.

Each section is a module of this folder; ``flags.py`` checks the flags before Lightning is imported, ``cli.py``
runs the sections, and ``page.py`` writes their figures into docs/benchmarks.md (``--write``). Not part of the
installed package, nor of a project ``linear-pl new`` writes.
"""
