"""Benchmarks, each a module run with `python -m benchmarks.<name>`."""
