"""Open every page of the built book in headless Chromium, with no network.

The book is served over http on 127.0.0.1. Chromium is pointed at a proxy that
refuses and records every request that is not for that server, so a page that
tries to fetch anything from outside the build folder (a CDN script, a web
font) is caught even though this machine could not reach it anyway. For each
page the DOM after scripts have run (``--dump-dom``) must contain rendered
math (MathJax's ``mjx-container`` elements), no raw TeX delimiters outside
code, and no MathJax error boxes.

Run after a build: ``make test`` builds first. Set ``COURSE_REQUIRE_BROWSER=1``
(``.ci/run`` does) to fail rather than skip when Chromium is missing.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socketserver
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
PAGES = sorted(
    p.relative_to(SITE).as_posix()
    for p in SITE.rglob("*.html")
    if not p.relative_to(SITE).parts[0].startswith("_")
) if SITE.is_dir() else []
# Chromium's own background services (its updater, Google-account check and, from
# Chromium 150, www.google.com and its push-messaging host), which headless Chromium
# contacts whatever page it opens, about:blank included. Nothing else is excused, and no
# built page may name them (test_no_page_names_an_excused_host).
BROWSER_SERVICES = ("update.googleapis.com", "accounts.google.com", "www.google.com",
                    "android.clients.google.com", "clients2.google.com")
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


# --- the two local servers ---------------------------------------------------------

class _QuietHandler(SimpleHTTPRequestHandler):
    log: list[tuple[str, int]]

    def log_request(self, code="-", size="-"):  # record instead of printing
        self.log.append((self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, *args):
        pass


class _RefusingProxy(socketserver.BaseRequestHandler):
    """Records the first request line of each connection and answers 403."""

    seen: list[str]

    def handle(self):
        data = self.request.recv(4096).decode("latin-1", "replace")
        self.seen.append(data.split("\r\n", 1)[0])
        self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    """Serve the site, dump every page's DOM, and check the request logs afterwards."""
    if not PAGES:
        pytest.fail(f"no built book in {SITE}: run `make book` (or `make test`) first")
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (COURSE_REQUIRE_BROWSER=1) but not installed: "
                        "apt-get install -y chromium")
        pytest.skip("Chromium not installed (apt-get install -y chromium)")

    served: list[tuple[str, int]] = []
    handler = type("Handler", (_QuietHandler,), {"log": served})
    site = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(SITE)))
    refused: list[str] = []
    proxy_handler = type("Proxy", (_RefusingProxy,), {"seen": refused})
    proxy = socketserver.ThreadingTCPServer(("127.0.0.1", 0), proxy_handler)
    for server in (site, proxy):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{site.server_address[1]}/"

    def dump(page: str) -> tuple[str, str]:
        with tempfile.TemporaryDirectory() as profile:
            cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-sync", "--disable-background-networking",
                   "--disable-component-update", "--disable-extensions",
                   "--disable-default-apps", "--disable-domain-reliability",
                   "--disable-client-side-phishing-detection", "--no-default-browser-check",
                   "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,"
                   "MediaRouter,Translate,AutofillServerCommunication",
                   f"--proxy-server=http://127.0.0.1:{proxy.server_address[1]}",
                   f"--user-data-dir={profile}", "--virtual-time-budget=15000",
                   "--dump-dom", base + page]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        return page, out.stdout

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            doms = dict(pool.map(dump, PAGES))
    finally:
        site.shutdown()
        proxy.shutdown()
    doms["__served__"] = served  # type: ignore[assignment]
    doms["__refused__"] = refused  # type: ignore[assignment]
    return doms


# --- DOM inspection ----------------------------------------------------------------

class _TextOutsideCode(HTMLParser):
    """Collects visible text outside code, scripts and rendered math; counts math nodes."""

    SKIP = {"pre", "code", "script", "style", "textarea", "mjx-container", "kbd", "samp"}

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.text: list[str] = []
        self.mjx = 0
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "mjx-container":
            self.mjx += 1
        if tag == "mjx-merror":
            self.errors.append(dict(attrs).get("data-mjx-error", "MathJax error"))
        if tag in self.SKIP:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.text.append(data)


def count_math_sources(page: str) -> int:
    html = (SITE / page).read_text(encoding="utf-8")
    return len(re.findall(r'class="math[ "]', html))


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_math_and_no_raw_tex(rendered, page):
    dom = rendered[page]
    assert "<h1" in dom, f"{page}: Chromium returned no rendered page"
    parser = _TextOutsideCode()
    parser.feed(dom)
    assert not parser.errors, f"{page}: MathJax could not typeset: {parser.errors[:3]}"
    raw = RAW_TEX.findall(" ".join(parser.text))
    assert not raw, f"{page}: raw TeX left on the page ({len(raw)} delimiters, e.g. {raw[:3]})"
    expected = count_math_sources(page)
    assert parser.mjx >= expected, (
        f"{page}: {expected} math elements in the HTML but only {parser.mjx} rendered by MathJax")


def _host(request_line: str) -> str:
    target = request_line.split(" ")[1] if " " in request_line else request_line
    return re.sub(r"^[a-z]+://", "", target).split("/")[0].split(":")[0]


def test_no_request_leaves_the_build_folder(rendered):
    outside = [r for r in rendered["__refused__"] if _host(r) not in BROWSER_SERVICES]
    assert outside == [], "pages tried to reach the network: " + "; ".join(outside[:5])


def test_no_page_names_an_excused_host():
    """The hosts excused above are the browser's, never the book's."""
    named = sorted({f"{page}: {host}" for page in PAGES
                    for host in BROWSER_SERVICES
                    if host in (SITE / page).read_text(encoding="utf-8")})
    assert not named, f"built pages name a host the browser check excuses: {named[:5]}"


def test_every_requested_file_exists(rendered):
    # /favicon.ico is asked for by the browser itself, not by any page
    missing = sorted({path for path, code in rendered["__served__"]
                      if code >= 400 and path != "/favicon.ico"})
    assert not missing, f"requests the build folder could not answer: {missing[:10]}"


def test_the_chapters_have_math():
    """Guard against a silent pass: the chapter pages really contain math to check."""
    assert count_math_sources("notebooks/01_cross_entropy.html") > 50
