"""bench/getbench.py: a small archive built, indexed and timed, and its section spliced alone."""

from __future__ import annotations

from bench import getbench, run


def test_get_section_over_a_small_archive() -> None:
    section = getbench.get_section(0.01, samples=3, cold_samples=2, cli_samples=1)
    assert section.startswith(getbench.HEADING + "\n")
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 6  # the header, in process, its four parts, the command
    assert all(len(row.split("|")) == 7 for row in rows)  # name, warm p50/p95, cold p50/p95
    document = f"# Performance\n\n## Before\n\nkept\n\n{getbench.HEADING}\n\nold\n\n## After\n"
    spliced = run.splice(document, section)
    assert "kept" in spliced and "\nold\n" not in spliced and spliced.endswith("## After\n")
    assert getbench.kept_section(spliced) == section.rstrip("\n") + "\n"
    assert getbench.kept_section("# Performance\n").startswith(getbench.HEADING)
