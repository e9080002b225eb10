"""`make lint`'s dependency audit: pip-audit over the installed environment.

Fails (exit 1) on a known vulnerability that is not ignored (``--ignore-vuln ID``, each
with its reason in the Makefile). pip-audit reads PyPI's per-release JSON API; where
that cannot be reached (a machine that reaches only the package index), pip-audit skips
every package and still says "No known vulnerabilities found". This says instead, in one
line, how many packages could not be audited and why, and passes lint unless
``--required`` is given (`make lint AUDIT_REQUIRED=1`, for release builds).

Usage: python tools/audit.py [--required] [--ignore-vuln ID ...]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

# How pip-audit ends when the advisory service cannot be reached at all.
_OFFLINE = re.compile(r"ConnectionError|ProxyError|Timeout|SSLError|NameResolution")


def summary(report: dict[str, Any]) -> tuple[list[str], int, int, str | None]:
    """(one line per vulnerable package, packages audited, packages skipped, first skip
    reason) of pip-audit's JSON report."""
    found: list[str] = []
    audited = skipped = 0
    reason: str | None = None
    for dependency in report.get("dependencies", []):
        if "skip_reason" in dependency:
            skipped += 1
            reason = reason or dependency["skip_reason"]
            continue
        audited += 1
        for vuln in dependency.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
            found.append(
                f"{dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixed})"
            )
    return found, audited, skipped, reason


def main(argv: list[str]) -> int:
    required = "--required" in argv
    passed = [arg for arg in argv if arg != "--required"]
    pip_audit = Path(sys.executable).with_name("pip-audit")
    command = [str(pip_audit), "--skip-editable", "--format", "json", "--progress-spinner",
               "off", *passed]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        last = (done.stderr.strip() or "no report").splitlines()[-1]
        if not _OFFLINE.search(last):  # a usage error or a bug: lint fails
            print(f"pip-audit failed: {last}")
            return 1
        verdict = "" if required else "; lint passes (AUDIT_REQUIRED=1 makes this fail)"
        print(f"pip-audit: nothing could be audited: no connection ({last[:160]}){verdict}")
        return 1 if required else 0
    found, audited, skipped, reason = summary(report)
    for line in found:
        print(f"pip-audit: {line}")
    if found:
        print(f"pip-audit: {len(found)} known vulnerabilities: upgrade, or --ignore-vuln ID "
              "in the Makefile with the reason")  # fmt: skip
        return 1
    if skipped:
        print(f"pip-audit: {skipped} of {audited + skipped} packages not audited (first: {reason})")
        if not audited:
            verdict = "" if required else "; lint passes (AUDIT_REQUIRED=1 makes this fail)"
            print(
                "pip-audit: nothing could be audited: PyPI's per-release JSON API, which it "
                f"reads, answered for no package{verdict}"
            )
        return 1 if required else 0
    print(f"pip-audit: {audited} packages audited, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
