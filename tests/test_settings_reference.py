"""docs/configuration.md cannot drift from the settings code: the reference lists exactly the
variables `load_settings` reads, and the committed page is what `voice-gateway config-reference`
generates now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.config_check import KNOWN_VARIABLES
from gateway.settings_reference import documented_names, names_read_by_the_parser, render_markdown

REPO = Path(__file__).resolve().parents[1]


def test_every_variable_the_parser_reads_is_documented_and_nothing_else() -> None:
    read = names_read_by_the_parser()
    assert read - documented_names() == set(), "read by load_settings but missing from the reference"
    assert documented_names() - read == set(), "documented but never read"


def test_every_known_vg_variable_is_documented() -> None:
    assert KNOWN_VARIABLES - documented_names() == set()


def test_the_committed_page_is_the_generated_one() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render_markdown(), "run: voice-gateway config-reference --write docs/configuration.md"


def test_the_cli_prints_the_same_reference() -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "voice-gateway"), "config-reference"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0 and done.stdout == render_markdown()
