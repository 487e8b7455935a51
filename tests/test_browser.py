"""The published digest in a real browser after ingesting script-injection feeds.

`/xss` and `/xss-atom` of ../shared/tools/hostile_server.py and every `sanitize/` case of
feedparser's corpus go through one `aggregator update`; each published HTML page is then
opened in headless Chromium (Debian's `chromium`, driven by Playwright; never a downloaded
browser build) from a local HTTP server of `var/public`, as it would be deployed. Before any
page script runs, an init script replaces alert/confirm/prompt and traps `window.__pwned`
(the only payloads of the hostile feeds are `window.__pwned=1` and `alert(1)`), and records
Content-Security-Policy violations. A page passes when nothing was called or set, no page
error or dialog happened, no violation concerns scripts, and its DOM holds nothing that could
run a script. A full-page screenshot of the digest is kept as a test artifact.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from lxml import html as lxml_html

from tests.conftest import run_cli, shared_path, write_config_file
from tests.corpus import corpus_files, corpus_headers
from tests.httpserver import Reply, Server, serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

CHROMIUM = Path("/usr/bin/chromium")
# This machine runs as root and has no internet; these flags are known to work here.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CJK_CATEGORY = "安全 新闻"  # exercises the CJK fonts in the screenshot
SITE_TITLE = "测试摘要 · Test digest"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".atom": "application/atom+xml",
    ".rss": "application/rss+xml",
    ".json": "application/feed+json",
    ".opml": "text/x-opml",
}
SCRIPT_DIRECTIVES = ("script-src", "script-src-elem", "script-src-attr")

# Runs in every frame before the page's own scripts (Playwright init scripts are not
# subject to the page's CSP). Everything it records lives in window.__aggregatorTest.
INIT_SCRIPT = """
(() => {
  const record = { calls: [], violations: [] };
  Object.defineProperty(window, "__aggregatorTest", { value: record });
  for (const name of ["alert", "confirm", "prompt", "print"]) {
    const fake = (...args) => {
      record.calls.push(name + "(" + args.map(String).join(", ") + ")");
      return name === "prompt" ? null : name === "confirm" ? false : undefined;
    };
    Object.defineProperty(window, name, { value: fake, writable: false, configurable: false });
  }
  let pwned;
  Object.defineProperty(window, "__pwned", {
    configurable: false,
    get() { return pwned; },
    set(value) { record.calls.push("window.__pwned = " + String(value)); pwned = value; },
  });
  window.addEventListener("securitypolicyviolation", (event) => {
    record.violations.push({
      directive: event.effectiveDirective,
      blocked: event.blockedURI,
      sample: event.sample,
      line: event.lineNumber,
    });
  }, true);
})();
"""

# Loads lazy images too (their error events are where onerror vectors would fire), then
# waits until every image has loaded or failed.
SETTLE_IMAGES = """
async () => {
  for (const img of document.images) img.loading = "eager";
  const pending = [...document.images].filter((img) => !img.complete).map(
    (img) => new Promise((done) => {
      img.addEventListener("load", done);
      img.addEventListener("error", done);
    }));
  await Promise.race([Promise.all(pending), new Promise((done) => setTimeout(done, 5000))]);
  return document.images.length;
}
"""

# What in the DOM could run a script: elements that execute or embed, event-handler
# attributes and script URLs, plus a <meta http-equiv> or <base> outside the template's head.
DOM_FINDINGS = """
() => {
  const found = [];
  const urlAttributes = new Set(["href", "src", "action", "formaction", "data", "poster",
    "background", "srcset", "xlink:href", "cite", "ping", "codebase", "dynsrc", "lowsrc"]);
  const scriptUrl = /^(javascript|vbscript|livescript):|^data:text\\/html/;
  const snippet = (el) => el.outerHTML.slice(0, 200);
  for (const el of document.querySelectorAll(
      "script, iframe, frame, frameset, object, embed, applet, portal, base")) {
    found.push("element <" + el.localName + ">: " + snippet(el));
  }
  for (const el of document.body.querySelectorAll("meta[http-equiv], link")) {
    found.push("element <" + el.localName + "> in body: " + snippet(el));
  }
  for (const el of document.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      const value = attr.value.replace(/[\\u0000-\\u0020]/g, "").toLowerCase();
      if (name.startsWith("on")) {
        found.push("event handler " + name + ": " + snippet(el));
      } else if (urlAttributes.has(name) && scriptUrl.test(value)) {
        found.push("script URL in " + name + ": " + snippet(el));
      }
    }
  }
  return found;
}
"""


@dataclass(frozen=True)
class Published:
    config: Path
    public: Path
    pages: list[Path]


@dataclass
class PageReport:
    """What one page did in the browser; `problems()` lists what must not happen."""

    url: str
    calls: list[str] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    dom_findings: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    frames: int = 0
    images: int = 0

    def script_violations(self) -> list[str]:
        from_events = [
            f"CSP blocked {v['directive']}: {v['blocked']} {v['sample']!r} (line {v['line']})"
            for v in self.violations
            if str(v["directive"]).startswith("script")
        ]
        from_console = [
            f"console: {text}"
            for text in self.console_errors
            if "content security policy" in text.lower() and "script" in text.lower()
        ]
        return from_events + from_console

    def problems(self) -> list[str]:
        return [
            *(f"script ran: {call}" for call in self.calls),
            *(f"page error: {error}" for error in self.page_errors),
            *(f"dialog: {dialog}" for dialog in self.dialogs),
            *self.script_violations(),
            *(f"DOM: {finding}" for finding in self.dom_findings),
        ]


# --------------------------------------------------------------------------- fixtures


@contextmanager
def hostile_server(script: Path) -> Iterator[str]:
    """../shared/tools/hostile_server.py on a free port; yields its base URL."""
    command = [sys.executable, str(script), "serve", "--port", "0", "--exit-with-parent"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8"
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], 20)
        line = process.stdout.readline() if ready else ""
        match = re.match(r"serving on (http://127\.0\.0\.1:\d+)", line)
        if match is None:
            process.kill()
            raise RuntimeError(
                f"hostile_server.py did not start: {line!r} {process.stderr.read()[-2000:]}"
            )
        yield match[1]
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """/xss, /xss-atom, /ok and every sanitize/ corpus case through one `update`."""
    script = shared_path("tools", "hostile_server.py")
    sanitize = shared_path("corpus", "feedparser", "wellformed", "sanitize")
    routes: dict[str, Reply] = {}
    for path in corpus_files(sanitize):
        body = path.read_bytes()
        routes["/" + path.name] = Reply(body=body, headers=corpus_headers(body))
    with hostile_server(script) as hostile, serve(routes) as corpus:
        feeds: list[dict[str, Any]] = [
            {"name": "hostile /xss", "url": f"{hostile}/xss", "categories": ["xss", CJK_CATEGORY]},
            {"name": "hostile /xss-atom", "url": f"{hostile}/xss-atom", "categories": ["xss"]},
            {"name": "对照组 /ok", "url": f"{hostile}/ok", "categories": [CJK_CATEGORY]},
            *(
                {"name": name, "url": corpus.url(name), "categories": ["sanitize"]}
                for name in routes
            ),
        ]
        # A small digest_per_category gives every category its own full page as well.
        config = write_config_file(
            tmp_path_factory.mktemp("browser"), feeds, title=SITE_TITLE, digest_per_category=10
        )
        result = run_cli("--config", str(config), "update")
    assert result.exit_code in (0, 1), result.output

    status = run_cli("--config", str(config), "status", "--json")
    by_name = {feed["name"]: feed for feed in json.loads(status.output)["feeds"]}
    for name in ("hostile /xss", "hostile /xss-atom", "对照组 /ok"):
        assert by_name[name]["state"] == "ok" and by_name[name]["entries"] > 0, by_name[name]
    public = config.parent / "var" / "public"
    pages = [public / "index.html", *sorted(public.glob("digest/**/*.html"))]
    assert all(page.is_file() for page in pages)
    assert len(list(public.glob("digest/*/*.html"))) >= 3  # one full page per category
    return Published(config, public, pages)


@pytest.fixture(scope="module")
def site(published: Published) -> Iterator[Server]:
    """var/public over HTTP, as a deployment would serve it."""
    routes: dict[str, Reply] = {}
    for path in sorted(published.public.rglob("*")):
        if path.is_file():
            content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
            reply = Reply(body=path.read_bytes(), headers={"Content-Type": content_type})
            routes["/" + path.relative_to(published.public).as_posix()] = reply
    routes["/"] = routes["/index.html"]
    with serve(routes) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium through Playwright; skips (saying why) when either is missing."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is absent (Debian package: chromium); browser tests not run"
        print(f"\nSKIP: {reason}")
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        reason = f"playwright cannot be imported ({exc}; pip install playwright)"
        print(f"\nSKIP: {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def browsing(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context whose pages all get the init script."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(INIT_SCRIPT)
    try:
        yield context
    finally:
        context.close()


def probe(context: BrowserContext, site: Server, path: str) -> PageReport:
    """Open one page, let its images load or fail, and collect what happened."""
    report = PageReport(url=site.url(path))
    page = context.new_page()

    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith(site.base_url + "/"):
            route.continue_()
        else:  # no internet here; failing at once also fires error handlers at once
            report.blocked_requests.append(url)
            route.abort()

    def on_dialog(dialog: Any) -> None:
        report.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if message.type == "error":
            report.console_errors.append(message.text)

    page.route("**/*", route)
    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: report.page_errors.append(str(error)))
    page.on("console", on_console)
    try:
        response = page.goto(report.url, wait_until="load")
        assert response is not None and response.status == 200, report.url
        report.images = page.evaluate(SETTLE_IMAGES)
        report.dom_findings = page.evaluate(DOM_FINDINGS)
        report.frames = len(page.frames)
        for frame in page.frames:
            state = frame.evaluate("() => window.__aggregatorTest || null")
            if state is None:
                report.dom_findings.append(f"frame without the init script: {frame.url}")
                continue
            report.calls += state["calls"]
            report.violations += state["violations"]
            if frame.evaluate("() => typeof window.__pwned") != "undefined":
                report.calls.append(f"window.__pwned is defined in {frame.url}")
    finally:
        page.close()
    return report


def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$AGGREGATOR_TEST_ARTIFACTS, or `artifacts/` in pytest's base temporary folder."""
    configured = os.environ.get("AGGREGATOR_TEST_ARTIFACTS")
    folder = Path(configured) if configured else tmp_path_factory.getbasetemp() / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def csp_directives(content: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in content.split(";"):
        words = part.split()
        if words:
            directives.setdefault(words[0].lower(), [w.lower() for w in words[1:]])
    return directives


# --------------------------------------------------------------------------- tests


def test_every_published_page_has_a_csp_meta_that_forbids_scripts(published: Published) -> None:
    for page in published.pages:
        document = lxml_html.fromstring(page.read_bytes())
        metas = [
            meta
            for meta in document.iter("meta")
            if (meta.get("http-equiv") or "").lower() == "content-security-policy"
        ]
        assert len(metas) == 1, (page, len(metas))
        head = document.find("head")
        assert head is not None and metas[0].getparent() is head, page
        # Only other <meta> may come before it, so it governs everything that loads.
        before = list(head)[: list(head).index(metas[0])]
        assert all(element.tag == "meta" for element in before), (page, before)
        directives = csp_directives(metas[0].get("content") or "")
        assert directives.get("default-src") == ["'none'"], (page, directives)
        for name in SCRIPT_DIRECTIVES:
            assert directives.get(name, ["'none'"]) == ["'none'"], (page, name, directives)
    print(f"\nCSP meta checked on {len(published.pages)} pages")


def test_the_probe_catches_scripts_that_run_or_are_blocked(
    published: Published, browser: Browser, site: Server
) -> None:
    """A control: the same probe on pages with a live script, without and with the CSP."""
    index = (published.public / "index.html").read_bytes()
    head = re.search(rb"<head>.*?</head>", index, re.DOTALL)
    assert head is not None
    payload = b'<script>window.__pwned=1; alert(1)</script><img src="x" onerror="alert(2)">'
    payload += b'<a href=" java&#9;script:alert(3)">not clicked</a>'
    site.routes["/_canary-open.html"] = Reply(
        body=b"<!doctype html><html><head><title>c</title></head><body>" + payload,
        headers={"Content-Type": CONTENT_TYPES[".html"]},
    )
    site.routes["/_canary-csp.html"] = Reply(
        body=b"<!doctype html><html>" + head[0] + b"<body>" + payload,
        headers={"Content-Type": CONTENT_TYPES[".html"]},
    )
    try:
        with browsing(browser) as context:
            open_page = probe(context, site, "/_canary-open.html")
            csp_page = probe(context, site, "/_canary-csp.html")
    finally:
        del site.routes["/_canary-open.html"], site.routes["/_canary-csp.html"]
    ran = ["window.__pwned = 1", "alert(1)", "alert(2)"]
    ran.append(f"window.__pwned is defined in {open_page.url}")
    assert open_page.calls == ran, open_page
    assert csp_page.calls == [] and len(csp_page.script_violations()) >= 2, csp_page
    assert any("element <script>" in f for f in csp_page.dom_findings), csp_page
    assert any("event handler onerror" in f for f in csp_page.dom_findings), csp_page
    assert any("script URL in href" in f for f in csp_page.dom_findings), csp_page


def test_no_script_runs_on_any_published_page(
    published: Published, browser: Browser, site: Server
) -> None:
    reports: list[PageReport] = []
    with browsing(browser) as context:
        for page in published.pages:
            path = "/" + page.relative_to(published.public).as_posix()
            reports.append(probe(context, site, path))
    for report in reports:
        other_violations = len(report.violations) - len(report.script_violations())
        print(
            f"\n{report.url}: {report.images} images, {len(report.blocked_requests)} "
            f"off-site requests aborted, {len(report.console_errors)} console errors, "
            f"{other_violations} non-script CSP violations"
        )
    print(f"\nbrowser checked {len(reports)} published pages")
    problems = [f"{report.url}: {problem}" for report in reports for problem in report.problems()]
    assert not problems, "\n".join(problems)
    assert all(report.frames == 1 for report in reports)


def test_a_screenshot_of_the_digest_is_saved(
    browser: Browser, site: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    screenshot = artifact_dir(tmp_path_factory) / "digest.png"
    screenshot.unlink(missing_ok=True)
    with browsing(browser) as context:
        page = context.new_page()
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(site.base_url + "/")
                else route.abort()
            ),
        )
        page.goto(site.url("/index.html"), wait_until="load")
        page.evaluate(SETTLE_IMAGES)
        page.evaluate("() => document.fonts.ready.then(() => true)")
        page.screenshot(path=str(screenshot), full_page=True)
        assert CJK_CATEGORY in page.inner_text("body")
    print(f"\ndigest screenshot: {screenshot}")
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000, len(data)


def test_a_phone_never_scrolls_sideways_for_a_long_source_name(
    browser: Browser, tmp_path: Path
) -> None:
    """A feed without a title or a configured name is shown by its URL, which has no
    spaces to break at; beside a card's time it pushed a 375 px page sideways."""
    path = "/feeds/photography/daily/photo.xml"  # no hyphen, where a line may break
    yesterday = format_datetime(datetime.now(UTC) - timedelta(days=1))  # shown with its date
    feed = (
        '<rss version="2.0"><channel><link>https://photo.test/</link><description>d'
        "</description><item><title>Photo of the day</title><link>https://photo.test/1</link>"
        f"<guid>p1</guid><pubDate>{yesterday}</pubDate></item></channel></rss>"
    ).encode()
    with serve({path: Reply(body=feed, headers={"Content-Type": "application/rss+xml"})}) as s:
        config = write_config_file(tmp_path, [{"url": s.url(path), "categories": ["photo"]}])
        assert run_cli("--config", str(config), "update").exit_code == 0
    index = (tmp_path / "var" / "public" / "index.html").read_bytes()
    assert s.url(path).encode() in index  # the source is named by its URL
    with serve({"/index.html": Reply(body=index, headers={"Content-Type": "text/html"})}) as site:
        context = browser.new_context(viewport={"width": 375, "height": 740})
        try:
            page = context.new_page()
            page.goto(site.url("/index.html"), wait_until="load")
            widths = page.evaluate(
                "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
        finally:
            context.close()
    assert widths[0] <= widths[1], f"page {widths[0]} px wide in a {widths[1]} px viewport"


def test_the_page_list_shows_which_page_is_open(browser: Browser, tmp_path: Path) -> None:
    """A day with more stories than a page lists every page; the one being read stands
    out (it was marked for screen readers alone, and looked like the others)."""
    now = datetime.now(UTC)
    items = "".join(
        f"<item><title>Story {n}</title><link>https://busy.test/{n}</link><guid>b{n}</guid>"
        f"<pubDate>{format_datetime(now - timedelta(seconds=n))}</pubDate></item>"
        for n in range(205)  # a page holds 200
    )
    feed = f'<rss version="2.0"><channel><title>Busy</title>{items}</channel></rss>'.encode()
    with serve({"/busy": Reply(body=feed, headers={"Content-Type": "application/rss+xml"})}) as s:
        config = write_config_file(tmp_path, [{"url": s.url("/busy"), "categories": ["busy"]}])
        assert run_cli("--config", str(config), "update").exit_code == 0
    (newest,) = (tmp_path / "var" / "public" / "digest").glob("*/busy.html")
    with serve(
        {"/p.html": Reply(body=newest.read_bytes(), headers={"Content-Type": "text/html"})}
    ) as site:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            page = context.new_page()
            page.goto(site.url("/p.html"), wait_until="load")
            looks = page.evaluate(
                """() => [...document.querySelectorAll('.toc a')].map(a => {
                    const style = getComputedStyle(a);
                    return [a.getAttribute('aria-current'), style.color, style.fontWeight];
                })"""
            )
        finally:
            context.close()
    current = [look[1:] for look in looks if look[0] == "page"]
    others = [look[1:] for look in looks if look[0] != "page"]
    assert len(current) == 1 and others, looks
    assert all(other != current[0] for other in others), looks


LONG_NAME = "Weeklyroundupofeverythingnewinthefrontendtoolingecosystemandbeyond"


def rendered_page(browser: Browser, html: bytes, width: int, script: str) -> Any:
    """Open `html` at `width` px and return what `script` evaluates to."""
    with serve({"/p.html": Reply(body=html, headers={"Content-Type": "text/html"})}) as site:
        context = browser.new_context(viewport={"width": width, "height": 740})
        try:
            page = context.new_page()
            page.goto(site.url("/p.html"), wait_until="load")
            return page.evaluate(script)
        finally:
            context.close()


def two_category_site(tmp_path: Path, names: tuple[str, str], **site: Any) -> Path:
    """Update a site of two feeds, one per category, of three stories with thumbnails each."""
    now = datetime.now(UTC)

    def feed(slug: str) -> bytes:
        items = "".join(
            f"<item><title>{slug} story {n}</title><link>https://{slug}.test/{n}</link>"
            f"<guid>{slug}{n}</guid><pubDate>{format_datetime(now - timedelta(minutes=n))}"
            f'</pubDate><description>&lt;p&gt;Text {n}&lt;img src="https://{slug}.test/{n}.png"'
            "&gt;&lt;/p&gt;</description></item>"
            for n in range(3)
        )
        return f'<rss version="2.0"><channel><title>{slug}</title>{items}</channel></rss>'.encode()

    rss = {"Content-Type": "application/rss+xml"}
    with serve(
        {"/a": Reply(body=feed("a"), headers=rss), "/b": Reply(body=feed("b"), headers=rss)}
    ) as s:
        config = write_config_file(
            tmp_path,
            [
                {"url": s.url("/a"), "name": "Feed A", "categories": [names[0]]},
                {"url": s.url("/b"), "name": "Feed B", "categories": [names[1]]},
            ],
            digest_per_category=2,
            **site,
        )
        assert run_cli("--config", str(config), "update").exit_code == 0
    return tmp_path / "var" / "public"


SIDEWAYS = "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"


def test_a_phone_never_scrolls_sideways_for_long_site_and_category_names(
    browser: Browser, tmp_path: Path
) -> None:
    """Names without spaces, in the masthead, the category pills, a section's heading and
    its "more" link, and a category page's heading, wrap instead of widening the page."""
    public = two_category_site(tmp_path, (LONG_NAME, "short"), title=LONG_NAME)
    category_pages = sorted(public.glob("digest/*/*.html"))
    assert len(category_pages) == 2  # each category's newest page
    for path in (public / "index.html", *category_pages):
        html = path.read_bytes()
        assert html.count(LONG_NAME.encode()) >= 2, path
        scroll, client = rendered_page(browser, html, 375, SIDEWAYS)
        assert scroll <= client, f"{path.name}: {scroll} px wide in a {client} px viewport"


def test_a_right_to_left_site_is_laid_out_from_the_right(browser: Browser, tmp_path: Path) -> None:
    public = two_category_site(tmp_path, ("أخبار", "تقنية"), language="ar", title="ملخص")
    layout = """() => {
        const card = document.querySelector('article.story').getBoundingClientRect();
        const thumb = document.querySelector('.thumb').getBoundingClientRect();
        const heading = document.querySelector('.section > h2 > bdi').getBoundingClientRect();
        const arrow = getComputedStyle(document.querySelector('.more .arrow')).transform;
        return [document.dir, thumb.left - card.left, card.right - heading.right, arrow];
    }"""
    direction, thumb_from_left, heading_from_right, arrow = rendered_page(
        browser, (public / "index.html").read_bytes(), 1024, layout
    )
    assert direction == "rtl"
    assert thumb_from_left < 30, thumb_from_left  # the picture on the card's left
    assert heading_from_right < 30, heading_from_right  # the heading starts on the right
    assert arrow.startswith("matrix(-1"), arrow  # "more →" points left, where it leads
