"""The replica world's social platform ("Pulse"): pages a plain fetch cannot see.

Like the platforms most rally reports live on, its pages are app shells that scripts fill
from JSON endpoints, an endless feed, a clip whose video source a script sets and whose
description hides behind "See more", and a post behind a log-in wall. Its curated list of
posts is a CSV (``LIST_PATH``) the demo imports and crawls with ``--browser auto``.

What the scripts draw is known here (:data:`POST`, :data:`FEED_PAGES`, :data:`MARKER`), so
tests can check the archive against it, down to the pixels of the screenshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable

SITE = "social"
LIST_PATH = "/lists/solidarity-posts.csv"
POST_PATH = "/post/warsaw-vigil"
FEED_PATH = "/feed/vilnius-chain"
CLIP_PATH = "/clip/berlin-march"
WALL_PATH = "/private/riga-circle"
CLIP_MP4_PATH = "/media/berlin-march.mp4"

#: The block of colour the post's script draws (CSS pixels from the page's top left).
MARKER = {"left": 400, "top": 200, "width": 200, "height": 100, "rgb": (255, 0, 255)}

POST = {
    "title": "Warsaw: a vigil of white flowers for the women of Minsk",
    "author": "Agnieszka Nowak",
    "published": "2020-10-10",
    "text": (
        "Several hundred people stood in silence on Castle Square in Warsaw on Saturday, "
        "holding white flowers and red-and-white ribbons for the women marching in Minsk."
    ),
    "image": "/img/warsaw-vigil.jpg",
}

FEED_PAGES = 4
FEED_ITEMS = 3


def feed_item(page: int, item: int) -> dict[str, str]:
    """Item ``item`` of feed page ``page`` (both from 1)."""
    return {
        "text": f"Vilnius chain of solidarity, update {page}.{item}: "
        + ("the chain reached the TV tower" if page == FEED_PAGES else "more people joined"),
        "image": f"/img/feed-{page}-{item}.jpg",
    }


CLIP_DESCRIPTION = (
    "Full description: thousands marched through Berlin-Mitte to the Brandenburg Gate in "
    "solidarity with the Belarusian women's Saturday marches."
)

CSV_ROWS = (
    ("Poland", "Warsaw", "report", "Pulse post: Warsaw vigil", POST_PATH),
    ("Lithuania", "Vilnius", "report", "Pulse feed: Vilnius chain", FEED_PATH),
    ("Germany", "Berlin", "video", "Pulse clip: Berlin march", CLIP_PATH),
    ("Latvia", "Riga", "report", "Pulse post: Riga circle (members only)", WALL_PATH),
)


def _shell(title: str, script: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{margin:0;font:16px sans-serif;background:#fff}}#root{{padding:0 16px}}</style>
</head><body><div id="root">Loading…</div>
<script src="/static/pulse.js"></script><script>{script}</script></body></html>"""


PULSE_JS = """\
window.pulse = {
  get: (url) => fetch(url, {headers: {'Accept': 'application/json'}}).then(r => r.json()),
  el: (tag, text, attrs) => {
    const e = document.createElement(tag);
    if (text) e.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  },
};
"""

POST_SCRIPT = """\
pulse.get('/api/post?slug=warsaw-vigil').then(p => {
  const root = document.getElementById('root');
  root.textContent = '';
  root.append(pulse.el('h1', p.title), pulse.el('p', 'By ' + p.author, {class: 'byline'}),
              pulse.el('time', p.published, {datetime: p.published}), pulse.el('p', p.text),
              pulse.el('img', null, {src: p.image, width: '320', height: '200'}));
  const m = p.marker, box = pulse.el('div', null, {id: 'marker'});
  box.style.cssText = `position:absolute;left:${m.left}px;top:${m.top}px;width:${m.width}px;` +
    `height:${m.height}px;background:rgb(${m.rgb.join(',')})`;
  document.body.append(box);
  document.title = p.title;
  const ld = pulse.el('script', JSON.stringify({'@context': 'https://schema.org',
    '@type': 'SocialMediaPosting', headline: p.title, datePublished: p.published,
    author: {'@type': 'Person', name: p.author}}), {type: 'application/ld+json'});
  document.head.append(ld);
});
"""

FEED_SCRIPT = """\
let next = 1, busy = false;
const root = document.getElementById('root');
root.textContent = '';
const list = pulse.el('ul'), sentinel = pulse.el('p', 'loading more…', {id: 'sentinel'});
root.append(pulse.el('h1', 'Vilnius chain of solidarity — live feed'), list, sentinel);
document.title = 'Vilnius chain of solidarity — live feed';
function more() {
  if (busy || next === null) return;
  busy = true;
  pulse.get('/api/feed?page=' + next).then(page => {
    for (const item of page.items) {
      const li = pulse.el('li');
      li.append(pulse.el('p', item.text), pulse.el('img', null,
        {src: item.image, width: '480', height: '400'}));
      list.append(li);
    }
    next = page.next;
    if (next === null) sentinel.textContent = 'end of feed';
    busy = false;
  });
}
new IntersectionObserver(es => es.some(e => e.isIntersecting) && more()).observe(sentinel);
"""

CLIP_SCRIPT = """\
const root = document.getElementById('root');
root.textContent = '';
const video = pulse.el('video', null, {controls: '', width: '640', height: '360'});
const more = pulse.el('button', 'See more', {type: 'button'});
const about = pulse.el('p', '', {id: 'about'});
root.append(pulse.el('h1', 'Berlin march, 10 October'), video, about, more);
document.title = 'Berlin march, 10 October — Pulse';
video.src = '/media/berlin-march.mp4';
more.addEventListener('click', () => pulse.get('/api/clip?slug=berlin-march').then(c => {
  about.textContent = c.description;
  more.remove();
}));
"""

WALL_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Pulse</title></head><body>
<main><h1>Log in to see this post</h1>
<p>This post from the Riga circle is only visible to members.</p>
<form action="/login" method="post"><label>Email <input type="email" name="email"></label>
<label>Password <input type="password" name="password"></label>
<button type="submit">Log in</button></form></main></body></html>"""


def list_csv(base_url: str) -> str:
    """The curated list of Pulse posts, as a seed CSV with absolute URLs."""
    lines = ["country,city,kind,label,url"]
    lines += [
        f"{c},{city},{kind},{label},{base_url}{path}" for c, city, kind, label, path in CSV_ROWS
    ]
    return "\n".join(lines) + "\n"


def feed_page(number: int) -> dict[str, object]:
    """The JSON of feed page ``number``."""
    return {
        "page": number,
        "items": [feed_item(number, i) for i in range(1, FEED_ITEMS + 1)],
        "next": number + 1 if number < FEED_PAGES else None,
    }


def routes() -> dict[str, Callable[[str], tuple[int, str, bytes | str, str]]]:
    """Path -> (query -> (status, content type, body, framing)) of the Pulse site."""
    html = "text/html; charset=utf-8"
    as_json = "application/json; charset=utf-8"

    def feed(query: str) -> tuple[int, str, bytes | str, str]:
        page = int(dict(p.partition("=")[::2] for p in query.split("&")).get("page") or 1)
        if not 1 <= page <= FEED_PAGES:
            return 404, as_json, "{}", "length"
        return 200, as_json, json.dumps(feed_page(page)), "gzip-chunked"

    return {
        POST_PATH: lambda q: (200, html, _shell("Loading…", POST_SCRIPT), "length"),
        FEED_PATH: lambda q: (200, html, _shell("Pulse", FEED_SCRIPT), "length"),
        CLIP_PATH: lambda q: (200, html, _shell("Pulse", CLIP_SCRIPT), "length"),
        WALL_PATH: lambda q: (200, html, WALL_PAGE, "length"),
        "/static/pulse.js": lambda q: (200, "application/javascript", PULSE_JS, "gzip"),
        # The post's data: gzip inside chunked framing, as many platforms' APIs send it.
        "/api/post": lambda q: (
            200,
            as_json,
            json.dumps({**POST, "marker": MARKER}),
            "gzip-chunked",
        ),
        "/api/feed": feed,
        "/api/clip": lambda q: (
            200,
            as_json,
            json.dumps({"description": CLIP_DESCRIPTION}),
            "length",
        ),
    }
