"""Write the install cell (the first code cell) of every notebook in `_toc.yml` from one template.

    python tools/sync_install_cells.py           # rewrite the cells that differ, list them
    python tools/sync_install_cells.py --check   # list them, exit 1 if any differs (tests/test_packaging.py)

The repository URL comes from `_config.yml` (`repository.url`), the one place that also feeds the Colab and
Binder launch buttons: to publish from a fork, change it there and run this tool.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = '''try:
    import sdelab
except ImportError:  # a fresh Colab: install the package from the book's repository
    %pip install -q "sdelab @ git+{url}"
    import sdelab
gen = sdelab.setup(seed=0)   # seed, figure style, prints device and quick mode'''


def repository_url(root: Path = ROOT) -> str:
    import yaml

    url = (yaml.safe_load((root / "_config.yml").read_text()).get("repository") or {}).get("url")
    if not url:
        raise ValueError("_config.yml has no repository.url: set it to the book's repository (see README)")
    return url.rstrip("/")


def install_cell(root: Path = ROOT) -> str:
    """The install cell's source for this repository."""
    return TEMPLATE.format(url=repository_url(root))


def notebooks(root: Path = ROOT) -> list[Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from book_cache import toc_notebooks

    return toc_notebooks(root)


def _is_install_cell(source: str) -> bool:
    return source.lstrip().startswith(("try:\n    import sdelab", "import sdelab"))


def sync(path: Path, source: str, *, write: bool) -> bool:
    """Make `path`'s first code cell `source` (inserting it when that cell does not import sdelab first);
    return True when the notebook differed."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if code and _is_install_cell("".join(code[0]["source"])):
        if "".join(code[0]["source"]) == source:
            return False
        code[0]["source"] = source.splitlines(keepends=True)
    else:
        cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                "source": source.splitlines(keepends=True)}
        if nb.get("nbformat_minor", 0) >= 5:
            cell["id"] = "install-sdelab"
        nb["cells"].insert(nb["cells"].index(code[0]) if code else len(nb["cells"]), cell)
    if write:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only list the notebooks that differ; exit 1 if any")
    p.add_argument("--root", type=Path, default=ROOT)
    a = p.parse_args(argv)
    source = install_cell(a.root)
    changed = [nb for nb in notebooks(a.root) if sync(nb, source, write=not a.check)]
    for nb in changed:
        print(f"{'differs' if a.check else 'rewritten'}: {nb.relative_to(a.root)}")
    return 1 if a.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
