"""What a user gets from `pip install`: the sdist, the wheel in a Colab-like environment, and the install cells."""
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import sync_install_cells  # noqa: E402


def test_every_install_cell_is_the_template_with_the_configured_url(tmp_path):
    differ = [p.relative_to(ROOT).as_posix() for p in sync_install_cells.notebooks(ROOT)
              if sync_install_cells.sync(p, sync_install_cells.install_cell(ROOT), write=False)]
    assert not differ, f"run `python tools/sync_install_cells.py`: these install cells differ: {differ}"


def test_sync_tool_rewrites_the_url_from_config(tmp_path):
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "book_cache.py", tmp_path / "tools")
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://example.org/me/fork/\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: a\nchapters:\n  - file: b\n")
    old = sync_install_cells.TEMPLATE.format(url="https://example.org/old/book")
    for name, first in (("a", old), ("b", "x = 1")):
        nb = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                         "source": first.splitlines(keepends=True)}], "metadata": {}, "nbformat": 4, "nbformat_minor": 4}
        (tmp_path / f"{name}.ipynb").write_text(json.dumps(nb))
    assert sync_install_cells.main(["--check", "--root", str(tmp_path)]) == 1
    assert sync_install_cells.main(["--root", str(tmp_path)]) == 0
    assert sync_install_cells.main(["--check", "--root", str(tmp_path)]) == 0
    a = json.loads((tmp_path / "a.ipynb").read_text())["cells"]
    b = json.loads((tmp_path / "b.ipynb").read_text())["cells"]
    assert len(a) == 1 and '"sdelab @ git+https://example.org/me/fork"' in "".join(a[0]["source"])
    assert len(b) == 2 and "".join(b[0]["source"]) == "".join(a[0]["source"]) and b[1]["source"] == ["x = 1"]


def test_sdist_ships_the_package_license_and_weights_but_no_tests(tmp_path):
    subprocess.run([sys.executable, "-c", f"from setuptools import build_meta as b; b.build_sdist({str(tmp_path)!r})"],
                   cwd=ROOT, check=True, capture_output=True)
    (sdist,) = tmp_path.glob("sdelab-*.tar.gz")
    names = [n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n]
    assert "LICENSE" in names and "sdelab/weights/manifest.json" in names and "sdelab/__init__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "book/", "tools/"))]
    with tarfile.open(sdist) as t:
        info = t.extractfile(f"{sdist.name[:-7]}/PKG-INFO").read().decode()
    assert "License-Expression: MIT" in info and "License-File: LICENSE" in info
    assert "Requires-Dist: ipython>=7.34" in info and "Requires-Dist: jupyter-book" not in info.split("Provides-Extra")[0]


def _requirements_closure(name: str, skip=("setuptools", "pip")) -> list:
    seen, todo = {}, [name]
    while todo:
        n = re.split(r"[ ;<>=!~\[]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if n in seen or n in skip:
            continue
        seen[n] = dist = md.distribution(n)
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return list(seen.values())


def _link_installed(dists, site: Path) -> None:
    """Hard-link installed distributions (torch and what it needs) into another site-packages: Colab's
    preinstalled torch, in seconds. A later uninstall there removes the links, never this venv's files."""
    for dist in dists:
        for f in dist.files or []:
            if f.parts[0] == "..":
                continue
            src, dst = Path(dist.locate_file(f)), site / f
            if src.is_file() and not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)


COLAB = r'''
import sys
from pathlib import Path
from IPython.core.interactiveshell import InteractiveShell
import IPython
assert IPython.__version__ == "7.34.0", IPython.__version__
shell = InteractiveShell.instance()
for source in CELLS:
    result = shell.run_cell(source)
    result.raise_error()
import sdelab
assert Path(sdelab.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), sdelab.__file__
print("COLAB-OK", sdelab.__version__, shell.user_ns["sde_paths"].shape)
'''


def test_wheel_installs_next_to_ipython_7_34_and_runs_a_chapter_outside_the_repository(tmp_path):
    # the wheel, built from a copy of the package (nothing written into the checkout)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "sdelab", src / "sdelab", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(pip + ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("sdelab-*.whl")
    # a fresh venv holding torch (as Colab does), then ipython 7.34 and the wheel resolved together
    venv = tmp_path / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    _link_installed(_requirements_closure("torch"), site)
    r = subprocess.run(pip + ["--python", str(python), "install", "-q", "--disable-pip-version-check",
                              "ipython==7.34.0", str(wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    # the first cells of a chapter: the install cell (sdelab is installed: no %pip), imports, one computation
    nb = json.loads((ROOT / "book" / "part1" / "sde_basics.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "sdelab.setup(" in code[0]
    cells = code[:2] + [next(c for c in code if "euler_maruyama(" in c)]
    run_dir = tmp_path / "colab"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(MPLBACKEND="Agg", SDELAB_QUICK="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HOME=str(tmp_path))
    r = subprocess.run([str(python), "-c", f"CELLS = {cells!r}\n{COLAB}"], cwd=run_dir, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "COLAB-OK 0.1.0 torch.Size([301, 20, 1])" in r.stdout
    assert " · cpu · quick mode · " in r.stdout  # printed by sdelab.setup() in the install cell


def test_binder_installs_cpu_torch_and_the_package_not_the_book_toolchain():
    env = __import__("yaml").safe_load((ROOT / "binder" / "environment.yml").read_text())
    deps = " ".join(d for d in env["dependencies"] if isinstance(d, str))
    assert "pytorch-cpu" in deps and "cuda" not in deps.lower()
    post = (ROOT / "binder" / "postBuild").read_text()
    assert os.access(ROOT / "binder" / "postBuild", os.X_OK) and 'pip install --no-cache-dir -e ".[notebooks]"' in post
    assert not re.search(r"jupyter-book|\[book|requirements\.txt", deps + post)
