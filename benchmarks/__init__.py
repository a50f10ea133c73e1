"""``python benchmarks/run.py``: speed against plain loops and the hardware, written to BENCHMARKS.md."""
