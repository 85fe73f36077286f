"""The runner's tests: they train any model (lit_classifier.py), know nothing of the example, and travel into
every project ``linear-pl new`` writes, as this folder.

A package, so that its modules import under one name from anywhere in tests/: ``runner.lit_classifier`` for a
test, for a class path given on the command line (``--model runner.lit_classifier.Classifier``), and for the
processes a few tests start (tests/ on their PYTHONPATH)."""
