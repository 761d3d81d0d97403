"""tools/book_cache.py: the incremental `make book` executes only what changed (a throwaway two-chapter book)."""
import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("book_cache", ROOT / "tools" / "book_cache.py")
book_cache = importlib.util.module_from_spec(spec)
sys.modules["book_cache"] = book_cache  # the worker processes find its functions by module name
spec.loader.exec_module(book_cache)


def _nb(path: Path, code: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_package_hash_follows_python_source_and_manifest_only(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    h0 = book_cache.package_hash(pkg)
    (pkg / "notes.txt").write_text("not code")
    (pkg / "weights" / "big.pt").write_bytes(b"\0" * 10)
    assert book_cache.package_hash(pkg) == h0
    (pkg / "weights" / "manifest.json").write_text("{}")
    h1 = book_cache.package_hash(pkg)
    (pkg / "a.py").write_text("x = 2\n")
    h2 = book_cache.package_hash(pkg)
    (pkg / "a.py").rename(pkg / "b.py")  # same bytes, another module
    assert len({h0, h1, h2, book_cache.package_hash(pkg)}) == 4


def test_quick_and_full_builds_use_different_caches(tmp_path, monkeypatch):
    (tmp_path / "sdelab").mkdir()
    monkeypatch.setenv("SDELAB_QUICK", "1")
    quick = book_cache.cache_path(tmp_path, tmp_path / "sdelab")
    monkeypatch.setenv("SDELAB_QUICK", "0")
    full = book_cache.cache_path(tmp_path, tmp_path / "sdelab")
    assert quick != full and quick.name.startswith("quick-") and full.name.startswith("full-")


def test_second_build_executes_nothing_and_edits_reexecute_only_what_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("SDELAB_QUICK", "1")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text("VALUE = 1\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: a\nchapters:\n  - file: b\n  - file: status\n")
    _nb(tmp_path / "a.ipynb", "print('sdelab 0.1.0 · torch 2 · cpu · quick mode · 1 thread')")
    _nb(tmp_path / "b.ipynb", "print(2)")
    _nb(tmp_path / "status.ipynb", "import json, os\nrows = json.load(open(os.environ['SDELAB_BOOK_STATUS']))\n"
                                    "assert [r['notebook'] for r in rows] == ['a.ipynb', 'b.ipynb'], rows")

    def run():  # two kernels side by side, as on a 2-core machine
        return book_cache.execute(tmp_path, book_cache.cache_path(tmp_path, pkg), status_page="status", jobs=2)

    assert run() == ["a.ipynb", "b.ipynb", "status.ipynb"]
    assert run() == []
    _nb(tmp_path / "b.ipynb", "print(3)")
    assert run() == ["b.ipynb", "status.ipynb"]
    rows = json.loads((book_cache.cache_path(tmp_path, pkg) / "status.json").read_text())
    assert rows[0]["notebook"] == "a.ipynb" and rows[0]["device"] == "cpu" and rows[0]["mode"] == "quick"
    assert rows[0]["threads"] == 1 and rows[1]["seconds"] > 0
    first = book_cache.cache_path(tmp_path, pkg)
    (pkg / "m.py").write_text("VALUE = 2\n")
    assert run() == ["a.ipynb", "b.ipynb", "status.ipynb"]
    assert not first.exists() and book_cache.cache_path(tmp_path, pkg).exists()  # the stale cache is gone


def test_the_setup_line_parser_reads_what_sdelab_setup_prints(capsys, monkeypatch):
    import sdelab
    monkeypatch.setenv("SDELAB_QUICK", "1")
    monkeypatch.setenv("SDELAB_THREADS", "1")
    sdelab.setup(0)
    line = capsys.readouterr().out.strip()
    m = book_cache.SETUP_LINE.search(line)
    assert m and m["mode"] == "quick" and m["threads"] == "1" and len(line) <= 80, line


def test_a_failing_notebook_loses_no_other_notebooks_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("SDELAB_QUICK", "1")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: a\nchapters:\n  - file: b\n  - file: c\n")
    _nb(tmp_path / "a.ipynb", "print(1)")
    _nb(tmp_path / "b.ipynb", "raise RuntimeError('chapter b is broken')")
    _nb(tmp_path / "c.ipynb", "print(3)")
    cache_dir = book_cache.cache_path(tmp_path, pkg)
    with pytest.raises(SystemExit, match="chapter b is broken"):
        book_cache.execute(tmp_path, cache_dir, status_page="none", jobs=2)
    _nb(tmp_path / "b.ipynb", "print(2)")  # fixed: only b runs again
    assert book_cache.execute(tmp_path, cache_dir, status_page="none", jobs=2) == ["b.ipynb"]


def test_slowest_notebooks_start_first_and_jobs_follow_the_cores(tmp_path, monkeypatch):
    paths = [tmp_path / n for n in ("a.ipynb", "b.ipynb", "c.ipynb", "d.ipynb")]
    for p in paths:
        _nb(p, "print(1)")
    nb = nbformat.read(paths[3], as_version=4)
    nb.metadata["sdelab"] = {"expected_seconds": 50}  # a fresh clone's hint, used where no run is on record
    nbformat.write(nb, paths[3])
    order = book_cache._longest_first(paths, {"c.ipynb": 200.0, "b.ipynb": 10.0})
    assert [p.name for p in order] == ["c.ipynb", "d.ipynb", "b.ipynb", "a.ipynb"]
    monkeypatch.setenv("SDELAB_BOOK_JOBS", "3")
    assert book_cache.default_jobs() == 3
    monkeypatch.setenv("SDELAB_BOOK_JOBS", "zero")
    with pytest.raises(ValueError, match="SDELAB_BOOK_JOBS"):
        book_cache.default_jobs()
    monkeypatch.delenv("SDELAB_BOOK_JOBS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(book_cache.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert book_cache.default_jobs() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert book_cache.default_jobs() == 1


def test_the_configuration_caches_and_make_test_forces_through_a_temporary_copy(tmp_path):
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]
    assert cfg["execute_notebooks"] == "cache"  # a reader's rebuild re-executes only what changed
    (tmp_path / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: cache\n  timeout: 5\n")
    with book_cache.temporary_config(tmp_path, execute_notebooks="force") as path:
        copy = yaml.safe_load(Path(path).read_text())
        assert copy["execute"] == {"execute_notebooks": "force", "timeout": 5} and copy["title"] == "t"
    assert not Path(path).exists()
