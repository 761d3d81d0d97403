"""Sphinx extension: each script and stylesheet once per page.

Two extensions of the theme stack register the same inline configuration script twice (sphinx-thebe's
`const THEBE_JS_URL = ...` and sphinx-togglebutton's selector), and a repeated `const` is a console
error ("Identifier 'THEBE_JS_URL' has already been declared") on every page. This keeps the first copy.
It also gives the theme its colour mode ("auto": follow the reader's system) where nothing set one;
pydata-sphinx-theme otherwise logs "Got invalid theme mode" as a console error on a first visit.
"""


def _key(asset) -> tuple:
    attributes = getattr(asset, "attributes", {}) or {}
    # an inline script is registered with filename None or "" depending on when it was added
    return str(getattr(asset, "filename", asset) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def unique(assets: list) -> list:
    """`assets` without repeats (same file or inline body, same attributes), in their first order."""
    seen, out = set(), []
    for asset in assets:
        key = _key(asset)
        if key not in seen:
            seen.add(key)
            out.append(asset)
    return out


def dedupe_assets(app, pagename, templatename, context, doctree):
    if not context.get("default_mode"):
        context["default_mode"] = "auto"
    for name in ("script_files", "css_files"):
        if name in context:  # in place: later handlers (MathJax on pages with maths) append to this list
            context[name][:] = unique(context[name])


def setup(app):
    # first: Sphinx stops calling handlers after one returns a template name (emit_firstresult)
    # and last, for assets added by other handlers of the page (if no handler before returned)
    app.connect("html-page-context", dedupe_assets, priority=1)
    app.connect("html-page-context", dedupe_assets, priority=999)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
