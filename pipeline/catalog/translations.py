"""Cross-language query expansion: each word of a query joined by its translations.

The rally pages are in ten languages, so a researcher's "flowers" misses "Blumen",
"цветы" and "kwiaty". :func:`expand_query` rewrites a query in the search syntax (see
:func:`pipeline.catalog.fulltext.parse_query`) so that every word or phrase the bundled
word list knows (``translations.tsv``) becomes a group of itself and its
translations: ``flowers rally`` -> ``flowers OR Blume* OR fleur* OR цветы ... rally OR
Kundgebung* OR ...``. The result is plain query text, shown to the researcher to read and
edit; adjacent ORs form one group, so the existing parser reads it as it stands.

The engine takes at most :data:`~pipeline.catalog.fulltext.MAX_TERMS` terms. Expansion
stops :data:`ROOM` terms short of that, adding every language's first form of each known
word before any second form; a word whose first forms do not fit is left as typed (and
reported). Expanding an expanded query changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files

from pipeline.catalog.fulltext import MAX_TERMS, words

#: Terms an expansion leaves free under MAX_TERMS, for the researcher's own edits.
ROOM = 4
DATA = "translations.tsv"

# The query syntax's tokens, as parse_query reads them.
_TOKEN = re.compile(r'\s*(?:(?P<neg>-*)"(?P<phrase>[^"]*)"?(?P<star>\*?)|(?P<bare>[^\s"]+))')
_OR, _AND, _NOT = ("OR", "|", "||"), ("AND", "&", "&&", "+"), "NOT"
_OPERATORS = frozenset((*_OR, *_AND, _NOT))
_BARE = re.compile(r"[^\W_]+")

#: A term as the engine compares it: its folded words, and whether the last is a prefix.
Key = tuple[tuple[str, ...], bool]


@dataclass(frozen=True)
class Form:
    """One term: how it is written in a query, and its folded key."""

    text: str
    key: Key

    @classmethod
    def listed(cls, form: str) -> Form:
        """A form of the word list (``Blume*``, ``human rights``) as a query term."""
        prefix = form.endswith("*")
        base = form[:-1] if prefix else form
        if not base or "*" in base or '"' in base or not words(base):
            raise ValueError(f"bad form {form!r} in {DATA}")
        simple = _BARE.fullmatch(base) and base not in _OPERATORS
        text = (base if simple else f'"{base}"') + ("*" if prefix else "")
        return cls(text, (tuple(words(base)), prefix))

    def covers(self, other: Form) -> bool:
        """Whether ``other`` finds nothing this term does not (the same, or a longer word
        after this prefix)."""
        (mine, prefix), (theirs, _) = self.key, other.key
        if self.key == other.key:
            return True
        return (
            prefix
            and len(mine) == len(theirs)
            and mine[:-1] == theirs[:-1]
            and theirs[-1].startswith(mine[-1])
        )


@dataclass(frozen=True)
class Concept:
    """One entry of the word list: its forms per language, most useful first."""

    forms: tuple[tuple[str, tuple[Form, ...]], ...]


@dataclass(frozen=True)
class WordList:
    """The bundled word list: its languages and concepts, each form's concept by key."""

    languages: tuple[str, ...]
    concepts: tuple[Concept, ...]
    index: dict[Key, int]

    def concept_of(self, key: Key) -> int | None:
        """The concept a term names: the one listing it, else (a word, not a prefix) the one
        with the longest listed prefix of it, so "Blumen" finds the concept of "Blume*"."""
        found = self.index.get(key)
        (terms, prefix) = key
        if found is not None or not terms:
            return found
        if prefix:
            return self.index.get((terms, False))
        last = terms[-1]
        for end in range(len(last) - 1, 0, -1):
            found = self.index.get(((*terms[:-1], last[:end]), True))
            if found is not None:
                return found
        return None


@lru_cache(maxsize=1)
def word_list() -> WordList:
    """The word list bundled with the package (read once)."""
    lines = [
        line
        for line in files("pipeline.catalog").joinpath(DATA).read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    languages = tuple(lines[0].split("\t"))
    concepts: list[Concept] = []
    index: dict[Key, int] = {}
    for number, line in enumerate(lines[1:]):
        cells = line.split("\t")
        if len(cells) > len(languages):
            raise ValueError(f"{DATA}: more cells than languages in {line[:60]!r}")
        forms = []
        for language, cell in zip(languages, cells, strict=False):
            listed = tuple(Form.listed(f.strip()) for f in cell.split("|") if f.strip())
            for form in listed:
                other = index.setdefault(form.key, number)
                if other != number:
                    where = f"concepts {other + 1} and {number + 1}"
                    raise ValueError(f"{DATA}: {form.text} is in {where}")
            if listed:
                forms.append((language, listed))
        concepts.append(Concept(tuple(forms)))
    return WordList(languages, tuple(concepts), index)


#: A candidate translation: (concept's place in the group, language's column, rank), form.
_Candidate = tuple[tuple[int, int, int], Form]


@dataclass
class _Item:
    """A group of the query (terms joined by OR), or one excluded term, as typed."""

    negated: bool
    forms: list[Form]
    added: list[_Candidate] = field(default_factory=list)

    def covered(self, form: Form) -> bool:
        return any(have.covers(form) for have in [*self.forms, *(f for _, f in self.added)])

    def render(self) -> str:
        """As query text: the terms as typed, then the translations in column order."""
        terms = self.forms + [form for _, form in sorted(self.added, key=lambda a: a[0])]
        if self.negated:
            return " ".join("-" + form.text for form in terms)
        return " OR ".join(form.text for form in terms)


def _items(text: str) -> list[_Item]:
    """The query's groups and excluded terms, read as parse_query reads them."""
    items: list[_Item] = []
    joining = negate_next = last_positive = False
    for match in _TOKEN.finditer(text):
        negated, negate_next = negate_next, False
        bare = match.group("bare")
        if bare is not None:
            if bare in _OR:
                joining = last_positive
                continue
            if bare in _AND:
                continue
            if bare == _NOT:
                negate_next = True
                continue
            shown = bare.lstrip("-")
            negated = negated or (len(shown) < len(bare) and bool(shown))
            key = (tuple(words(shown)), shown.endswith("*"))
        else:
            negated = negated or bool(match.group("neg"))
            shown = f'"{match.group("phrase")}"{match.group("star")}'
            key = (tuple(words(match.group("phrase"))), bool(match.group("star")))
        if not key[0]:
            continue
        form = Form(shown, key)
        if negated:
            items.append(_Item(True, [form]))
            joining = last_positive = False
        else:
            if joining and items:
                items[-1].forms.append(form)
            else:
                items.append(_Item(False, [form]))
            joining, last_positive = False, True
    return items


@dataclass(frozen=True)
class Expansion:
    """An expanded query, the terms it added translations to, and the known terms it left
    as typed because the engine's term limit was reached."""

    text: str
    expanded: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()


def expansion(text: str, limit: int = MAX_TERMS - ROOM) -> Expansion:
    """``text`` with the translations of its known words and phrases (see the module)."""
    table = word_list()
    items = _items(text)
    budget = limit - sum(len(item.forms) for item in items)
    candidates: dict[int, list[_Candidate]] = {}
    for item in items:
        concepts = []
        for form in item.forms:
            concept = table.concept_of(form.key)
            if concept is not None and concept not in concepts:
                concepts.append(concept)
        candidates[id(item)] = sorted(
            ((place, table.languages.index(language), rank), form)
            for place, concept in enumerate(concepts)
            for language, forms in table.concepts[concept].forms
            for rank, form in enumerate(forms)
        )
    skipped: set[int] = set()
    for index, item in enumerate(items):  # every language's first form of each concept, or none
        missing: list[_Candidate] = []
        for order, form in candidates[id(item)]:
            if order[2] > 0 or item.covered(form) or any(f.covers(form) for _, f in missing):
                continue
            missing.append((order, form))
        if len(missing) > budget:
            skipped.add(index)
            continue
        item.added.extend(missing)
        budget -= len(missing)
    later = sorted(  # then the second forms of every group, the third forms...
        (order[2], index, order, form)
        for index, item in enumerate(items)
        if index not in skipped
        for order, form in candidates[id(item)]
        if order[2] > 0
    )
    for _, index, order, form in later:
        if budget > 0 and not items[index].covered(form):
            items[index].added.append((order, form))
            budget -= 1
    names = tuple(items[index].forms[0].text for index in sorted(skipped))
    grown = tuple(item.forms[0].text for item in items if item.added)
    if not grown:
        return Expansion(text, (), names)
    return Expansion(" ".join(item.render() for item in items), grown, names)


def expand_query(text: str) -> str:
    """``text`` with every known word or phrase OR-ed with its translations, in the query
    syntax: ``flowers`` -> ``flowers OR Blume* OR fleur* OR цветы OR ...``."""
    return expansion(text).text
