"""Alert rules (deploy/prometheus/alerts.yml): valid for promtool, unit-tested both ways, each one
linked to a runbook section that exists, and built only from metrics the gateway really exposes.
The gateway's live /metrics output must pass `promtool check metrics`.
"""

from __future__ import annotations

import re

import aiohttp
import yaml
from promtool import DEPLOY, check_expressions_parse, exposed_series_names, promtool, referenced_metric_names

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
RUNBOOK = DEPLOY / "RUNBOOK.md"
SEVERITIES = {"critical", "warning"}


def alerting_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: lowercase, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    text = re.sub(r"^\s*```.*?^\s*```", "", RUNBOOK.read_text(), flags=re.MULTILINE | re.DOTALL)
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.MULTILINE)
    return {github_anchor(h) for h in headings}


def test_rules_and_unit_tests_pass_promtool():
    check = promtool("check", "rules", str(ALERTS))
    assert check.returncode == 0, check.stdout + check.stderr
    # rule_files in the test file resolve relative to it, from any working directory.
    unit = promtool("test", "rules", str(ALERT_TESTS))
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert "SUCCESS" in unit.stdout


def test_every_alert_has_a_firing_and_a_silent_unit_test():
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    assert yaml.safe_load(ALERT_TESTS.read_text())["rule_files"] == ["alerts.yml"]
    checks = [check for case in cases for check in case.get("alert_rule_test", [])]
    fired = {(c["alertname"], a["exp_labels"]["severity"]) for c in checks for a in c.get("exp_alerts") or []}
    silent = {c["alertname"] for c in checks if not c.get("exp_alerts")}
    rules = {(rule["alert"], rule["labels"]["severity"]) for rule in alerting_rules()}
    assert rules - fired == set(), "alerts (name, severity) with no firing test case"
    assert {name for name, _ in rules} - silent == set(), "alerts with no silent test case"


def test_every_alert_has_severity_summary_description_and_runbook_section():
    anchors = runbook_anchors()
    for rule in alerting_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        url = annotations["runbook_url"]
        assert url == f"deploy/RUNBOOK.md#{name.lower()}", name
        assert url.split("#", 1)[1] in anchors, f"{name}: RUNBOOK.md has no section for #{url.split('#')[1]}"


def test_alerts_use_only_metrics_the_gateway_exposes():
    exposed = exposed_series_names()
    for rule in alerting_rules():
        used = referenced_metric_names(rule["expr"])
        # GatewayDown watches Prometheus' own `up` series; every other alert needs one of ours.
        assert used or rule["alert"] == "GatewayDown", f"{rule['alert']} references none of our metrics"
        assert used <= exposed, f"{rule['alert']} uses unknown metrics {sorted(used - exposed)}"


def test_runbook_promql_examples_parse(tmp_path):
    blocks = re.findall(r"```promql\n(.*?)```", RUNBOOK.read_text(), flags=re.DOTALL)
    queries = [line.strip() for block in blocks for line in block.splitlines()
               if line.strip() and not line.strip().startswith("#")]
    # The audit's documented queries must be there verbatim (issue 7, item 3).
    assert 'circuit_breaker_state{provider="gemini"}' in queries
    assert ('sum(rate(circuit_breaker_calls_total{status="success"}[5m])) by (provider) / '
            'sum(rate(circuit_breaker_calls_total{status="attempted"}[5m])) by (provider)') in queries
    assert 'histogram_quantile(0.95, sum(rate(ai_provider_latency_seconds_bucket[5m])) by (le, provider))' in queries
    exposed = exposed_series_names()
    for query in queries:
        assert referenced_metric_names(query) <= exposed, query
    result = check_expressions_parse({f"runbook_{i}": q for i, q in enumerate(queries)}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_live_metrics_endpoint_passes_promtool_lint():
    from gateway.app import create_app
    from gateway.serve import start_server

    runner, port = await start_server(create_app(), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                body = await response.read()
    finally:
        await runner.cleanup()
    assert b"voice_gateway_build_info{" in body
    lint = promtool("check", "metrics", stdin=body)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert lint.stdout.strip() == "" and lint.stderr.strip() == "", lint.stdout + lint.stderr



def test_runbook_internal_links_resolve():
    links = set(re.findall(r"\]\(#([^)]+)\)", RUNBOOK.read_text()))
    assert links, "the runbook cross-links its sections"
    assert links - runbook_anchors() == set()
