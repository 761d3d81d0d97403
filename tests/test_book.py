"""Checks on the book's sources: every notebook clean, listed, asserted, with exercises and checkers."""
from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").rglob("*.ipynb"))
NOTEBOOKS = [p for p in NOTEBOOKS if ".ipynb_checkpoints" not in p.parts and "_build" not in p.parts]
# Pages that are not chapters (no exercises): the record of the build environment.
NOT_CHAPTERS = {"environment"}
CHAPTERS = [p for p in NOTEBOOKS if p.stem not in NOT_CHAPTERS]


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node):
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                if "file" in child:
                    files.append(child["file"])
                walk(child)

    walk(toc)
    return files


def _cells(path: Path):
    return json.loads(path.read_text())["cells"]


def _source(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_committed_without_outputs(path):
    for i, cell in enumerate(_cells(path)):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name}: code cell {i} has outputs; clear them before committing"
            assert cell.get("execution_count") is None, f"{path.name}: code cell {i} has an execution count"


def test_toc_lists_every_notebook_and_only_existing_files():
    listed = _toc_files()
    for f in listed:
        matches = [ROOT / f"{f}{ext}" for ext in ("", ".ipynb", ".md")]
        assert any(m.is_file() for m in matches), f"_toc.yml lists {f}, which does not exist"
    listed_nb = {str((ROOT / f).with_suffix(".ipynb")) for f in listed}
    for path in NOTEBOOKS:
        assert str(path) in listed_nb, f"{path.relative_to(ROOT)} is not listed in _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    cells = _cells(path)
    first_md = next(c for c in cells if c["cell_type"] == "markdown")
    assert _source(first_md).lstrip().startswith("# "), f"{path.name}: the first markdown cell must hold the # title"
    code = [_source(c) for c in cells if c["cell_type"] == "code"]
    assert code and "sdelab.setup(" in code[0], f"{path.name}: the first code cell must call sdelab.setup()"
    assert any("assert" in c or "check_" in c for c in code), f"{path.name}: no asserted claim or checked derivation"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_exercises_have_solutions_and_checkers(path):
    cells = _cells(path)
    md = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    labels = re.findall(r"```\{exercise\}[^\n]*\n:label:\s*(\S+)", md)
    assert len(labels) >= 3, f"{path.name}: has {len(labels)} exercises, each chapter needs at least 3"
    solved = set(re.findall(r"```\{solution-start\}\s*(\S+)", md))
    assert set(labels) <= solved, f"{path.name}: exercises without a solution: {sorted(set(labels) - solved)}"
    assert md.count("{solution-start}") == md.count("{solution-end}"), f"{path.name}: unbalanced solution gates"
    code = "\n".join(_source(c) for c in cells if c["cell_type"] == "code")
    module = importlib.import_module(f"sdelab.exercises.{path.stem}")
    used = set(re.findall(r"\b(check_\w+)\(", code)) & {n for n in dir(module) if n.startswith("check_")}
    assert len(used) >= 3, f"{path.name}: solutions call {sorted(used)} from sdelab.exercises.{path.stem}; need 3+"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_citations_exist(path):
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    md = "\n".join(_source(c) for c in _cells(path) if c["cell_type"] == "markdown")
    for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", md):
        for key in group.split(","):
            assert key.strip() in keys, f"{path.name} cites {key.strip()!r}, which is not in references.bib"


# --- Citations: author-year labels, one reference list per page, one global list ------------------
# Every page that cites ends with `## References` and a bullet list of its own works; book/references.md
# holds the only citation list (the link target in LaTeX, and in HTML where a page has no list). See
# book/_ext/citations.py.
REFERENCES_PAGE = "book/references"
PAGE_BIBLIOGRAPHY = {":filter: docname in docnames", ":list: bullet"}
_BIBLIOGRAPHY = re.compile(r"```\{bibliography\}[^\n]*\n(.*?)```", re.S)
_CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")


def _page_markdown(toc_file: str) -> tuple[Path, str]:
    """The page's markdown (a notebook's markdown cells joined; a notebook must end with its last markdown cell)."""
    for ext in (".md", ".ipynb"):
        path = ROOT / f"{toc_file}{ext}"
        if path.is_file():
            break
    if path.suffix == ".md":
        return path, path.read_text(encoding="utf-8")
    cells = _cells(path)
    # The bibliography is asserted to end the page; a code cell after the last markdown cell would follow it.
    md = "\n\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    if cells and cells[-1]["cell_type"] != "markdown" and "{bibliography}" in md:
        md += "\n\n<code cell>"
    return path, md


def _bib_keys() -> set[str]:
    return set(re.findall(r"@\w+\{([^,]+),", (ROOT / "book" / "references.bib").read_text()))


@pytest.mark.parametrize("toc_file", [f for f in _toc_files() if f != REFERENCES_PAGE])
def test_a_citing_page_ends_with_its_own_reference_list(toc_file):
    path, md = _page_markdown(toc_file)
    keys = {k.strip() for group in _CITE.findall(md) for k in group.split(",")}
    assert keys <= _bib_keys(), f"{path.name} cites {sorted(keys - _bib_keys())}, not in references.bib"
    assert "{footcite" not in md and "{footbibliography}" not in md, f"{path.name}: use {{cite}} and the page list"
    bibs = _BIBLIOGRAPHY.findall(md)
    if not keys:
        assert not bibs, f"{path.name} cites nothing but has a bibliography directive"
        return
    assert len(bibs) == 1, f"{path.name} cites {sorted(keys)} and needs exactly one bibliography directive"
    options = {line.strip() for line in bibs[0].splitlines() if line.strip()}
    assert options == PAGE_BIBLIOGRAPHY, (
        f"{path.name}: the page's bibliography must read ```{{bibliography}} with exactly the options "
        f"{sorted(PAGE_BIBLIOGRAPHY)} (the page's works, as a list; the citation targets are on the global "
        f"References page), found {sorted(options)}")
    tail = md[md.index("```{bibliography}"):]
    assert re.fullmatch(r"```\{bibliography\}[^\n]*\n.*?```\s*", tail, re.S), (
        f"{path.name}: the bibliography directive must end the page (in the last cell of a notebook)")
    assert re.search(r"^## References\s*\n\s*```\{bibliography\}", md, re.M), (
        f"{path.name}: put a `## References` heading right above the bibliography directive")


def test_the_references_page_holds_the_only_citation_list():
    assert REFERENCES_PAGE in _toc_files(), f"{REFERENCES_PAGE}.md is not listed in _toc.yml"
    _, md = _page_markdown(REFERENCES_PAGE)
    bibs = _BIBLIOGRAPHY.findall(md)
    assert len(bibs) == 1 and not bibs[0].strip(), (
        "book/references.md must hold one ```{bibliography}``` without options: every cited work, as citations")


def _citations_module():
    import sys
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        return importlib.import_module("citations")
    finally:
        sys.path.remove(str(ROOT / "book" / "_ext"))


def test_citation_labels_tell_same_author_same_year_works_apart():
    from pybtex.database import parse_file

    cit = _citations_module()
    entries = parse_file(str(ROOT / "book" / "references.bib")).entries
    cited = {k.strip() for f in _toc_files() for g in _CITE.findall(_page_markdown(f)[1]) for k in g.split(",")}
    # Over the works the book cites (what a full build lists) and over the whole file (any later citation).
    for keys in (cited, set(entries)):
        suffixes = cit.compute_suffixes(entries[k] for k in keys)
        labels = {}
        for k in sorted(keys):
            a, y = cit.author_year(entries[k])
            labels.setdefault(f"{a}, {y}{suffixes.get(k, '')}", []).append(k)
        shared = {label: ks for label, ks in labels.items() if len(ks) > 1}
        assert not shared, f"distinct works with the same citation label: {shared}"
        # A letter only where the label would be shared.
        plain = [cit.author_year(entries[k]) for k in keys]
        lettered = {k for k in keys if plain.count(cit.author_year(entries[k])) > 1}
        assert set(suffixes) == lettered, f"letters on {sorted(set(suffixes) ^ lettered)}"
    # The known pair, in the order of the reference list (Song, Jiaming before Song, Yang).
    assert cit.author_year(entries["song2021score"]) == cit.author_year(entries["song2021ddim"]) == ("Song et al.", "2021")
    suffixes = cit.compute_suffixes(entries[k] for k in cited)
    assert suffixes["song2021ddim"] < suffixes["song2021score"], suffixes


_API_MENTION = re.compile(r"sdelab\.exercises\.(\w+)\.(\w+)")


def test_exercise_checkers_named_in_the_text_exist():
    # prose names checkers that no cell imports (e.g. the intro's example): a renamed checker must not leave them stale
    sources = [p for p in (ROOT / "book").rglob("*") if p.suffix in (".md", ".ipynb") and "_build" not in p.parts]
    seen = 0
    for path in sources:
        for module, name in _API_MENTION.findall(path.read_text()):
            mod = importlib.import_module(f"sdelab.exercises.{module}")
            assert hasattr(mod, name), f"{path.relative_to(ROOT)} names sdelab.exercises.{module}.{name}, which does not exist"
            seen += 1
    assert seen >= 1


RICH_DISPLAY = re.compile(r"\b(sy\.show|display|show_math)\(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_numbered_figure_cell_displays_only_its_figure(path):
    # myst-nb gives every image or rich output of a cell with `mystnb.figure` the figure's label: a second
    # displayed output (a sympy check, a Math display) makes a duplicate label and breaks the strict build
    bad = [("".join(c["source"]).splitlines() or [""])[0] for c in json.loads(path.read_text())["cells"]
           if c["cell_type"] == "code" and c.get("metadata", {}).get("mystnb", {}).get("figure")
           and RICH_DISPLAY.search("".join(c["source"]))]
    assert not bad, f"{path.name}: figure cells that also display other outputs: {bad}"
