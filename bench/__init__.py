"""Benchmarks: ``python -m bench.harness`` (see ``bench/harness.py``) and the committed ``bench/REPORT.md``."""
