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
