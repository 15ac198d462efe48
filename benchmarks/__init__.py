"""Performance measurements. Each script prints a final JSON line with the figure, the baseline
measured in the same run, and their ratio; results are collected in BENCHMARKS.md."""
