"""Splitting links into crawl units: whole hosts, balanced, never one host in two units."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from pipeline.units import plan_units


def links(spec: dict[str, int]) -> list[dict]:
    return [
        {"link_id": f"{host}-{i}", "url": f"http://{host}/page/{i}"}
        for host, count in spec.items()
        for i in range(count)
    ]


def hosts(unit: list[dict]) -> set[str]:
    return {urlsplit(link["url"]).netloc for link in unit}


def test_one_unit_per_process_with_whole_hosts() -> None:
    units = plan_units(links({"a": 16, "b": 5, "c": 2, "d": 1}), processes=2)
    assert [hosts(u) for u in units] == [{"a"}, {"b", "c", "d"}]


def test_every_link_once_and_each_host_in_one_unit() -> None:
    given = links({f"h{i}": (i % 7) + 1 for i in range(40)})
    units = plan_units(given, processes=3, unit_size=20)
    flat = [link["link_id"] for unit in units for link in unit]
    assert sorted(flat) == sorted(link["link_id"] for link in given)
    owners: dict[str, int] = {}
    for number, unit in enumerate(units):
        for host in hosts(unit):
            assert owners.setdefault(host, number) == number  # never two units
    # 160 links at most 20 a unit: 8 units, balanced within one host's links
    assert len(units) == 8
    assert max(map(len, units)) - min(map(len, units)) <= 7


def test_a_big_host_is_never_split() -> None:
    units = plan_units(links({"big": 100, "small": 3}), processes=2, unit_size=10)
    assert sorted(len(u) for u in units) == [3, 100]


def test_fewer_hosts_than_processes_gives_fewer_units() -> None:
    assert len(plan_units(links({"only": 30}), processes=4)) == 1


def test_nothing_to_crawl_and_bad_arguments() -> None:
    assert plan_units([], processes=2) == []
    with pytest.raises(ValueError):
        plan_units([], processes=0)


def test_host_shards_are_stable_and_cluster_units_never_share_one() -> None:
    """Every machine must agree on a host's shard (no per-process hash seed), and units of
    a cluster run are disjoint in shards, so holding them never blocks a sibling unit."""
    import subprocess
    import sys

    from pipeline.units import HOST_SHARDS, shard_key, shard_of

    here = [shard_of(f"h{i}.example") for i in range(50)]
    elsewhere = subprocess.run(
        [sys.executable, "-c", "from pipeline.units import shard_of; "
         "print([shard_of(f'h{i}.example') for i in range(50)])"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(here) == elsewhere.strip()
    assert all(0 <= shard < HOST_SHARDS for shard in here) and len(set(here)) > 30
    units = plan_units(links({f"h{i}.example": 3 for i in range(300)}), processes=8, key=shard_key)
    owners: dict[int, int] = {}
    for number, unit in enumerate(units):
        for host in hosts(unit):
            assert owners.setdefault(shard_of(host), number) == number
    assert len(units) == 8
