"""tools/book_refs.py: only references to output-drawn figures are forgiven in the no-execution build."""
import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("book_refs", Path(__file__).resolve().parents[1] / "tools" / "book_refs.py")
book_refs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book_refs)


def test_output_figures_are_collected_from_cell_metadata():
    names = book_refs.output_figure_names()
    assert "fig-mnist-inpainting" in names and all(n.startswith("fig-") for n in names)


def test_only_undefined_output_figures_are_forgiven():
    warnings = ["a.ipynb:3: WARNING: undefined label: 'fig-a'", "b.md:1: WARNING: undefined label: 'erratum-99'",
                "c.md:2: WARNING: Unknown directive type 'foo'", "a.ipynb:9: WARNING: undefined label: 'fig-b'"]
    assert book_refs.unexpected(warnings, {"fig-a"}) == warnings[1:]
