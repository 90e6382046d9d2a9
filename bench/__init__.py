"""Benchmarks: run with ``make bench``; they report, they do not assert timings."""
