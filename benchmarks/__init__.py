"""Benchmarks (design.md §8): audio.py (transcoding cost), load.py (the load benchmark)."""
