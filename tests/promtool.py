"""Helpers for tests that drive the real Prometheus tools (Debian's `prometheus` package).

A missing binary skips the test on a developer machine but fails it under CI (`CI=true`), so CI
never goes green by not testing. Also: which series names `gateway/metrics.py` exposes, and which
of ours a PromQL expression references, for the dashboard and alert tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"

# Prefixes of the gateway's own metric names (docs/metrics.md); anything else in an expression
# is a function, keyword, label or Prometheus' own series such as `up`.
OUR_PREFIXES = ("circuit_breaker_", "ai_provider_", "deepgram_", "voice_gateway_")
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_OUR_NAME = re.compile(r"\b(?:" + "|".join(OUR_PREFIXES) + r")[a-zA-Z0-9_:]*")


def _running_under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_binary(name: str) -> str:
    """Absolute path of `promtool` or `prometheus`; fail under CI, skip elsewhere, when missing."""
    path = shutil.which(name)
    if path:
        return path
    message = (f"`{name}` not found on PATH: install Debian's `prometheus` package "
               "(`make test` does it when run as root)")
    if _running_under_ci():
        pytest.fail(message + " - CI must not skip this test", pytrace=False)
    pytest.skip(message)
    raise AssertionError("unreachable")


def promtool(*args: str, stdin: bytes | None = None, timeout_s: float = 30.0) -> subprocess.CompletedProcess:
    """Run promtool; the caller asserts on returncode and reads stdout/stderr (text)."""
    binary = require_binary("promtool")
    result = subprocess.run([binary, *args], input=stdin, capture_output=True, timeout=timeout_s)
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"))


def check_expressions_parse(expressions: dict[str, str], workdir: Path) -> subprocess.CompletedProcess:
    """`promtool check rules` on throwaway recording rules, one per expression (key = where it came from).

    promtool parses and type-checks every expr; the error output names the failing record, which
    we derive from the key so a failure points at the panel or document it came from.
    """
    rules = [{"record": f"check:{_record_suffix(key)}:{i}", "expr": expr}
             for i, (key, expr) in enumerate(expressions.items())]
    path = workdir / "throwaway_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "parse-check", "rules": rules}]}, sort_keys=False))
    return promtool("check", "rules", str(path))


def _record_suffix(key: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]+", "_", key).strip("_") or "expr"


def exposed_series_names() -> set[str]:
    """Every series name `/metrics` can expose for the metric families in gateway/metrics.py."""
    from gateway.metrics import REGISTRY

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names


def referenced_metric_names(expr: str) -> set[str]:
    """Our metric names used in a PromQL expression (string literals such as label values ignored)."""
    return set(_OUR_NAME.findall(_STRING_LITERAL.sub('""', expr)))
