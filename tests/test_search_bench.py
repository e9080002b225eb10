"""bench.run's search section: built over a small synthetic catalog, spliced alone."""

from __future__ import annotations

from bench import run


def test_search_section_replaces_only_itself() -> None:
    document = (
        "# Performance\n\n## Before\n\nkept\n\n"
        f"{run.SEARCH_HEADING}\n\nold text\n\n{run.REPLICA_INTRO}\n\n| a | b |\n|---|---|\n"
        "| x | 1 |\n\nOver a synthetic catalog: old\n\n## After\n\nkept too\n"
    )
    replica = "| a | b |\n|---|---|\n| x | 2 |"
    section = run.search_section(replica, (300,), repeat=2)
    spliced = run.splice(document, section)
    assert "## Before\n\nkept\n" in spliced and spliced.endswith("## After\n\nkept too\n")
    assert "old text" not in spliced and "Over a synthetic catalog: old" not in spliced
    assert replica in spliced and "Over a synthetic catalog of 300 links" in spliced
    rows = [line for line in spliced.splitlines() if line.startswith("| Blumen |")]
    assert len(rows) == 1 and len(rows[0].split("|")) == 7  # query, results, p50, p95, agreed
    # Every match of 300 links is within the window scored exactly: all ranks agree.
    cells = [line.split("|") for line in spliced.splitlines() if line.startswith("| ")]
    agreed = [c[5].strip() for c in cells if len(c) == 7 and " of " in c[5]]
    assert len(agreed) >= 6 and all(a.split(" of ")[0] == a.split(" of ")[1] for a in agreed)
    [expanded] = [line for line in spliced.splitlines() if line.startswith("| flowers --expand")]
    blumen = int(rows[0].split("|")[2].replace(",", ""))
    assert int(expanded.split("|")[2].replace(",", "")) > blumen  # flowers, Blumen and more
    pages = [line for line in spliced.splitlines() if line.startswith("| `/search")]
    assert len(pages) == 3 and "search index built from them in" in spliced


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert run._percentile(values, 0.5) == 10.0
    assert run._percentile(values, 0.95) == 19.0
    assert run._percentile([3.0], 0.95) == 3.0
