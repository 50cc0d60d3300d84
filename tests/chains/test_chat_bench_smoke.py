"""The chat benchmark keeps working (a few requests, a second of load). Structure only, never speed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_chat_benchmark_smoke() -> None:
    proc = subprocess.run([sys.executable, "benchmarks/chat.py", "--requests", "5", "--concurrency", "2",
                           "--seconds", "1"], cwd=REPO, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for label in ("direct", "gateway", "gateway_sse", "overhead", "overhead_sse"):
        assert re.search(rf"^{label}\s+-?[\d.]+\s+-?[\d.]+\s+-?[\d.]+", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"throughput: gateway \d+ req/s .* ms gateway CPU per request", proc.stdout), proc.stdout
