"""Sharding links into crawl batches by host."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from pipeline.batching import shard_by_host


def links(spec: dict[str, int]) -> list[dict]:
    return [
        {"link_id": f"{host}-{i}", "url": f"http://{host}/page/{i}"}
        for host, count in spec.items()
        for i in range(count)
    ]


def hosts(batch: list[dict]) -> set[str]:
    return {urlsplit(link["url"]).netloc for link in batch}


def test_each_host_stays_in_one_batch_and_both_workers_get_one() -> None:
    batches = shard_by_host(links({"a": 16, "b": 5, "c": 2, "d": 1}), max_batch=50, workers=2)
    assert len(batches) == 2
    assert [hosts(b) for b in batches] == [{"a"}, {"b", "c", "d"}]


def test_every_link_once_and_batches_bounded() -> None:
    given = links({"a": 7, "b": 7, "c": 3, "d": 3, "e": 1})
    batches = shard_by_host(given, max_batch=8, workers=2)
    flat = [link["link_id"] for batch in batches for link in batch]
    assert sorted(flat) == sorted(link["link_id"] for link in given)
    assert all(len(batch) <= 8 for batch in batches)
    owners = {}
    for number, batch in enumerate(batches):
        for host in hosts(batch):
            assert owners.setdefault(host, number) == number  # never two batches


def test_a_host_larger_than_a_batch_is_split() -> None:
    batches = shard_by_host(links({"big": 10}), max_batch=4, workers=2)
    assert [len(b) for b in batches] == [4, 4, 2]


def test_host_names_compare_case_insensitively_and_ports_count() -> None:
    given = [
        {"link_id": 1, "url": "http://Example.org/a"},
        {"link_id": 2, "url": "http://example.org/b"},
        {"link_id": 3, "url": "http://example.org:8080/c"},
    ]
    batches = shard_by_host(given, max_batch=10, workers=2)
    assert sorted(len(b) for b in batches) == [1, 2]


def test_nothing_to_shard() -> None:
    assert shard_by_host([], max_batch=10, workers=2) == []
    with pytest.raises(ValueError):
        shard_by_host([], max_batch=0, workers=2)
