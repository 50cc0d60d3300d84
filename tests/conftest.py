"""Suite-wide: every log record of the whole run is captured as the JSON line the gateway would
write, and at the end the capture is scanned for the fake API keys the suite seeds (tests/harness.py
FAKE_KEYS). A key in any log line fails the run.
"""

from __future__ import annotations

import io
import logging

import pytest

from gateway.logs import JsonFormatter

_CAPTURE = io.StringIO()
_HANDLER = logging.StreamHandler(_CAPTURE)
_HANDLER.setFormatter(JsonFormatter())
_HANDLER.setLevel(logging.DEBUG)


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(_HANDLER)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)


def captured_log_lines() -> list[str]:
    return _CAPTURE.getvalue().splitlines()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.chains.harness import CHAIN_KEYS
    from tests.harness import FAKE_KEYS

    text = _CAPTURE.getvalue()
    seeded = {**FAKE_KEYS, **{f"{name} (chains)": key for name, key in CHAIN_KEYS.items()}}
    leaks = [name for name, key in seeded.items() if key in text]
    lines = text.count("\n")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"log secret scan: {lines} captured log lines, leaked keys: {leaks or 'none'}")
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
