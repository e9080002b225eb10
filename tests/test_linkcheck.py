"""Link-rot watch: soft 404s, change detection, redirects, statuses, confirmed death."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pipeline.linkcheck.classify import (
    STATUSES,
    Snapshot,
    classify,
    compare,
    is_parking_or_home,
    is_soft404,
    snapshot,
)
from pipeline.linkcheck.standing import DeathRule, confirmed_dead

URL = "https://news.example.org/2024/03/story-about-rivers"


def page(title: str, h1: str, *paras: str, lang: str = "en", extra: str = "") -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paras)
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body><nav><a href='/'>Home</a> <a href='/news'>News</a></nav>"
        f"<main><h1>{h1}</h1>{body}{extra}</main><footer>© Example</footer></body></html>"
    ).encode()


SOFT_404 = {
    "en": page("Page not found | Example", "Oops!", "The page you requested could not be found."),
    "ru": page("Ошибка 404", "Страница не найдена", "Вернитесь на главную.", lang="ru"),
    "be": page("Навіны", "Старонка не знойдзена", "Вярніцеся на галоўную.", lang="be"),
    "uk": page("Помилка", "Сторінку не знайдено", "Поверніться на головну.", lang="uk"),
    "de": page("Fehler", "Seite nicht gefunden", "Zur Startseite.", lang="de"),
    "fr": page("Erreur 404", "Page introuvable", "Retour à l'accueil.", lang="fr"),
    "it": page("Errore", "Pagina non trovata", "Torna alla home.", lang="it"),
    "lt": page("Klaida", "Puslapis nerastas", "Grįžti į pradžią.", lang="lt"),
    "lv": page("Kļūda", "Lapa nav atrasta", "Atpakaļ uz sākumu.", lang="lv"),
    "pl": page("Błąd", "Nie znaleziono strony", "Wróć na stronę główną.", lang="pl"),
    "es": page("Error", "Página no encontrada", "Volver al inicio.", lang="es"),
    "pt": page("Erro", "Página não encontrada", "Voltar ao início.", lang="pt"),
    "et": page("Viga", "Lehekülge ei leitud", "Tagasi avalehele.", lang="et"),
    "facebook": page("Facebook", "This content isn't available right now", "Go to News Feed"),
    "twitter": page("X", "Hmm...this page doesn’t exist. Try searching for something else."),
    "x-post": page("X", "", "This post is unavailable."),
    "youtube": page("YouTube", "Video unavailable", "This video is no longer available."),
    "instagram": page("Instagram", "Sorry, this page isn't available.", "Go back to Instagram."),
    "vk": page("ВКонтакте", "Запись удалена", "", lang="ru"),
    "telegram": page("Telegram: Contact @channel", "Post not found", ""),
}

ARTICLE_PARAS = (
    "The river rose by two metres overnight and flooded the lower town.",
    "Residents said the warning came too late for many families to move their belongings.",
    "The mayor promised compensation and a review of the early warning system.",
    "Engineers will inspect the dam next week, officials said.",
    "Local volunteers organised shelters in two schools and the sports hall.",
)


def article(
    *,
    stamp: str = "Updated 12:45, 3 March 2024",
    views: str = "1,234 views",
    ad: str = "Buy shoes now",
    paras: tuple[str, ...] = ARTICLE_PARAS,
    images: tuple[str, ...] = ("/img/flood.jpg?w=800", "/img/dam.jpg"),
) -> bytes:
    imgs = "".join(f'<figure><img src="{src}" alt="photo"></figure>' for src in images)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Flood hits the lower town | Example News</title></head><body>"
        f'<aside class="advert">{ad}</aside><article><h1>Flood hits the lower town</h1>'
        f"<p>Reported by our correspondent. {stamp}. {views}.</p>"
        + "".join(f"<p>{p}</p>" for p in paras[:3])
        + imgs
        + "".join(f"<p>{p}</p>" for p in paras[3:])
        + "</article></body></html>"
    ).encode()


@pytest.mark.parametrize("name", sorted(SOFT_404))
def test_soft404_detected(name: str) -> None:
    assert is_soft404(SOFT_404[name], URL, "text/html", 200), name


def test_soft404_windows_1251_russian() -> None:
    body = (
        "<html><head><meta http-equiv='Content-Type' content='text/html; charset=windows-1251'>"
        "<title>Новости региона</title></head><body><div class='content'>"
        "<h1>Материал удалён</h1><p>Запрашиваемая страница не найдена.</p></div></body></html>"
    ).encode("cp1251")
    assert is_soft404(body, URL, "text/html", 200)
    assert is_soft404(body, URL, "text/html; charset=windows-1251", 200)


def test_long_article_mentioning_not_found_is_not_soft404() -> None:
    paras = [
        "Link rot is the slow decay of the web: a page not found error greets readers who "
        "follow old citations, and researchers say the problem is growing every year.",
        *(p + " Archivists keep copies so the record is not lost." for p in ARTICLE_PARAS),
        "One study found that a quarter of links in court opinions now lead to a "
        "'404 not found' page or to content that has been removed or changed.",
        "Libraries and newsrooms are responding with web archives and persistent links.",
    ]
    body = page("Why the web forgets | Example", "Why the web forgets", *paras)
    assert not is_soft404(body, URL, "text/html", 200)
    assert classify(
        original_url=URL,
        status=200,
        final_url=URL,
        body=body,
        content_type="text/html",
        error=None,
        last=None,
    ) == ("alive", None)


def test_real_404_status_is_not_a_soft404() -> None:
    assert not is_soft404(SOFT_404["en"], URL, "text/html", 404)


def test_rotating_timestamp_counter_and_ad_are_not_a_change() -> None:
    old = snapshot(article(), URL, "text/html")
    new = snapshot(
        article(stamp="Updated 09:05, 4 March 2024", views="9,876 views", ad="Cheap flights!"),
        URL,
        "text/html",
    )
    assert "river rose" in old.text
    assert "Reported by our correspondent. Updated #, #. #." in old.text  # stamp and counter masked
    assert "shoes" not in old.text  # the ad is not main text
    assert compare(old, new) is None
    assert classify(
        original_url=URL,
        status=200,
        final_url=URL,
        body=article(stamp="Updated 23:59, 5 March 2024", views="12K views"),
        content_type="text/html",
        error=None,
        last=old,
    ) == ("alive", None)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Posted 5 minutes ago", "Posted 3 hours ago"),
        (
            "Обновлено 5 марта 2024 г. в 10:15, 1 234 просмотра",
            "Обновлено 6 марта 2024 г. в 08:01, 2 001 просмотр",
        ),
        ("Views: 1234 · 2024-03-05T10:00:00Z", "Views: 99 · 2024-03-06T11:30:00Z"),
        ("Aktualisiert am 05.03.2024, 12K likes", "Aktualisiert am 06.03.2024, 13K likes"),
    ],
)
def test_rotating_values_are_masked(a: str, b: str) -> None:
    body_a, body_b = (article(paras=(*ARTICLE_PARAS, x)) for x in (a, b))
    assert compare(snapshot(body_a, URL, None), snapshot(body_b, URL, None)) is None


def test_real_numbers_are_kept() -> None:
    edited = (*ARTICLE_PARAS[:-1], "Local volunteers organised shelters in 12 schools.")
    old = snapshot(
        article(paras=(*ARTICLE_PARAS[:-1], "Local volunteers organised shelters in 2 schools.")),
        URL,
        None,
    )
    assert compare(old, snapshot(article(paras=edited), URL, None)) is not None


def test_image_query_string_is_ignored() -> None:
    old = snapshot(article(), URL, "text/html")
    new = snapshot(article(images=("/img/flood.jpg?w=1200&v=2", "/img/dam.jpg")), URL, None)
    assert old.images == new.images
    assert compare(old, new) is None


def test_edited_paragraph_is_a_change() -> None:
    edited = list(ARTICLE_PARAS)
    edited[2] = "The mayor refused to comment on compensation."
    old = snapshot(article(), URL, "text/html")
    new_body = article(paras=tuple(edited))
    change = compare(old, snapshot(new_body, URL, "text/html"))
    assert change is not None
    assert change.text_similarity < 0.95
    assert "The mayor refused to comment on compensation." in change.added_text
    assert any("promised compensation" in s for s in change.removed_text)
    assert not change.added_images and not change.removed_images
    status, info = classify(
        original_url=URL,
        status=200,
        final_url=URL,
        body=new_body,
        content_type="text/html",
        error=None,
        last=old,
    )
    assert status == "changed" and info == change


def test_removed_image_is_a_change() -> None:
    old = snapshot(article(), URL, "text/html")
    change = compare(old, snapshot(article(images=("/img/flood.jpg",)), URL, "text/html"))
    assert change is not None
    assert change.removed_images == ["https://news.example.org/img/dam.jpg"]
    assert change.text_similarity == 1.0


def test_compare_identical_and_threshold() -> None:
    snap = Snapshot(text="A. B. C.", images=frozenset(), title=None)
    assert compare(snap, snap) is None
    other = Snapshot(text="A. B. D.", images=frozenset(), title=None)
    assert compare(snap, other) is not None
    assert compare(snap, other, threshold=0.5) is None


PARKING = (
    b"<html><head><title>example-rivers.com</title></head><body>"
    b"<h1>This domain is for sale!</h1><p>Buy this domain today.</p>"
    b"<script src='https://img.sedoparking.com/templates/js/park.js'></script></body></html>"
)
HOME = page("Example News", "Latest news", "Today's headlines.", "Weather and sport.")


def check(url: str = URL, **kw: object) -> tuple[str, object]:
    args: dict[str, object] = {
        "original_url": URL,
        "status": 200,
        "final_url": url,
        "body": HOME,
        "content_type": "text/html",
        "error": None,
        "last": None,
    }
    args.update(kw)
    return classify(**args)  # type: ignore[arg-type]


def test_redirect_to_home_page() -> None:
    assert is_parking_or_home("https://news.example.org/", URL, HOME)
    assert check("https://news.example.org/")[0] == "redirected"
    assert check("https://www.news.example.org/en/")[0] == "redirected"


def test_redirect_to_parking_page() -> None:
    assert is_parking_or_home("http://example-rivers.com/lander", URL, PARKING)
    assert check("http://example-rivers.com/lander", body=PARKING)[0] == "redirected"
    assert check("https://sedo.com/search/details/?domain=x", body=HOME)[0] == "redirected"
    # A parked domain served at the link's own URL: the content is gone.
    assert check(URL, body=PARKING)[0] == "soft404"


def test_redirect_to_other_site() -> None:
    assert check("https://elsewhere.example.net/landing/river")[0] == "redirected"


@pytest.mark.parametrize(
    "final",
    [
        URL.replace("https://", "http://"),
        URL + "/",
        URL + "?utm_source=twitter&utm_medium=social&fbclid=abc",
        URL.replace("https://news.", "https://www.news."),
    ],
)
def test_cosmetic_redirects_are_not_redirected(final: str) -> None:
    body = article()
    assert check(final, body=body)[0] == "alive"
    # ... and the reverse direction (http link upgraded to https).
    assert (
        classify(
            original_url=final,
            status=200,
            final_url=URL,
            body=body,
            content_type="text/html",
            error=None,
            last=None,
        )[0]
        == "alive"
    )


def test_same_site_moved_article_is_not_redirected() -> None:
    assert (
        check("https://m.news.example.org/2024/03/story-about-rivers-updated", body=article())[0]
        == "alive"
    )


def test_shortener_to_other_site_is_not_redirected() -> None:
    status, _ = classify(
        original_url="https://t.co/AbC123",
        status=200,
        final_url=URL,
        body=article(),
        content_type="text/html",
        error=None,
        last=None,
    )
    assert status == "alive"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "alive"),
        (204, "alive"),
        (404, "dead"),
        (410, "dead"),
        (401, "blocked"),
        (403, "blocked"),
        (429, "blocked"),
        (451, "blocked"),
        (400, "error"),
        (500, "error"),
        (502, "error"),
        (503, "error"),
        (304, "error"),
    ],
)
def test_status_codes(status: int, expected: str) -> None:
    assert expected in STATUSES
    assert check(URL, status=status, body=article())[0] == expected


def test_soft404_status() -> None:
    assert check(URL, body=SOFT_404["ru"])[0] == "soft404"


def test_captcha_page_is_blocked() -> None:
    body = (
        b"<html><head><title>Just a moment...</title></head><body>"
        b"<div id='cf-chl-widget'>Checking your browser before accessing the site.</div>"
        b"</body></html>"
    )
    assert check(URL, body=body)[0] == "blocked"
    geo = page("Video", "Sorry", "This content is not available in your country.")
    assert check(URL, body=geo)[0] == "blocked"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("twisted.internet.error.DNSLookupError: DNS lookup failed: no results", "dead"),
        ("ConnectionRefusedError: Connection was refused by other side: 111", "dead"),
        ("[Errno -2] Name or service not known", "dead"),
        ("host name not found (DNS): example.invalid", "dead"),
        ("connection refused by 192.0.2.1:443", "dead"),
        ("twisted.internet.error.TimeoutError: User timeout caused connection failure", "error"),
        ("ReadTimeout: timed out", "error"),
        ("SSL routines: certificate verify failed", "error"),
        ("ResponseNeverReceived: ConnectionLost", "error"),
        # Our own policies refuse too: the link is not at fault.
        (
            "refused 10.0.0.1: private address, not fetched (allow it with "
            "LINKARCHIVE_ALLOW_ADDRESSES)",
            "error",
        ),
        (
            "TLS certificate not trusted: self-signed certificate (to archive it anyway, add "
            "the host to LINKARCHIVE_UNTRUSTED_TLS)",
            "error",
        ),
    ],
)
def test_transport_errors(error: str, expected: str) -> None:
    assert check(None, status=None, body=None, error=error) == (expected, None)


def test_no_status_no_error_is_error() -> None:
    assert check(None, status=None, body=None)[0] == "error"


T0 = datetime(2024, 3, 1, 2, 0)


def test_confirmed_dead_over_eight_days() -> None:
    history = [
        (T0, "alive"),
        (T0 + timedelta(days=1), "dead"),
        (T0 + timedelta(days=5), "soft404"),
        (T0 + timedelta(days=9), "dead"),
    ]
    assert confirmed_dead(history, DeathRule())


def test_one_bad_night_is_not_death() -> None:
    history = [
        (T0, "alive"),
        (T0 + timedelta(hours=1), "dead"),
        (T0 + timedelta(hours=2), "dead"),
        (T0 + timedelta(hours=3), "dead"),
    ]
    assert not confirmed_dead(history, DeathRule())


def test_alive_check_interrupts_death() -> None:
    history = [(T0, "dead"), (T0 + timedelta(days=4), "alive"), (T0 + timedelta(days=8), "dead")]
    assert not confirmed_dead(history, DeathRule())
    assert not confirmed_dead(history[-1:], DeathRule())
    # Unsorted input is ordered by time first.
    shuffled = [(T0 + timedelta(days=8), "dead"), (T0, "dead"), (T0 + timedelta(days=4), "dead")]
    assert confirmed_dead(shuffled, DeathRule())
    assert not confirmed_dead(shuffled, DeathRule(failures=3, min_span=timedelta(days=9)))
