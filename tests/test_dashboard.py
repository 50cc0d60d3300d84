"""Grafana dashboard (deploy/grafana/voice-gateway.json) and its provisioning: it loads where the
datasource variable points, its layout has no overlapping panels, and every query parses in
promtool and uses only metrics the gateway exposes.
"""

from __future__ import annotations

import itertools
import json
import re

import pytest
import yaml
from promtool import DEPLOY, check_expressions_parse, exposed_series_names, referenced_metric_names

DASHBOARD = json.loads((DEPLOY / "grafana" / "voice-gateway.json").read_text())
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
GRID_COLUMNS = 24

# Grafana's built-in interval variables, and what the throwaway rules use instead.
_INTERVALS = re.compile(r"\$(?:__rate_interval|__interval|__range)\b|\$\{(?:__rate_interval|__interval|__range)\}")
_PROVIDER = re.compile(r"\$\{provider(?::regex)?\}|\$provider\b")


def panels() -> list[dict]:
    top = DASHBOARD["panels"]
    return top + [p for row in top if row["type"] == "row" for p in row.get("panels", [])]


def query_panels() -> list[dict]:
    return [p for p in panels() if p.get("targets")]


def queries() -> dict[str, str]:
    """Every panel query, keyed `p<panel id><refId>` so a failure names its panel."""
    return {f"p{p['id']}{t['refId']}": t["expr"] for p in query_panels() for t in p["targets"]}


def as_plain_promql(expr: str) -> str:
    return _PROVIDER.sub(".*", _INTERVALS.sub("5m", expr))


def variables() -> dict[str, dict]:
    return {v["name"]: v for v in DASHBOARD["templating"]["list"]}


def test_dashboard_identity():
    assert DASHBOARD["uid"] == "voice-gateway"
    assert DASHBOARD["title"] == "Voice gateway"
    assert isinstance(DASHBOARD["schemaVersion"], int) and DASHBOARD["schemaVersion"] >= 36
    assert DASHBOARD.get("id") is None, "a provisioned dashboard must not carry a database id"


def test_datasource_and_provider_variables():
    found = variables()
    datasource = found["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    provider = found["provider"]
    assert provider["type"] == "query"
    assert provider["datasource"] == DATASOURCE_REF
    assert provider["query"]["query"] == "label_values(circuit_breaker_state, provider)"
    assert provider["definition"] == provider["query"]["query"]
    # With "All" selected Grafana substitutes allValue; `.*` keeps `provider=~"$provider"` matching everything.
    assert provider["multi"] and provider["includeAll"] and provider["allValue"] == ".*"


def test_panel_ids_unique_and_grid_without_overlaps():
    ids = [p["id"] for p in panels()]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    boxes = {}
    for p in panels():
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "xywh"), p["title"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] >= 1 and g["h"] >= 1, p["title"]
        assert g["x"] + g["w"] <= GRID_COLUMNS, f"{p['title']} runs off the 24-column grid"
        boxes[p["title"]] = (g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"])
    for (a, (ax0, ay0, ax1, ay1)), (b, (bx0, by0, bx1, by1)) in itertools.combinations(boxes.items(), 2):
        overlap = ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1
        assert not overlap, f"panels {a!r} and {b!r} overlap"
    assert len(boxes) == len(panels()), "panel titles must be unique"


def test_every_query_goes_through_the_datasource_variable():
    assert query_panels(), "no panel has queries"
    for p in query_panels():
        assert p["datasource"] == DATASOURCE_REF, p["title"]
        for target in p["targets"]:
            assert target["datasource"] == DATASOURCE_REF, f"{p['title']} {target['refId']}"
            assert target["expr"].strip(), f"{p['title']} {target['refId']} is empty"
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]


def test_queries_use_only_exposed_metrics_and_cover_the_issue():
    exposed = exposed_series_names()
    used: set[str] = set()
    for key, expr in queries().items():
        names = referenced_metric_names(expr)
        assert names <= exposed, f"{key}: unknown metrics {sorted(names - exposed)}"
        used |= names
    required = {
        "circuit_breaker_state", "circuit_breaker_calls_total", "circuit_breaker_state_transitions_total",
        "ai_provider_latency_seconds_bucket", "ai_provider_errors_total", "ai_provider_reconnections_total",
        "ai_provider_active_sessions", "voice_gateway_sessions_active", "voice_gateway_provider_switches_total",
        "voice_gateway_replay_buffer_chunks", "voice_gateway_replayed_chunks_total",
        "voice_gateway_replay_dropped_chunks_total", "deepgram_audio_buffer_size",
        "voice_gateway_time_to_first_audio_seconds_bucket", "voice_gateway_added_latency_seconds_bucket",
    }
    assert required - used == set(), "metrics without a panel"


def test_every_query_parses_in_promtool(tmp_path):
    plain = {key: as_plain_promql(expr) for key, expr in queries().items()}
    for key, expr in plain.items():
        assert "$" not in expr, f"{key}: unsubstituted Grafana variable in {expr!r}"
    result = check_expressions_parse(plain, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(plain)} rules found" in result.stdout


def test_parse_check_rejects_a_broken_query(tmp_path):
    # Guards the check above: a query promtool cannot parse must make it fail.
    result = check_expressions_parse({"broken": "sum by (provider (rate(x[5m]))"}, tmp_path)
    assert result.returncode != 0


@pytest.mark.parametrize("title", ["Circuit breaker state", "Breaker state now"])
def test_breaker_panels_name_the_states(title):
    panel = next(p for p in panels() if p["title"] == title)
    assert "circuit_breaker_state{" in panel["targets"][0]["expr"]
    assert '$provider' in panel["targets"][0]["expr"]
    mapping = panel["fieldConfig"]["defaults"]["mappings"][0]
    assert mapping["type"] == "value"
    assert {k: v["text"] for k, v in mapping["options"].items()} == {"0": "CLOSED", "1": "HALF_OPEN", "2": "OPEN"}


def test_audit_queries_documented_on_the_dashboard():
    text = "\n".join(p["options"]["content"] for p in panels() if p["type"] == "text")
    assert 'circuit_breaker_state{provider="gemini"}' in text
    assert ('sum(rate(circuit_breaker_calls_total{status="success"}[5m])) by (provider) / '
            'sum(rate(circuit_breaker_calls_total{status="attempted"}[5m])) by (provider)') in text
    assert "histogram_quantile(0.95, sum(rate(ai_provider_latency_seconds_bucket[5m])) by (le, provider))" in text


def test_provisioning_files():
    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert sources["apiVersion"] == 1
    (prometheus,) = sources["datasources"]
    assert (prometheus["type"], prometheus["url"], prometheus["isDefault"]) == (
        "prometheus", "http://prometheus:9090", True)
    boards = yaml.safe_load((provisioning / "dashboards" / "voice-gateway.yml").read_text())
    assert boards["apiVersion"] == 1
    (provider,) = boards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
