"""Incremental `make book`: execute only the notebooks whose code or package changed (jupyter-cache).

    python tools/book_cache.py path                  # the cache folder for this package source and mode
    python tools/book_cache.py execute               # execute what is out of date into that cache
    python tools/book_cache.py build -- -W -n ...    # execute, then `jupyter-book build` in cache mode
    python tools/book_cache.py force -- -W -n ...    # `jupyter-book build` executing every notebook afresh (make test)

The cache folder is `_build/.jupyter_cache/<mode>-<hash>`: the hash covers every `sdelab/**/*.py` and the
weights manifest, and the mode is quick or full (`SDELAB_QUICK`), so a changed package, or a quick build,
never reuses the outputs of another (the folder of an older package version is deleted). Inside one folder jupyter-cache keys each notebook by its code cells:
editing one chapter re-executes that chapter only. The status page (`book/appendix/environment`) is executed
last, whenever any other notebook was, and reads `status.json` (when, how long, in which mode each notebook ran).
Out-of-date notebooks run side by side, one kernel per core's worth of threads (`--jobs`, `SDELAB_BOOK_JOBS`;
two on a 2-core machine), the slowest first by the last run's times (`_build/.jupyter_cache/durations.json`).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

STATUS_PAGE = "book/appendix/environment"
# the line sdelab.setup() prints: "sdelab 0.1.0 · torch 2.13.0 · cpu · quick mode · 1 thread"
SETUP_LINE = re.compile(r"sdelab \S+ · torch \S+ · (?P<device>\S+) · (?P<mode>quick|full) mode · (?P<threads>\d+) thread")


def package_hash(package: Path) -> str:
    """sha256 of the package's Python source and weights manifest (paths and contents), 12 hex digits."""
    h = hashlib.sha256()
    files = sorted(package.rglob("*.py")) + sorted(package.glob("weights/manifest.json"))
    for f in files:
        h.update(f.relative_to(package).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def quick_mode() -> bool:
    return os.environ.get("SDELAB_QUICK", "0").strip().lower() not in ("", "0", "false", "no")


def cache_path(root: Path, package: Path) -> Path:
    """`<root>/_build/.jupyter_cache/<quick|full>-<package hash>`."""
    return root / "_build" / ".jupyter_cache" / f"{'quick' if quick_mode() else 'full'}-{package_hash(package)}"


def toc_notebooks(root: Path) -> list[Path]:
    """The `.ipynb` files `_toc.yml` names, in book order."""
    import yaml

    names = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    names.append(node[key])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load((root / "_toc.yml").read_text()))
    paths = [root / (n if n.endswith(".ipynb") else n + ".ipynb") for n in names]
    return [p for p in paths if p.exists()]


def _setup_info(nb) -> dict:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            m = SETUP_LINE.search(out.get("text", "") if isinstance(out.get("text"), str) else "")
            if m:
                return {"device": m["device"], "mode": m["mode"], "threads": int(m["threads"])}
    return {}


def write_status(cache, root: Path, notebooks: list[Path], out: Path) -> list[dict]:
    """Write what the cache knows about each notebook (when, seconds, device, mode, threads) to `out`."""
    import nbformat

    rows = []
    for path in notebooks:
        try:
            rec = cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            continue
        nb = cache.get_cache_bundle(rec.pk).nb
        rows.append({"notebook": path.relative_to(root).as_posix(), "executed": rec.created.isoformat(timespec="seconds"),
                     "seconds": rec.data.get("execution_seconds"), **_setup_info(nb)})
    out.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def _execute_one(path: str, timeout: int) -> tuple:
    """Run one notebook in a fresh kernel (in a worker process): `(notebook, seconds, error text or None)`."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    nb = nbformat.read(path, as_version=4)
    res = single_nb_execution(nb, cwd=str(Path(path).parent), allow_errors=False, timeout=timeout, meta_override=True)
    return nb, res.time, (res.exc_string if res.err is not None else None)


def default_jobs() -> int:
    """Kernels run side by side: `SDELAB_BOOK_JOBS` if set, else as many as the cores hold at the per-kernel thread
    count (`sdelab.utils.num_threads()`: `SDELAB_THREADS`, `OMP_NUM_THREADS` or half the cores), at most 4: two on a 2-core machine."""
    text = os.environ.get("SDELAB_BOOK_JOBS", "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"SDELAB_BOOK_JOBS must be a positive integer, got {text!r}")
        return int(text)
    from sdelab.utils import num_threads

    threads = num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores // threads))


def _context():
    """fork where there is one (the workers then need no import path for this script), else spawn."""
    import multiprocessing

    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _expected_seconds(path: Path) -> float:
    """A notebook's own estimate, `metadata.sdelab.expected_seconds` (for a fresh clone, before any run), else 0."""
    import nbformat

    meta = nbformat.read(path, as_version=4).metadata.get("sdelab", {})
    return float(meta.get("expected_seconds", 0)) if isinstance(meta, dict) else 0.0


def _longest_first(paths: list[Path], durations: dict[str, float]) -> list[Path]:
    """Slow notebooks first (so the slowest does not start last), by the last run's times, else by the notebooks'
    own estimates; the rest keep book order."""
    return sorted(paths, key=lambda p: -(durations.get(p.name) or _expected_seconds(p)))


def _run_all(cache, root: Path, paths: list[Path], timeout: int, jobs: int) -> list[Path]:
    """Execute `paths` with `jobs` kernels side by side; cache each as it finishes (one failure loses no other
    notebook's outputs); exit with every failure listed at the end. Returns the notebooks executed."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from jupyter_cache.base import CacheBundleIn

    durations_file = root / "_build" / ".jupyter_cache" / "durations.json"
    durations = json.loads(durations_file.read_text()) if durations_file.exists() else {}
    paths = _longest_first(paths, durations)
    print(f"book_cache: executing {len(paths)} notebook(s), {min(jobs, len(paths))} at a time", flush=True)
    failed = []
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(paths))),
                             mp_context=_context()) as pool:
        futures = {pool.submit(_execute_one, str(p), timeout): p for p in paths}
        for fut in as_completed(futures):
            path = futures[fut]
            nb, seconds, err = fut.result()
            if err is not None:
                print(f"book_cache: {path.relative_to(root)} FAILED after {seconds:.0f} s", flush=True)
                failed.append(f"{path.relative_to(root)}:\n{err}")
                continue
            stage = cache.add_nb_to_project(str(path))
            cache.cache_notebook_bundle(CacheBundleIn(nb, stage.uri, data={"execution_seconds": seconds}),
                                        check_validity=False, overwrite=True)
            durations[path.name] = round(seconds, 1)
            print(f"book_cache: {path.relative_to(root)} took {seconds:.1f} s", flush=True)
    durations_file.parent.mkdir(parents=True, exist_ok=True)
    durations_file.write_text(json.dumps(durations, indent=1) + "\n")
    if failed:
        sys.exit("book_cache: failed (the other notebooks are cached):\n" + "\n".join(failed))
    return paths


def execute(root: Path, cache_dir: Path, *, status_page: str = STATUS_PAGE, timeout: int = 900,
            jobs: int | None = None) -> list[str]:
    """Execute the out-of-date notebooks of `root`'s book into `cache_dir`, `jobs` kernels at a time (default
    `default_jobs()`), the status page last; return those executed, in book order."""
    import nbformat
    from jupyter_cache import get_cache

    for old in cache_dir.parent.glob(cache_dir.name.split("-")[0] + "-*"):  # other package versions: stale
        if old != cache_dir and old.is_dir():
            shutil.rmtree(old)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache = get_cache(str(cache_dir))
    notebooks = toc_notebooks(root)
    page = root / (status_page + ".ipynb")
    stale = []
    for path in (p for p in notebooks if p != page):
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            stale.append(path)
    if stale:
        _run_all(cache, root, stale, timeout, jobs or default_jobs())
    done = [p.relative_to(root).as_posix() for p in stale]  # in book order
    status = cache_dir / "status.json"
    write_status(cache, root, [p for p in notebooks if p != page], status)
    if page in notebooks:
        try:
            cache.match_cache_notebook(nbformat.read(page, as_version=4))
            stale = bool(done)
        except KeyError:
            stale = True
        if stale:
            os.environ["SDELAB_BOOK_STATUS"] = str(status.resolve())
            print(f"book_cache: executing {page.relative_to(root)} (status page)", flush=True)
            _run_all(cache, root, [page], timeout, 1)
            done.append(page.relative_to(root).as_posix())
    print(f"book_cache: {len(done)} notebook(s) executed, cache {cache_dir}", flush=True)
    return done


def build(root: Path, cache_dir: Path, flags: list[str], jobs: int | None = None) -> int:
    """Execute what is out of date, then build the HTML book in cache mode from that cache."""
    done = execute(root, cache_dir, timeout=_timeout(root), jobs=jobs)
    page = root / (STATUS_PAGE + ".ipynb")
    if done and page.exists():  # Sphinx re-reads only changed files: mark the status page as changed
        os.utime(page)
    return jupyter_book(root, flags, execute_notebooks="cache", cache=str(cache_dir.resolve()))


@contextlib.contextmanager
def temporary_config(root: Path, **execute):
    """A copy of `<root>/_config.yml` with `execute` settings replaced (e.g. `execute_notebooks="force"`), for
    `jupyter-book build --config`; deleted afterwards."""
    import yaml

    cfg = yaml.safe_load((root / "_config.yml").read_text())
    cfg.setdefault("execute", {}).update(execute)
    with tempfile.NamedTemporaryFile("w", suffix=".yml", prefix=".book-", dir=root, delete=False) as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    try:
        yield f.name
    finally:
        os.unlink(f.name)


def jupyter_book(root: Path, flags: list[str], **execute) -> int:
    """`jupyter-book build <root> <flags>` with `execute` settings replaced in the configuration."""
    with temporary_config(root, **execute) as config:
        return subprocess.call([str(Path(sys.executable).parent / "jupyter-book"), "build", str(root),
                                "--config", config, *flags])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="book_cache.py", description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("path", "execute", "build", "force"))
    p.add_argument("--root", type=Path, default=Path("."), help="the book's root (default .)")
    p.add_argument("--package", type=Path, default=None, help="package folder hashed (default <root>/sdelab)")
    p.add_argument("--status-page", default=STATUS_PAGE, help=f"executed last (default {STATUS_PAGE})")
    p.add_argument("--jobs", type=int, default=None, help="notebooks executed side by side (default: SDELAB_BOOK_JOBS, "
                   "else what the cores hold at the per-kernel thread count, at most 4)")
    argv = list(sys.argv[1:] if argv is None else argv)
    flags = argv[argv.index("--") + 1:] if "--" in argv else []  # after --: flags for jupyter-book build
    a = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    root = a.root.resolve()
    cache_dir = cache_path(root, a.package or root / "sdelab")
    if a.command == "force":  # make test: every notebook executed afresh, nothing read from a cache
        return jupyter_book(root, flags, execute_notebooks="force")
    if a.command == "path":
        print(cache_dir)
        return 0
    if a.command == "execute":
        execute(root, cache_dir, status_page=a.status_page, timeout=_timeout(root), jobs=a.jobs)
        return 0
    return build(root, cache_dir, flags, a.jobs)


def _timeout(root: Path) -> int:
    """The cell timeout of `_config.yml` (`execute.timeout`), 900 s when it names none."""
    import yaml

    cfg = yaml.safe_load((root / "_config.yml").read_text()) if (root / "_config.yml").exists() else {}
    return int(((cfg or {}).get("execute") or {}).get("timeout") or 900)


if __name__ == "__main__":
    sys.exit(main())
