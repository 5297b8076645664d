"""The benchmark harness behind `realtime bench`: runs benchmarks/, writes results, plots and a summary.

Nothing on the run-time path imports this package; the benchmark scripts and the CLI do.
"""
