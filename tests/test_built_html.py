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

HTML = ROOT / "_build" / "html"
REQUIRED = os.environ.get("SDELAB_REQUIRE_BUILD", "0") not in ("", "0")


def _page(nb: Path) -> str:
    path = HTML / nb.relative_to(ROOT).with_suffix(".html")
    if not path.exists():
        if REQUIRED:
            pytest.fail(f"{path.relative_to(ROOT)} was not built")
        pytest.skip("the book has not been built (make book-check)")
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_page_keeps_an_exploration_without_a_kernel(nb):
    html = _page(nb)
    players = len(re.findall(r'class="animation"', html))
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
