"""Benchmarks of the pipeline against the sandbox: ``make bench`` (see docs/benchmarks.md)."""
