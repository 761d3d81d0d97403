"""Checks on the built HTML book (`_build/html`), run by `make test` right after the strict build.

Without a build these tests skip, unless `SDELAB_REQUIRE_BUILD=1` (set by the Makefile after building),
which turns a missing page into a failure.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from test_book import CHAPTERS, ROOT

HTML = Path(os.environ.get("SDELAB_HTML", ROOT / "_build" / "html")).resolve()  # as tests/test_browser.py
REQUIRED = os.environ.get("SDELAB_REQUIRE_BUILD", "0") not in ("", "0")


def _page(nb: Path) -> str:
    path = HTML / nb.relative_to(ROOT).with_suffix(".html")
    if not path.exists():
        if REQUIRED:
            pytest.fail(f"{path} was not built")
        pytest.skip("the book has not been built (make book-check)")
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_page_keeps_an_exploration_without_a_kernel(nb):
    html = _page(nb)
    players = len(re.findall(r'class="animation[ "]', html))  # sdelab.plot.player_html
    assert players >= 1, f"{nb.stem}: no precomputed player (sdelab.widgets.explore / plot.animate) in the page"
    assert "anim_step" in html, f"{nb.stem}: the player's JavaScript is missing"
    assert "application/vnd.jupyter.widget-view+json" not in html or players, f"{nb.stem}: only live widgets"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_page_has_exercises_with_hidden_solutions_and_no_errors(nb):
    html = _page(nb)
    assert len(re.findall(r'class="exercise admonition"', html)) >= 3, f"{nb.stem}: fewer than 3 exercises rendered"
    assert re.search(r'class="solution dropdown admonition"', html), f"{nb.stem}: solutions are not in dropdowns"
    # An error output (a text that merely names DerivationError is fine).
    for marker in ("Traceback (most recent call last)", 'class="output traceback"'):
        assert marker not in html, f"{nb.stem}: the page shows an error ({marker})"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_page_has_launch_buttons_and_figures(nb):
    html = _page(nb)
    assert "colab.research.google.com" in html, f"{nb.stem}: no Colab launch button"
    assert "mybinder.org" in html or "binder" in html.lower(), f"{nb.stem}: no Binder launch button"
    assert re.search(r'<img[^>]+src="[^"]+\.png"', html), f"{nb.stem}: no figure"


# --- Citations ------------------------------------------------------------------------------------
# In-text citations are author-year ("Song et al., 2021a"); a page's citations link to the page's own
# reference list (a bullet list under "References"), and book/references.html holds the one citation list.
_YEAR_ONLY = re.compile(r"(\d{4}|n\.d\.)[a-z]*")


def _norm(text: str) -> str:
    return " ".join(text.split())


def _soup(path: Path):
    from bs4 import BeautifulSoup  # a dependency of the book's theme (pydata-sphinx-theme)

    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _built_pages() -> dict[str, Path]:
    from test_book import _toc_files

    pages = {f: HTML / f"{f}.html" for f in _toc_files()}
    missing = [str(p) for p in pages.values() if not p.exists()]
    if missing:
        if REQUIRED:
            pytest.fail(f"not built: {missing}")
        pytest.skip("the book has not been built (make book-check)")
    return pages


def _entry_text(element) -> str:
    """The formatted work of a list item or of a citation (without its label)."""
    paragraph = element.find("p")
    return _norm((paragraph or element).get_text())


def _references_section(soup):
    sections = [s for s in soup.select("section") if (h := s.find(["h2", "h3"], recursive=False))
                and re.fullmatch(r"([\w.]+\.\s+)?References#?", _norm(h.get_text()))]  # "1.9. References#"
    assert len(sections) == 1, f"{len(sections)} sections titled References"
    return sections[0]


def _citations(soup):
    """(visible label, href) of every in-text citation link: "Song et al., 2021a" for [Song et al., 2021a],
    "Haussmann and Pardoux, 1986" for the textual Haussmann and Pardoux [1986], None for a bare year."""
    out = []
    for span in soup.select("span.bibtex-citation"):
        links = span.find_all("a")
        text = _norm(span.get_text())
        textual = re.findall(r"([^\[\],][^\[\]]*?) \[([^\]]+)\]", text)  # Author [year], Author [year]
        for i, a in enumerate(links):
            label = _norm(a.get_text())
            if _YEAR_ONLY.fullmatch(label):  # textual, or {cite:year} (no author: no label to compare)
                label = f"{textual[i][0].strip()}, {label}" if len(textual) == len(links) else None
            out.append((label, a.get("href", "")))
    return out


def test_citations_never_share_a_label_and_link_to_the_citing_pages_list():
    pages = _built_pages()
    works_of_label: dict[str, set[str]] = {}
    labels_of_work: dict[str, set[str]] = {}
    global_list: dict[str, str] = {}
    for toc_file, path in pages.items():
        soup = _soup(path)
        lists = soup.select("div.citation")
        if toc_file == "book/references":
            assert lists, "book/references.html has no citation list"
            for div in lists:
                label = _norm(div.select_one("span.label").get_text()).strip("[]")
                assert label not in global_list, f"two works labelled {label!r} on the References page"
                global_list[label] = _entry_text(div)
            continue
        assert not lists, f"{toc_file}: a second citation list (only book/references holds one): duplicate targets"
        cited, section = set(), None
        for label, href in _citations(soup):
            assert href.startswith("#"), f"{toc_file}: {label!r} links to {href!r}, not to the page's own list"
            target = soup.find(id=href[1:])
            assert target is not None and target.name == "li", f"{toc_file}: {label!r} links to no list entry"
            section = section or _references_section(soup)
            assert target.find_parent("section") is section, (
                f"{toc_file}: {label!r} links to a list outside the page's References section")
            work = _entry_text(target)
            cited.add(work)
            if label is None:
                continue
            works_of_label.setdefault(label, set()).add(work)
            labels_of_work.setdefault(work, set()).add(label)
        if cited:
            listed = {_entry_text(li) for li in section.select("li")}
            assert listed == cited, (f"{toc_file}: the References list should hold exactly the cited works; "
                                     f"listed but not cited {sorted(listed - cited)}, cited but not listed {sorted(cited - listed)}")
    shared = {label: works for label, works in works_of_label.items() if len(works) > 1}
    assert not shared, f"distinct works rendered with the same citation label: {shared}"
    inconsistent = {work: labels for work, labels in labels_of_work.items() if len(labels) > 1}
    assert not inconsistent, f"one work cited under several labels: {inconsistent}"
    assert works_of_label, "no citation found in the book"
    for label, works in works_of_label.items():
        assert global_list.get(label) == next(iter(works)), (
            f"{label!r}: the References page lists {global_list.get(label)!r} under that label")
    assert set(global_list.values()) == set(labels_of_work), "the References page and the chapters cite different works"
    # The two works that used to read "Song et al., 2021" both.
    assert {"Song et al., 2021a", "Song et al., 2021b"} <= set(works_of_label)
