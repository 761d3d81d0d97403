import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("docstring_math", Path(__file__).parents[1] / "book/_ext/docstring_math.py")
ext = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ext)


def test_inline_math_becomes_math_role():
    (line,) = ext.convert([r"mean $\alpha(t) x_0$ and std."])
    assert r":math:`\alpha(t) x_0`" in line and "$" not in line


def test_display_math_over_lines_becomes_directive():
    out = ext.convert(["text", r"    $$a + b", r"    = c$$", "after"])
    assert "    .. math::" in out and "       a + b" in out and "       = c" in out and out[-1] == "after"


def test_dollars_in_code_are_kept():
    (line,) = ext.convert(["set `$SDELAB_DATA` to a folder"])
    assert line == "set ``$SDELAB_DATA`` to a folder"


def test_single_backticks_become_inline_code_roles_and_links_kept():
    (line,) = ext.convert(["call `draw(fig, i)`; see :func:`sdelab.plot.animate`, ``x``, `site <u>`_ and $a$"])
    assert "call ``draw(fig, i)``;" in line
    assert ":func:`sdelab.plot.animate`" in line and " ``x``," in line and "`site <u>`_" in line
    assert r":math:`a`" in line


def test_page_assets_keep_one_copy_of_each_inline_script():
    from sphinx.builders.html._assets import _JavaScript

    spec2 = importlib.util.spec_from_file_location("page_assets", Path(__file__).parents[1] / "book/_ext/page_assets.py")
    assets = importlib.util.module_from_spec(spec2)
    spec2.loader.exec_module(assets)
    thebe = "const THEBE_JS_URL = 1"
    scripts = [_JavaScript("", body=thebe), _JavaScript("a.js"), _JavaScript(None, body=thebe),
               _JavaScript(None, body="const other = 2"), _JavaScript("a.js")]
    kept = assets.unique(scripts)
    assert [(s.filename or "", s.attributes.get("body")) for s in kept] == [
        ("", thebe), ("a.js", None), ("", "const other = 2")]
    context = {"script_files": scripts, "css_files": []}
    assets.dedupe_assets(None, "p", "page.html", context, None)
    assert context["script_files"] is scripts and len(scripts) == 3 and context["default_mode"] == "auto"
