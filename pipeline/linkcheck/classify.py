"""Link-rot watch: classify a live fetch of a curated link against its last archived capture.

Pure functions over response bytes, offline only. Text and images come from
:func:`pipeline.extract.extract_metadata`; this module only normalises and compares them and
recognises "the content is gone" pages (soft 404s, parked domains, redirects to a home page,
captcha / geo-block walls).
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urldefrag, urlencode, urlsplit

import lxml.html
import tldextract
from lxml import etree

from pipeline.extract import HTML_TYPES, decode_html, extract_metadata
from pipeline.walls import signals as page_signals
from pipeline.walls import wall_reason

__all__ = [
    "STATUSES",
    "blocking_wall",
    "Change",
    "Snapshot",
    "classify",
    "compare",
    "is_parking_or_home",
    "is_soft404",
    "snapshot",
]

STATUSES = ("alive", "changed", "redirected", "soft404", "dead", "blocked", "error")

MAX_DIFF_ITEMS = 20
MAX_DIFF_CHARS = 300
# Main text longer than this is an article, not an error page: only its title/h1 can say 404.
SHORT_TEXT_CHARS = 700
# Visible text longer than this is not a parking or captcha page.
SHORT_PAGE_CHARS = 2000
_SCAN_BYTES = 300_000

# --------------------------------------------------------------------------- normalisation

_MONTHS = (
    # en / de / fr / it / es / pt (full and abbreviated)
    r"jan(?:uary|uar|vier|\.)?|feb(?:ruary|ruar|\.)?|févr(?:ier|\.)?|mar(?:ch|\.)?|märz|mars|"
    r"apr(?:il|\.)?|avr(?:il|\.)?|may|mai|jun(?:e|i|\.)?|juin|jul(?:y|i|\.)?|juil(?:let|\.)?|"
    r"aug(?:ust|\.)?|août|sep(?:t(?:ember|embre)?)?\.?|oct(?:ober|obre|\.)?|okt(?:ober|\.)?|"
    r"nov(?:ember|embre|\.)?|dec(?:ember|\.)?|dez(?:ember|\.)?|déc(?:embre|\.)?|"
    r"gennaio|febbraio|marzo|aprile|maggio|giugno|luglio|agosto|settembre|ottobre|novembre|"
    r"dicembre|enero|febrero|abril|mayo|junio|julio|septiembre|octubre|noviembre|diciembre|"
    # ru (nominative and genitive) / be / uk / pl
    r"январ[ья]|феврал[ья]|марта?|апрел[ья]|ма[йя]|июн[ья]|июл[ья]|августа?|сентябр[ья]|"
    r"октябр[ья]|ноябр[ья]|декабр[ья]|студзен[ья]|лютага|сакавіка|красавіка|траўня|чэрвеня|"
    r"ліпеня|жніўня|верасня|кастрычніка|лістапада|снежня|січня|лютого|березня|квітня|травня|"
    r"червня|липня|серпня|вересня|жовтня|листопада|грудня|stycznia|lutego|marca|kwietnia|"
    r"maja|czerwca|lipca|sierpnia|września|października|listopada|grudnia"
)
_NUM = r"\d[\d\s.,\u00a0\u202f]*\d|\d"
_COUNTER_WORDS = (
    r"views?|viewed|reads?|comments?|likes?|shares?|reposts?|retweets?|replies|votes?|"
    r"просмотр\w*|комментар\w*|лайк\w*|репост\w*|прагляд\w*|каментар\w*|перегляд\w*|"
    r"коментар\w*|aufrufe|kommentare|vues|commentaires|visualizzazioni|commenti|"
    r"visualizaciones|comentarios|visualizações|wyświetle\w*|komentarz\w*|peržiūr\w*|"
    r"komentar\w*|skatījum\w*|vaatamis\w*"
)
_TIME_UNITS = (
    r"sec(?:ond)?s?|min(?:ute)?s?|hours?|hrs?|days?|weeks?|months?|years?|"
    r"сек\w*|мин\w*|час\w*|дн\w*|дней|недел\w*|месяц\w*|хвіл\w*|гадз\w*|тыдн\w*|"
    r"хвилин\w*|годин\w*|тижн\w*|minuten?|stunden?|tagen?|heures?|jours?|minut\w*|godzin\w*|"
    r"dni|minuti|ore|giorni|minutos|horas|días|dias"
)
_MASKS = (
    # ISO and numeric dates: 2024-03-05, 05.03.2024, 3/5/24, with an optional time part.
    re.compile(r"\b\d{1,4}[./-]\d{1,2}[./-]\d{1,4}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?\S*)?"),
    # Clock times: 12:45, 9:05:33 pm.
    re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?m\.?\b)?", re.I),
    # Day and year around a month name: "3 March 2024", "March 3, 2024", "5 марта 2024 г.".
    re.compile(
        rf"\b\d{{1,2}}\.?\s+(?:{_MONTHS})(?!\w)\.?(?:\s+\d{{4}}\b)?"
        rf"|(?<!\w)(?:{_MONTHS})(?!\w)\.?\s+\d{{1,4}}\b(?:,?\s+\d{{4}}\b)?",
        re.I,
    ),
    # Relative times: "5 minutes ago", "3 часа назад".
    re.compile(rf"\b\d+\s*(?:{_TIME_UNITS})\b", re.I),
    # Counters: "1,234 views", "Views: 1234", "12K likes".
    re.compile(rf"(?:{_NUM})\s*[kKmMкКтТ]?\w{{0,4}}\.?\s*(?:{_COUNTER_WORDS})\b", re.I),
    re.compile(rf"\b(?:{_COUNTER_WORDS})\s*[:\-]?\s*(?:{_NUM})\s*[kKmM]?\b", re.I),
)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?…])\s+(?=\S)")
_WS = re.compile(r"[^\S\n]+")


def _mask(text: str) -> str:
    """Replace dates, times and counters by ``#`` so rotating values do not count."""
    for pattern in _MASKS:
        text = pattern.sub("#", text)
    return text


def _normalise_text(text: str | None) -> str:
    """Masked text, one line per non-empty source line, whitespace collapsed."""
    lines = (_WS.sub(" ", _mask(line)).strip() for line in (text or "").splitlines())
    return "\n".join(line for line in lines if line)


def _sentences(text: str) -> list[str]:
    return [s.strip() for line in text.splitlines() for s in _SENTENCE_SPLIT.split(line) if s]


def _strip_query(url: str) -> str:
    return urldefrag(url)[0].split("?", 1)[0]


def _image_key(url: str) -> str:
    """Image identity for comparison: no scheme (http->https is not a change), no query."""
    return re.sub(r"^[a-z][a-z0-9+.-]*:", "", url, flags=re.I)


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class Snapshot:
    """What is compared between two captures of one link."""

    text: str
    images: frozenset[str]
    title: str | None


@dataclass(frozen=True)
class Change:
    """How a page differs from its last capture (sentence-level, capped lists)."""

    text_similarity: float
    added_text: list[str]
    removed_text: list[str]
    added_images: list[str]
    removed_images: list[str]


def snapshot(body: bytes, url: str, content_type: str | None) -> Snapshot:
    """Comparable view of a response: masked main text, image URLs without query strings."""
    meta = extract_metadata(body, url, content_type)
    return Snapshot(
        text=_normalise_text(meta.text),
        images=frozenset(_strip_query(u) for u in meta.images),
        title=meta.title,
    )


def _cap(items: list[str]) -> list[str]:
    return [s if len(s) <= MAX_DIFF_CHARS else s[: MAX_DIFF_CHARS - 1] + "…" for s in items][
        :MAX_DIFF_ITEMS
    ]


def compare(old: Snapshot, new: Snapshot, *, threshold: float = 0.95) -> Change | None:
    """None when equivalent (sentence ratio >= ``threshold`` and same images), else the change."""
    a, b = _sentences(old.text), _sentences(new.text)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    ratio = matcher.ratio() if a or b else 1.0
    old_images = {_image_key(u): u for u in old.images}
    new_images = {_image_key(u): u for u in new.images}
    if ratio >= threshold and old_images.keys() == new_images.keys():
        return None
    added: list[str] = []
    removed: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            removed.extend(a[i1:i2])
        if tag in ("replace", "insert"):
            added.extend(b[j1:j2])
    return Change(
        text_similarity=round(ratio, 4),
        added_text=_cap(added),
        removed_text=_cap(removed),
        added_images=_cap(sorted(new_images[k] for k in new_images.keys() - old_images.keys())),
        removed_images=_cap(sorted(old_images[k] for k in old_images.keys() - new_images.keys())),
    )


# --------------------------------------------------------------------------- page signals


def _fold(text: str | None) -> str:
    """Casefolded, typographic apostrophes/ellipsis unified, whitespace collapsed."""
    text = (text or "").replace("’", "'").replace("‘", "'").replace("…", "...")
    return " ".join(text.casefold().split())


@dataclass(frozen=True)
class _Page:
    title: str
    headings: tuple[str, ...]
    text: str  # visible text (scripts/styles removed), folded
    raw: str  # beginning of the decoded HTML, casefolded


def _page(body: bytes | None, content_type: str | None) -> _Page:
    """Title, first headings and visible text of an HTML body (lxml, no network)."""
    if not body:
        return _Page("", (), "", "")
    html, _ = decode_html(body[:_SCAN_BYTES], content_type)
    raw = html.casefold()
    try:
        parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True)
        tree = lxml.html.document_fromstring(html.encode("utf-8", "replace"), parser=parser)
    except (etree.ParserError, ValueError):
        return _Page("", (), "", raw)
    title = _fold(" ".join(tree.xpath("//title//text()")))
    og = tree.xpath("//meta[@property='og:title']/@content")
    headings = [_fold(" ".join(h.itertext())) for h in tree.xpath("//h1|//h2")[:4]]
    headings += [_fold(t) for t in og[:1]]
    for bad in tree.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    body_nodes = tree.xpath("//body")
    text = _fold(" ".join((body_nodes[0] if body_nodes else tree).itertext()))
    return _Page(title, tuple(h for h in headings if h), text, raw)


def _alternation(phrases: tuple[str, ...]) -> re.Pattern[str]:
    body = "|".join(r"\s+".join(map(re.escape, _fold(p).split())) for p in phrases)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)")


_GONE_PHRASES = (
    # en
    "page not found",
    "not found",
    "404 error",
    "error 404",
    "page does not exist",
    "page doesn't exist",
    "this page doesn't exist",
    "page no longer exists",
    "could not be found",
    "can't be found",
    "cannot be found",
    "no longer available",
    "is no longer available",
    "has been removed",
    "has been deleted",
    "was removed",
    "was deleted",
    "page unavailable",
    "content unavailable",
    "content not available",
    "we couldn't find that page",
    "we can't find the page",
    "the page you requested",
    "the page you are looking for",
    "the page you're looking for",
    # ru
    "страница не найдена",
    "страницу не найдено",
    "не найдена",
    "не найдено",
    "не найден",
    "ошибка 404",
    "такой страницы нет",
    "страница не существует",
    "страница удалена",
    "запись удалена",
    "публикация удалена",
    "материал удален",
    "материал удалён",
    "статья удалена",
    "пост удален",
    "пост удалён",
    "материал недоступен",
    "страница недоступна",
    "контент недоступен",
    "видео недоступно",
    # be
    "старонка не знойдзена",
    "старонку не знойдзена",
    "не знойдзена",
    "не знойдзены",
    "не знойдзена старонка",
    "памылка 404",
    "старонка не існуе",
    "старонка выдалена",
    "запіс выдалены",
    "артыкул выдалены",
    "матэрыял выдалены",
    "матэрыял недаступны",
    # uk
    "сторінку не знайдено",
    "сторінка не знайдена",
    "не знайдено",
    "помилка 404",
    "сторінка не існує",
    "сторінку видалено",
    "запис видалено",
    "матеріал видалено",
    "матеріал недоступний",
    # de
    "seite nicht gefunden",
    "nicht gefunden",
    "fehler 404",
    "seite existiert nicht",
    "diese seite gibt es nicht",
    "nicht mehr verfügbar",
    "seite wurde entfernt",
    "seite wurde gelöscht",
    "inhalt nicht verfügbar",
    "konnte nicht gefunden werden",
    # fr
    "page introuvable",
    "page non trouvée",
    "introuvable",
    "erreur 404",
    "cette page n'existe pas",
    "cette page n'existe plus",
    "la page demandée n'existe pas",
    "n'est plus disponible",
    "page supprimée",
    "contenu indisponible",
    "contenu supprimé",
    "cette page n'est pas disponible",
    # it
    "pagina non trovata",
    "non trovata",
    "non trovato",
    "errore 404",
    "la pagina non esiste",
    "pagina inesistente",
    "non è più disponibile",
    "pagina rimossa",
    "contenuto non disponibile",
    # lt
    "puslapis nerastas",
    "puslapis nerasta",
    "puslapio nerasta",
    "nerastas",
    "nerasta",
    "klaida 404",
    "puslapis neegzistuoja",
    "puslapis pašalintas",
    "turinys nepasiekiamas",
    "straipsnis pašalintas",
    # lv
    "lapa nav atrasta",
    "lapa netika atrasta",
    "nav atrasta",
    "netika atrasta",
    "kļūda 404",
    "lapa neeksistē",
    "lapa ir dzēsta",
    "lapa ir izdzēsta",
    "raksts ir dzēsts",
    "saturs nav pieejams",
    # pl
    "strona nie została znaleziona",
    "nie znaleziono strony",
    "nie znaleziono",
    "błąd 404",
    "strona nie istnieje",
    "nie ma takiej strony",
    "strona została usunięta",
    "artykuł został usunięty",
    "treść niedostępna",
    # es
    "página no encontrada",
    "no encontrada",
    "no se encontró",
    "no se ha encontrado",
    "la página no existe",
    "ya no está disponible",
    "contenido no disponible",
    "página eliminada",
    # pt
    "página não encontrada",
    "não encontrada",
    "não encontrado",
    "erro 404",
    "a página não existe",
    "não está mais disponível",
    "conteúdo indisponível",
    "página removida",
    # et
    "lehekülge ei leitud",
    "lehte ei leitud",
    "ei leitud",
    "viga 404",
    "lehekülg ei eksisteeri",
    "leht on kustutatud",
    "artikkel on kustutatud",
    "sisu pole saadaval",
    # platforms
    "this content isn't available",
    "this content isn't available right now",
    "this page isn't available",
    "sorry, this page isn't available",
    "the link you followed may be broken",
    "this post is unavailable",
    "this tweet is unavailable",
    "this tweet has been deleted",
    "hmm...this page doesn't exist",
    "this account doesn't exist",
    "video unavailable",
    "this video isn't available anymore",
    "this video has been removed",
    "this video is no longer available",
    "video currently unavailable",
    "couldn't find this account",
    "post not found",
    "channel not found",
    "this post was deleted",
    "sorry, this post has been removed",
    "sorry, this post was deleted",
    "запись удалена",
    "пост удалён автором",
    "эта страница удалена",
    "страница удалена либо ещё не создана",
)
_GONE_RE = _alternation(_GONE_PHRASES)
_404_RE = re.compile(r"(?<!\d)(?:404|410)(?!\d)")

_PARKING_PHRASES = (
    "this domain is for sale",
    "this domain may be for sale",
    "domain is for sale",
    "domain name is for sale",
    "buy this domain",
    "this domain name is parked",
    "parked free",
    "parked domain",
    "courtesy of godaddy",
    "this web page is parked",
    "домен продается",
    "домен продаётся",
    "этот домен продается",
    "diese domain steht zum verkauf",
    "diese domain kaufen",
    "ce domaine est à vendre",
    "domena na sprzedaż",
    "dominio in vendita",
    "este dominio está a la venta",
)
_PARKING_RE = _alternation(_PARKING_PHRASES)
_PARKING_HOSTS = frozenset(
    {
        "sedo.com",
        "sedoparking.com",
        "parkingcrew.net",
        "bodis.com",
        "dan.com",
        "afternic.com",
        "hugedomains.com",
        "above.com",
        "parklogic.com",
        "undeveloped.com",
        "domainmarket.com",
        "uniregistry.com",
        "buydomains.com",
        "perfectdomain.com",
    }
)
_PARKING_MARKUP = (
    "sedoparking.com",
    "parkingcrew.net",
    "bodis.com",
    "parking.godaddy",
    "img1.wsimg.com/parking",
    "parkingpage.namecheap.com",
    "above.com/marketplace",
    "dan.com/buy-domain",
)

_BLOCK_TITLES = _alternation(
    (
        "just a moment...",
        "attention required! | cloudflare",
        "access denied",
        "verify you are human",
        "are you a robot",
        "captcha",
        "ddos-guard",
        "security check",
        "доступ ограничен",
        "доступ запрещен",
        "доступ запрещён",
    )
)
_BLOCK_TEXT = _alternation(
    (
        "checking your browser before accessing",
        "verify you are human",
        "are you a robot",
        "complete the captcha",
        "unusual traffic from your computer",
        "not available in your country",
        "not available in your region",
        "is not available in your location",
        "this content is not available in your country",
        "в вашей стране недоступ",
        "в вашем регионе недоступ",
        "вы робот",
    )
)
_BLOCK_MARKUP = ("cf-chl-", "challenge-platform", "captcha-delivery.com", "ddos-guard")


def _gone(text: str) -> bool:
    return bool(text) and _GONE_RE.search(text) is not None


def is_soft404(body: bytes, url: str, content_type: str | None, status: int) -> bool:
    """A 2xx page saying its content is gone (not found / deleted / unavailable).

    Signals, to avoid flagging articles that merely mention "not found": the ``<title>``
    plus ``<h1>`` (or a 404 code in the title) match regardless of length; otherwise the
    title, a heading or the main text must match *and* the main text must be short.
    """
    if not 200 <= status < 300 or not body:
        return False
    return _soft404(_page(body, content_type), body, url, content_type)


def _soft404(page: _Page, body: bytes, url: str, content_type: str | None) -> bool:
    if not page.title and not page.headings and not page.text:
        return False
    title_gone = _gone(page.title)
    heading_gone = any(_gone(h) for h in page.headings)
    if title_gone and (heading_gone or _404_RE.search(page.title)):
        return True
    if not (title_gone or heading_gone or _gone(page.text[:SHORT_PAGE_CHARS])):
        return False
    main = _fold(extract_metadata(body, url, content_type).text)
    return len(main) <= SHORT_TEXT_CHARS and len(page.text) <= 4 * SHORT_PAGE_CHARS


def _looks_blocked(page: _Page) -> bool:
    """Cheap captcha / bot-wall / geo-block detection on a 2xx page."""
    if _BLOCK_TITLES.search(page.title):
        return True
    if len(page.text) > SHORT_PAGE_CHARS:
        return False
    return _BLOCK_TEXT.search(page.text) is not None or any(m in page.raw for m in _BLOCK_MARKUP)


def _is_parking_page(page: _Page) -> bool:
    if any(m in page.raw for m in _PARKING_MARKUP):
        return True
    return len(page.text) <= SHORT_PAGE_CHARS and (
        _PARKING_RE.search(page.text) is not None or _PARKING_RE.search(page.title) is not None
    )


# --------------------------------------------------------------------------- URLs

_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "yclid",
        "msclkid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "ref",
        "ref_src",
        "ref_url",
        "spm",
        "si",
        "s",
        "feature",
        "__twitter_impression",
        "share",
    }
)
_SHORTENERS = frozenset(
    {
        "t.co",
        "bit.ly",
        "goo.gl",
        "tinyurl.com",
        "ow.ly",
        "buff.ly",
        "youtu.be",
        "fb.me",
        "t.ly",
        "is.gd",
        "vk.cc",
        "lnkd.in",
        "dlvr.it",
        "trib.al",
        "shorturl.at",
    }
)
_HOME_PATH = re.compile(
    r"^/?(?:(?:index|default|home|main)(?:\.\w{2,5})?|[a-z]{2}(?:[-_][a-z]{2})?|home)?/?$", re.I
)


@functools.cache
def _tld() -> tldextract.TLDExtract:
    # The bundled public-suffix snapshot only: never fetch the list over the network.
    return tldextract.TLDExtract(suffix_list_urls=())


def _host(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def _site(url: str) -> str:
    """Registrable domain (``m.facebook.com`` -> ``facebook.com``), or the host."""
    host = _host(url)
    parts = _tld()(host)
    return f"{parts.domain}.{parts.suffix}" if parts.domain and parts.suffix else host


def _canonical(url: str) -> tuple[str, str, str]:
    """URL identity ignoring scheme, ``www.``, default ports, trailing slash, tracking params."""
    parts = urlsplit(url.strip())
    path = re.sub(r"/+$", "", parts.path) or ""
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _TRACKING_PARAMS and not k.lower().startswith("utm_")
    )
    return _host(url), path, urlencode(query)


def _is_home(url: str) -> bool:
    parts = urlsplit(url)
    return bool(_HOME_PATH.match(parts.path or "/")) and not parts.query


def is_parking_or_home(
    final_url: str, original_url: str, body: bytes | None, page: _Page | None = None
) -> bool:
    """True if the fetch ended on a site's home page (the link did not) or a parked domain."""
    if _site(final_url) in _PARKING_HOSTS:
        return True
    if _is_home(final_url) and not _is_home(original_url):
        return True
    return bool(body) and _is_parking_page(page or _page(body, None))


def _meaningful_redirect(
    original_url: str, final_url: str | None, body: bytes | None, page: _Page
) -> bool:
    if not final_url or _canonical(final_url) == _canonical(original_url):
        return False
    if is_parking_or_home(final_url, original_url, body, page):
        return True
    return _host(original_url) not in _SHORTENERS and _site(final_url) != _site(original_url)


# --------------------------------------------------------------------------- classification

_DEAD_ERRORS = re.compile(
    # Not a bare "refused": the address policy and the TLS policy refuse too, by our choice.
    r"dnslookuperror|host name not found|connectionrefused|connection refused|"
    r"name or service not known|"
    r"nodename nor servname|"
    r"no address associated|getaddrinfo failed|nxdomain|temporary failure in name resolution",
    re.I,
)
_DEAD_CODES = frozenset({404, 410})
_BLOCKED_CODES = frozenset({401, 403, 429, 451})


def blocking_wall(
    status: int | None, body: bytes | None, content_type: str | None, text: str | None = None
) -> str | None:
    """``"log-in wall"`` or ``"content unavailable"`` when an HTML answer is one (see
    :mod:`pipeline.walls`; ``text``: what a browser rendered), else None."""
    if status not in (200, 401, 403) or not body:
        return None
    mime = (content_type or "text/html").split(";", 1)[0].strip().lower()
    if mime not in HTML_TYPES:
        return None
    return wall_reason(page_signals(body), text)


def classify(
    *,
    original_url: str,
    status: int | None,
    final_url: str | None,
    body: bytes | None,
    content_type: str | None,
    error: str | None,
    last: Snapshot | None,
    text: str | None = None,
) -> tuple[str, Change | None]:
    """One of :data:`STATUSES` for what one fetch of a link answered, plus the
    :class:`Change` when "changed". The crawl and the check both call it, so one answer
    gets one status whichever command saw it; only a check has a ``last`` to compare.

    Order: transport errors (DNS, refused -> dead; others, such as timeouts -> error),
    then a log-in wall or "content unavailable" page -> blocked, then status codes
    (404/410 dead; 401/403/429/451 blocked; other non-2xx error), then for 2xx:
    captcha/geo wall -> blocked, a redirect to a home or parking page or to another
    site -> redirected (one within the site, such as http -> https or a trailing slash,
    is not), a parked domain at the same URL or a soft 404 -> soft404, a changed page ->
    changed, else alive. ``dead`` and ``soft404`` are failures: what a *link's* standing
    becomes is decided by :func:`pipeline.linkcheck.history.observe`.
    """
    if error:
        return ("dead" if _DEAD_ERRORS.search(error) else "error"), None
    if status is None:
        return "error", None
    if status in _DEAD_CODES:
        return "dead", None
    if blocking_wall(status, body, content_type, text) or status in _BLOCKED_CODES:
        return "blocked", None
    if not 200 <= status < 300:
        return "error", None
    url = final_url or original_url
    page = _page(body, content_type)
    if body and _looks_blocked(page):
        return "blocked", None
    if _meaningful_redirect(original_url, final_url, body, page):
        return "redirected", None
    if body and (_is_parking_page(page) or _soft404(page, body, url, content_type)):
        return "soft404", None
    if last is not None:
        change = compare(last, snapshot(body or b"", url, content_type))
        if change is not None:
            return "changed", change
    return "alive", None
