"""Benchmarks: archiver against its baselines on a local internet; see bench/run.py."""
