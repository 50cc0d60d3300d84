"""The documentation stays true: its client example runs against the embedded default, every
metric and log event the code defines is in docs/metrics.md, and no file of the repository
points outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from audio.dtmf import detect_dtmf
from audio.formats import PCM16_16K
from gateway import metrics
from tests.embedded import embedded_gateway
from tests.harness import dtmf_utterance

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


async def test_the_protocol_pages_client_example_runs() -> None:
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(import asyncio\nfrom voice_gateway_client.*?)```", text, re.S)
    assert code is not None
    namespace: dict = {}
    exec(compile(code.group(1), "docs/protocol.md", "exec"), namespace)  # noqa: S102 - our own doc
    async with embedded_gateway() as base:
        reply = await namespace["talk"](base + "/v1/voice", dtmf_utterance("58", PCM16_16K))
    assert "".join(d.digit for d in detect_dtmf(reply, 24000)) == "58"


def test_every_metric_is_documented() -> None:
    page = (DOCS / "metrics.md").read_text(encoding="utf-8")
    collectors = list(metrics.REGISTRY._collector_to_names)  # noqa: SLF001 - prometheus_client's own
    names = {c._name for c in collectors if isinstance(c, MetricWrapperBase)}  # noqa: SLF001
    # the one other collector adds the audio path's pending per-frame counts to those metrics; it
    # exposes nothing of its own
    assert [type(c).__name__ for c in collectors if not isinstance(c, MetricWrapperBase)] == ["_FlushTallies"]
    assert {n for n in names if f"`{n}" not in page} == set()


def test_every_log_event_is_documented() -> None:
    page = (DOCS / "metrics.md").read_text(encoding="utf-8")
    pattern = re.compile(r'log_event\(\s*\w+,\s*logging\.\w+,\s*"([a-z_.]+)"')
    events = {m for f in (REPO / "gateway").rglob("*.py") for m in pattern.findall(f.read_text(encoding="utf-8"))}
    assert events and {e for e in events if f"`{e}`" not in page} == set()


# spelled in two pieces, so this file does not name the folder it forbids (a text search finds no match here)
@pytest.mark.parametrize("needle", ["../" + "shared", "/work/" + "shared"])
def test_no_file_points_outside_the_repository(needle: str) -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    offenders = [name for name in tracked.splitlines()
                 if (REPO / name).is_file()
                 and needle in (REPO / name).read_text(encoding="utf-8", errors="ignore")]
    assert offenders == []
