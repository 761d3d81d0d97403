"""The built book as a reader meets it: every page opened in headless Chromium, offline.

Playwright drives the system Chromium (Debian's `chromium`; another binary via `SDELAB_CHROMIUM`) with
one browser for the whole run and the pages in sequence, one test per page and check so that a
failure names the page. The HTML comes from `SDELAB_HTML` (default `_build/html`). Every request that
is not `file:`/`data:`/`blob:` is aborted and is itself a failure. For each page:

* `test_page_offline` (1400 x 900): no request leaving the machine; no console error or uncaught
  exception; MathJax loaded and finished (pages with maths) with no `mjx-merror`; no raw TeX in the
  page's text outside code and printed text (headings, link texts, both sidebars and rich outputs included):
  no `\\(`, `\\[`, `$$`, `\\command`, nor a `$...$` holding `\\`, `^` or `_`.
* `test_page_fits_its_column` (1400 px, after the widgets test, all solutions open): no printed output (`.cell_output`) and no display equation
  wider than its box or running past the article's right edge. Display equations must fit at desktop
  width even though the book's CSS lets them scroll in their own box on a phone; tables may scroll
  (their box has `overflow-x: auto`), code input may scroll; nothing else may be hidden.
* `test_page_widgets_work` (1400 px): each player changes its frame when its slider moves and when
  its step button is clicked; each solution opens when its header is clicked and also when the
  "Exercise N.M" link inside the header is clicked (without leaving the page); the menu button
  collapses the chapter list.
* `test_page_navigation_on_a_phone` (390 x 844): the chapter list and the page contents open from
  their toggles, and every player fits the column.
* `test_page_dark_mode` (1400 px, the theme switched to dark): every figure and player frame sits on a
  white backdrop (the PNGs are white-backed); paragraphs, printed outputs and captions keep a contrast
  ratio of at least 4.5 with the background behind them.
* `test_page_weight`: no page's HTML file over 1.5 MB.

Screenshots of failing pages go to `_build/browser/`. Without `SDELAB_BROWSER=1` or
`SDELAB_REQUIRE_BUILD=1` the module skips (plain `pytest tests` stays fast); with
`SDELAB_REQUIRE_BUILD=1` (the Makefile after a build, so CI) a missing build, Playwright or
Chromium is a failure, never a skip. `make browser-test` runs it on an existing build.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("SDELAB_HTML", ROOT / "_build" / "html")).resolve()
SHOTS = ROOT / "_build" / "browser"
REQUIRED = os.environ.get("SDELAB_REQUIRE_BUILD", "0") not in ("", "0")
WANTED = REQUIRED or os.environ.get("SDELAB_BROWSER", "0") not in ("", "0")
MAX_BYTES = 1_500_000
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads"}

if not WANTED:
    pytest.skip("browser test: run `make browser-test` (or set SDELAB_BROWSER=1)", allow_module_level=True)


def _unavailable(why: str):
    if REQUIRED:
        pytest.fail(f"browser test cannot run: {why}", pytrace=False)
    pytest.skip(f"browser test skipped: {why}")


def _pages() -> list[str]:
    if not HTML.is_dir():
        return []
    return sorted(str(p.relative_to(HTML)) for p in HTML.rglob("*.html") if not SKIP_DIRS & set(p.parts))


PAGES = _pages() or ["<no build>"]


def _chromium() -> str | None:
    """`SDELAB_CHROMIUM` when set (and only it), else the system Chromium."""
    chosen = os.environ.get("SDELAB_CHROMIUM")
    cands = [chosen] if chosen else ["/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")]
    for cand in cands:
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


@pytest.fixture(scope="module")
def browser():
    if PAGES == ["<no build>"]:
        _unavailable(f"no built book in {HTML} (make book-check, or set SDELAB_HTML)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install playwright; it is in requirements.txt)")
    exe = _chromium()
    if exe is None:
        _unavailable("no Chromium found (Debian: apt-get install chromium; or set SDELAB_CHROMIUM)")
    shutil.rmtree(SHOTS, ignore_errors=True)  # screenshots of this run only
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=["--allow-file-access-from-files"])
        yield b
        b.close()


_REFRESH = re.compile(r"""http-equiv=["']?refresh""", re.I)


class Page:
    """One page opened offline in a fresh context, recording what the browser complained about."""

    def __init__(self, browser, rel: str, width: int, height: int, *, dark: bool = False):
        self.rel, self.external, self.errors = rel, [], []
        self.ctx = browser.new_context(viewport={"width": width, "height": height})
        if dark:  # the theme's own switch stores the reader's choice here
            self.ctx.add_init_script("localStorage.setItem('mode', 'dark'); localStorage.setItem('theme', 'dark');")
        self.page = self.ctx.new_page()
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        uri = (HTML / rel).as_uri()
        self.page.goto(uri, wait_until="load")
        if _REFRESH.search((HTML / rel).read_text(errors="replace")[:4000]):  # a redirect page: check its target
            if self.page.url == uri:
                self.page.wait_for_url(lambda url: url != uri, timeout=15000)
            self.page.wait_for_load_state("load")
        try:
            self.mathjax = self.page.evaluate(_WAIT_MATHJAX)
        except Exception:  # a redirecting page (index.html): check the page it leads to
            self.page.wait_for_load_state("load")
            self.mathjax = self.page.evaluate(_WAIT_MATHJAX)

    def _route(self, route):
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            self.external.append(url)
            route.abort()

    def js(self, script: str, arg=None):
        return self.page.evaluate(script, arg)

    def check(self, problems: list[str], tag: str):
        """Fail with every problem found; screenshot the page first."""
        if problems:
            SHOTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", self.rel.removesuffix(".html")) + f"-{tag}.png"
            try:  # show the first element found at fault, outlined in red
                self.js("""() => { const el = document.querySelector("[data-sdelab-bad]");
                                   if (el) { el.style.outline = "3px solid red"; el.scrollIntoView({block: "center"}); } }""")
                self.page.wait_for_timeout(500)
                self.page.screenshot(path=str(SHOTS / name), full_page=False)
            except Exception:  # a screenshot must not hide the real failure
                pass
            pytest.fail(f"{self.rel} ({tag}, screenshot _build/browser/{name}):\n  " + "\n  ".join(problems[:40]),
                        pytrace=False)

    def close(self):
        self.ctx.close()


_WAIT_MATHJAX = """async () => {
  if (!window.MathJax) return "no maths";
  const t0 = Date.now();
  while (!(MathJax.startup && MathJax.startup.promise)) {
    if (Date.now() - t0 > 15000) return "MathJax did not load";
    await new Promise(r => setTimeout(r, 50));
  }
  await MathJax.startup.promise;
  return "ok";
}"""

# Text of the page outside code, printed text (pre) and rendered maths, one string per text node.
_TEXTS = """() => {
  const skip = "pre, code, script, style, mjx-container, .highlight, kbd, samp, textarea, title";
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip)) continue;
    const t = n.textContent.trim();
    if (t) out.push(t);
  }
  return out;
}"""
_RAW_TEX = re.compile(r"\\[()\[\]]|\$\$|\\[A-Za-z]+|\$[^$\s][^$]{0,80}?[\\^_][^$]{0,80}?\$")


def test_page_weight(rel):
    path = HTML / rel
    if not path.exists():
        _unavailable(f"no built book in {HTML}")
    size = path.stat().st_size
    assert size <= MAX_BYTES, f"{rel}: {size / 1e6:.2f} MB of HTML (limit {MAX_BYTES / 1e6} MB)"


@pytest.fixture(scope="module")
def desktop(browser, rel):
    """The page at 1400 x 900, opened once for the three desktop tests (which pytest groups by page)."""
    p = Page(browser, rel, 1400, 900)
    yield p
    p.close()


def test_page_offline(desktop):
    p = desktop
    problems = [f"request leaving the machine: {u}" for u in p.external]
    problems += [f"console error: {e}" for e in p.errors]
    if p.mathjax not in ("ok", "no maths"):
        problems.append(p.mathjax)
    if p.mathjax == "no maths" and p.js("() => document.querySelector('.math') !== null"):
        problems.append("the page has maths but no MathJax")
    merrors = p.js("() => Array.from(document.querySelectorAll('mjx-merror')).map(e => e.textContent)")
    problems += [f"MathJax error: {m}" for m in merrors]
    for text in p.js(_TEXTS):
        m = _RAW_TEX.search(text)
        if m:
            problems.append(f"raw TeX {m.group(0)!r} in {text[:120]!r}")
    p.check(problems, "offline")


# Elements wider than their box, or running past the article's right edge. Boxes that scroll
# horizontally (overflow-x auto/scroll) are allowed only where noted (tables).
_OVERFLOW = """() => {
  const art = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const right = art.getBoundingClientRect().right;
  const bad = [];
  const mark = el => { el.setAttribute("data-sdelab-bad", "1"); return ""; };
  const name = el => mark(el) + (el.closest("section[id]") ? "#" + el.closest("section[id]").id + " " : "") +
                     el.tagName.toLowerCase() + " " + (el.textContent || el.getAttribute("alt") || "").trim().slice(0, 70);
  const scrolls = el => /(auto|scroll)/.test(getComputedStyle(el).overflowX);
  const outputs = document.querySelectorAll(".cell_output, .cell_output pre, .cell_output .output, .cell_output img");
  for (const el of outputs) {
    if (el.offsetParent === null) continue;  // inside a closed solution: checked when open, see below
    if (el.scrollWidth > el.clientWidth + 1 || el.getBoundingClientRect().right > right + 1)
      bad.push("output wider than its column: " + name(el));
  }
  for (const el of document.querySelectorAll('mjx-container[display="true"]')) {
    const box = el.closest("div.math") || el;
    if (el.scrollWidth > el.clientWidth + 1 || box.scrollWidth > box.clientWidth + 1 ||
        el.getBoundingClientRect().right > right + 1)
      bad.push("display equation wider than the column (" + el.scrollWidth + " > " + el.clientWidth + " px): " +
               name(el.closest("div.math, p, li, section") || el));
  }
  for (const el of art.querySelectorAll("table")) {
    const box = el.parentElement;
    if (el.getBoundingClientRect().width > box.clientWidth + 1 && !scrolls(box))
      bad.push("table wider than its box and not scrollable: " + name(el));
  }
  return bad;
}"""


def test_page_widgets_work(desktop):
    p = desktop
    n_players, problems = p.js(_PLAYERS)
    problems += p.js(_SOLUTIONS, False)
    problems += p.js(_SOLUTIONS, True)
    toggle = p.page.locator("button.primary-toggle")
    if toggle.count() and _visible(p, ".bd-sidebar-primary"):
        toggle.first.click()
        p.page.wait_for_timeout(400)
        if _visible(p, ".bd-sidebar-primary"):
            problems.append("the menu button does not collapse the chapter list at 1400 px")
        toggle.first.click()  # and back
        p.page.wait_for_timeout(400)
    problems += [f"console error: {e}" for e in p.errors]
    p.check(problems, "widgets")


def test_page_fits_its_column(desktop):
    p = desktop
    # open every collapsed solution so that its outputs are measured too
    p.js("() => document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'))")
    p.page.wait_for_timeout(100)
    p.check(p.js(_OVERFLOW), "overflow")


_PLAYERS = """async () => {
  const bad = [];
  const players = document.querySelectorAll(".animation");
  players.forEach((pl, k) => {
    const img = pl.querySelector("img"), slider = pl.querySelector("input[type=range]");
    if (!img || !slider) { bad.push(`player ${k + 1}: no image or slider`); return; }
    const n = +slider.max + 1;
    if (n < 2) return;
    const first = img.src;
    slider.value = n - 1; slider.dispatchEvent(new Event("input", {bubbles: true}));
    if (img.src === first) bad.push(`player ${k + 1}: the frame does not change when the slider moves`);
    slider.value = 0; slider.dispatchEvent(new Event("input", {bubbles: true}));
    const next = pl.querySelector("[data-act=next]");
    if (!next) { bad.push(`player ${k + 1}: no step button`); return; }
    next.click();
    if (img.src === first || +slider.value !== 1) bad.push(`player ${k + 1}: the step button does not step`);
  });
  return [players.length, bad];
}"""

_SOLUTIONS = """async (useLink) => {
  const bad = [];
  const sols = document.querySelectorAll(".solution.dropdown");
  const href = location.href;
  for (const [k, s] of Array.from(sols).entries()) {
    const title = s.querySelector(".admonition-title");
    const link = title && title.querySelector("a");
    const target = useLink ? link : title;
    if (!target) continue;
    const wasHidden = s.classList.contains("toggle-hidden");
    target.click();
    await new Promise(r => setTimeout(r, 20));
    const body = s.querySelector(":scope > :not(.admonition-title)");
    const open = !s.classList.contains("toggle-hidden") && body && body.getBoundingClientRect().height > 0;
    if (!wasHidden || !open || location.href !== href)
      bad.push(`solution ${k + 1} (${title.textContent.trim().slice(0, 60)}) does not open when its ` +
               (useLink ? "exercise link" : "header") + " is clicked" + (location.href !== href ? " (it jumps away)" : ""));
    if (open) { title.click(); await new Promise(r => setTimeout(r, 20)); }
  }
  return bad;
}"""


def _visible(p: Page, selector: str) -> bool:
    return p.js("""(sel) => Array.from(document.querySelectorAll(sel)).some(e => {
      const r = e.getBoundingClientRect(), s = getComputedStyle(e);
      return s.display !== "none" && s.visibility !== "hidden" && r.width > 100 && r.right > 100 &&
             r.left < innerWidth - 50 && r.height > 100;
    })""", selector)


def test_page_navigation_on_a_phone(browser, rel):
    p = Page(browser, rel, 390, 844)
    try:
        problems = []
        for side in ("primary", "secondary"):
            toggle = p.page.locator(f"button.{side}-toggle")
            if side == "primary" and not toggle.count():
                problems.append("no toggle for the chapter list")
            if not toggle.count() or not toggle.first.is_visible():
                continue
            if _visible(p, f".bd-sidebar-{side}"):
                problems.append(f"the {side} sidebar covers the page before its toggle is pressed")
                continue
            toggle.first.click()
            p.page.wait_for_timeout(500)
            if not _visible(p, f".bd-sidebar-{side}"):
                what = "chapter list" if side == "primary" else "page contents"
                problems.append(f"the {what} does not open from its toggle at 390 px")
            p.js("(s) => { const c = document.getElementById(`pst-${s}-sidebar-checkbox`); if (c) c.checked = false; }",
                 side)  # close it again, as a tap on the page's shaded overlay does
            p.page.wait_for_timeout(400)
        wide = p.js("""() => Array.from(document.querySelectorAll(".animation")).filter(
            pl => pl.getBoundingClientRect().right > (pl.parentElement.getBoundingClientRect().right + 1)
                  || pl.scrollWidth > pl.clientWidth + 1).length""")
        if wide:
            problems.append(f"{wide} player(s) wider than the 390 px column")
        problems += [f"console error: {e}" for e in p.errors]
        p.check(problems, "phone")
    finally:
        p.close()


# Figures without a white backdrop, and text whose contrast with the background behind it is under 4.5.
_DARK_PROBLEMS = """() => {
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
                               return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const backdrop = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor);
                                                           if (c.length === 3 || c[3] > 0.5) return c.slice(0, 3); }
                           return [255, 255, 255]; };
  const bad = [];
  if (document.documentElement.dataset.theme !== "dark") return ["the theme did not switch to dark"];
  for (const img of document.querySelectorAll("div.cell_output img, figure img, .sdelab-player img")) {
    const c = rgb(getComputedStyle(img).backgroundColor);
    if (!(c[0] > 240 && c[1] > 240 && c[2] > 240 && (c.length === 3 || c[3] > 0.9)))
      bad.push(`figure ${img.getAttribute("src").slice(0, 60)} has no white backdrop`);
  }
  for (const el of document.querySelectorAll("article p, div.cell_output pre, figcaption")) {
    if (!el.textContent.trim() || el.getBoundingClientRect().height === 0) continue;
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(backdrop(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) bad.push(`contrast ${ratio.toFixed(1)} for ${el.tagName.toLowerCase()} ${JSON.stringify(el.textContent.trim().slice(0, 50))}`);
  }
  return bad;
}"""


def test_page_dark_mode(browser, rel):
    p = Page(browser, rel, 1400, 900, dark=True)
    try:
        p.check(p.js(_DARK_PROBLEMS)[:40], "dark")
    finally:
        p.close()


@pytest.fixture(scope="module", params=PAGES)
def rel(request):
    if request.param == "<no build>":
        _unavailable(f"no built book in {HTML} (make book-check, or set SDELAB_HTML)")
    return request.param
