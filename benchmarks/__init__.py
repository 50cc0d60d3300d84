"""Benchmarks (docs/architecture.md): audio.py (transcoding cost), load.py (the load benchmark)."""
