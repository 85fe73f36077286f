"""``python -m benchmarks [flags]``: benchmarks/cli.py."""

import sys

from benchmarks.cli import main

sys.exit(main())
