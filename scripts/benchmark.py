"""Benchmark linear_pl against plain PyTorch and bare Lightning: python scripts/benchmark.py [--workload NAME]."""

import sys

from linear_pl.benchmark_flags import benchmark_main

if __name__ == "__main__":
    sys.exit(benchmark_main())
