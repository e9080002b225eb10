"""`make lint`'s dependency audit (tools/audit.py) on pip-audit's reports, no network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import audit  # noqa: E402

VULNERABLE = {"name": "jinja2", "version": "3.1.2", "vulns": [
    {"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"], "aliases": [], "description": ""}
]}  # fmt: skip
CLEAN = {"name": "warcio", "version": "1.8.1", "vulns": []}
SKIPPED = {"name": "w3lib", "skip_reason": "Dependency not found on PyPI: w3lib (2.5.0)"}


def answer(
    monkeypatch: pytest.MonkeyPatch, stdout: str, stderr: str = "", code: int = 0
) -> list[list[str]]:
    commands: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        return subprocess.CompletedProcess(command, code, stdout, stderr)

    monkeypatch.setattr(audit.subprocess, "run", run)
    return commands


def report(*dependencies: dict[str, Any]) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_a_known_vulnerability_fails_lint_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = answer(monkeypatch, report(VULNERABLE, CLEAN), code=1)
    assert audit.main(["--ignore-vuln", "PYSEC-0000-1"]) == 1
    assert commands[0][-2:] == ["--ignore-vuln", "PYSEC-0000-1"]
    assert "--skip-editable" in commands[0]
    out = capsys.readouterr().out
    assert "pip-audit: jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)" in out


def test_a_clean_environment_passes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer(monkeypatch, report(CLEAN))
    assert audit.main([]) == 0
    assert "1 packages audited, no known vulnerabilities" in capsys.readouterr().out


def test_nothing_audited_is_said_not_passed_in_silence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pip-audit says "No known vulnerabilities found" when it could audit nothing."""
    answer(monkeypatch, report(SKIPPED))
    assert audit.main([]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 packages not audited" in out and "nothing could be audited" in out
    assert audit.main(["--required"]) == 1
    answer(monkeypatch, "", "requests.exceptions.ConnectionError: pypi.org unreachable", 1)
    assert audit.main([]) == 0 and "no connection" in capsys.readouterr().out
    assert audit.main(["--required"]) == 1
    answer(monkeypatch, "", "pip-audit: error: unrecognized arguments: --bogus", 2)
    assert audit.main(["--bogus"]) == 1  # not a network problem: lint fails
