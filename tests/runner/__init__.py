"""The runner's tests: they train any model (lit_classifier.py) and know nothing of the example, so that they
travel, as this folder, with the runner into every new project made from this one.

A package, so that its modules import under one name from anywhere in tests/: ``runner.lit_classifier`` for a
test, for a class path given on the command line (``--model runner.lit_classifier.Classifier``), and for the
processes a few tests start (tests/ on their PYTHONPATH)."""
