"""bench/accuracy.py reads the libraries' assertions as they are written (fake sdists here)."""

from __future__ import annotations

from pathlib import Path

from bench.accuracy import correct, htmldate_cases, trafilatura_cases

HTMLDATE_TESTS = """
MOCK_PAGES = {
'https://a.ex/1': 'a1.html',
'https://a.ex/2': 'a2.html',
'https://a.ex/3': 'a3.html',
}
def test_pages():
    assert find_date(load_mock_page('https://a.ex/1')) == '2019-06-20'
    assert find_date(load_mock_page('https://a.ex/1'), original_date=True) == '2018-02-28'
    assert find_date(load_mock_page('https://a.ex/2'), outputformat='%d %B %Y') == '23 May 2016'
    assert find_date(load_mock_page('https://a.ex/2'), extensive_search=False) is None
    assert find_date(load_mock_page('https://a.ex/3')) is None
"""

TRAFILATURA_TESTS = """
MOCK_PAGES = {
'https://b.example/1': 'b1.html',
'https://b.example/2': 'b2.html',
}
def test_pages():
    metadata = extract_metadata(load_mock_page('https://b.example/1'))
    assert metadata.title == 'A title'
    assert metadata.description.startswith('Once upon')
    assert 'Jane' in metadata.author
    url = 'https://b.example/2'
    metadata = extract_metadata(load_mock_page(url))
    assert metadata.sitename == 'B News'
    assert metadata.categories == ['x']
"""


def sdist(root: Path, name: str, tests: str, pages: list[str]) -> Path:
    (root / "tests" / "cache").mkdir(parents=True)
    (root / "tests" / name).write_text(tests, encoding="utf-8")
    for page in pages:
        (root / "tests" / "cache" / page).write_text("<html></html>", encoding="utf-8")
    return root


def test_htmldate_assertions(tmp_path: Path) -> None:
    root = sdist(tmp_path, "unit_tests.py", HTMLDATE_TESTS, ["a1.html", "a2.html", "a3.html"])
    cases = {c.url: c.expect["published"] for c in htmldate_cases(root)}
    assert cases == {
        "https://a.ex/1": ("==", "2018-02-28"),  # original_date=True wins
        "https://a.ex/2": ("==", "2016-05-23"),  # not the restricted search's None
        "https://a.ex/3": ("==", None),
    }


def test_trafilatura_assertions(tmp_path: Path) -> None:
    root = sdist(tmp_path, "metadata_tests.py", TRAFILATURA_TESTS, ["b1.html", "b2.html"])
    cases = {c.url: c.expect for c in trafilatura_cases(root)}
    assert cases == {
        "https://b.example/1": {
            "title": ("==", "A title"),
            "description": ("startswith", "Once upon"),
            "author": ("in", "Jane"),
        },
        "https://b.example/2": {"site_name": ("==", "B News")},
    }


def test_comparison_ignores_case_spacing_and_quotes() -> None:
    assert correct(("==", "It’s  a Title"), "it's a title")
    assert correct(("in", "Jane Doe"), "Jane Doe; John Roe")
    assert correct(("==", None), None)
    assert not correct(("==", None), "2020-01-01")
    assert not correct(("==", "2020-01-01"), None)
