"""Galaxy benchmarks: `make bench` runs every ``bench/bench_*.py`` and prints one table.

Each module has ``run() -> list[Row]``. A row compares Galaxy against a limit or a peer measured in
the same run, as a ratio, because this machine is shared and noisy: absolute figures drift, ratios
measured side by side do not.
"""
