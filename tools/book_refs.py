"""Strict build of every page without executing notebooks (`make book-refs`).

Figures named in a code cell's `mystnb.figure` metadata exist only once the cell has outputs, so their
references are undefined in this build; those warnings (and only those) are expected. Any other warning fails.
Usage: python tools/book_refs.py OUT_DIR [extra jupyter-book flags]
"""
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from book_cache import temporary_config  # noqa: E402  (a script beside this one, not a package)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
UNDEFINED = re.compile(r"undefined label: '([^']+)'")


def output_figure_names() -> set[str]:
    names = set()
    for nb in (ROOT / "book").rglob("*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            name = cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("name")
            if name:
                names.add(name)
    return names


def unexpected(warnings: list[str], figures: set[str]) -> list[str]:
    bad = []
    for w in warnings:
        m = UNDEFINED.search(w)
        if not (m and m.group(1) in figures):
            bad.append(w)
    return bad


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python tools/book_refs.py OUT_DIR [jupyter-book flags]", file=sys.stderr)
        return 2
    out, flags = argv[0], argv[1:]
    with temporary_config(ROOT, execute_notebooks="off") as config:
        # --all: a rebuild reports every page's warnings, not only those of changed pages
        cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--all",
               "--config", config, "--path-output", out, *[a for a in flags if a not in ("-W", "-n", "--keep-going")],
               "-n", "--keep-going"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    log = ANSI.sub("", proc.stdout + proc.stderr)
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    bad = unexpected(warnings, output_figure_names())
    for line in bad:
        print(line)
    skipped = len(warnings) - len(bad)
    print(f"book-refs: {len(bad)} unexpected warnings ({skipped} references to figures drawn by cell outputs skipped)")
    if "build succeeded" not in log and "build finished" not in log:
        print(log[-3000:])
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
