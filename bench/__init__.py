"""Benchmarks: ``newsstream bench`` (see ``bench/harness.py``) and the committed ``bench/REPORT.md``."""
