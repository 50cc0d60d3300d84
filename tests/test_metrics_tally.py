"""The per-frame tallies (gateway/metrics.py): what the audio path counts cheaply is exact in every
read of the registry (/metrics, `sample()`), as if each frame had updated the Prometheus child itself."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway import metrics

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
# on a bound, between bounds, above the last one, zero, and repeats
AMOUNTS = [0.0, 0.0001, 0.00005, 0.00025, 0.0003, 0.001, 0.0010001, 0.1, 0.5, 3.0, 0.002, 0.002]


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in fam.samples:
            if not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_histogram_tally_reads_exactly_as_observing_the_child() -> None:
    direct = Histogram("lat", "", ["direction"], buckets=BUCKETS, registry=(reg_a := CollectorRegistry()))
    tallied = Histogram("lat", "", ["direction"], buckets=BUCKETS, registry=(reg_b := CollectorRegistry()))
    tally = metrics.HistogramTally(tallied.labels("uplink"))
    for a in AMOUNTS:
        direct.labels("uplink").observe(a)
        tally.observe(a)
    tally.flush()
    a, b = _samples(reg_a), _samples(reg_b)
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert math.isclose(b[key], value, rel_tol=1e-12), key
    tally.flush()  # nothing new: flushing again adds nothing
    assert _samples(reg_b) == b


def test_a_counter_tally_is_added_once() -> None:
    reg = CollectorRegistry()
    tally = metrics.Tally(Counter("chunks", "", ["provider"], registry=reg).labels("gemini"))
    tally.n += 7
    tally.flush()
    tally.flush()
    assert reg.get_sample_value("chunks_total", {"provider": "gemini"}) == 7


def test_every_registry_read_includes_the_pending_frames() -> None:
    sent = metrics.chunks_sent("gemini")
    assert metrics.chunks_sent("gemini") is sent  # one tally per provider, shared by its links
    before = metrics.sample("ai_provider_audio_chunks_sent_total", {"provider": "gemini"}) or 0.0
    sent.n += 3
    assert metrics.sample("ai_provider_audio_chunks_sent_total", {"provider": "gemini"}) == before + 3
    sent.n += 2
    text = metrics.exposition().decode()
    line = next(ln for ln in text.splitlines()
                if ln.startswith('ai_provider_audio_chunks_sent_total{provider="gemini"}'))
    assert float(line.rpartition(" ")[2]) == before + 5

    count = {"direction": "downlink"}
    n0 = metrics.sample("voice_gateway_added_latency_seconds_count", count) or 0.0
    fast0 = metrics.sample("voice_gateway_added_latency_seconds_bucket", {**count, "le": "0.0001"}) or 0.0
    metrics.DOWNLINK_LATENCY.observe(0.00005)
    metrics.DOWNLINK_LATENCY.observe(0.03)
    assert metrics.sample("voice_gateway_added_latency_seconds_count", count) == n0 + 2
    assert metrics.sample("voice_gateway_added_latency_seconds_bucket", {**count, "le": "0.0001"}) == fast0 + 1
