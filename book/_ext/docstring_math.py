"""Sphinx extension: render the `$...$` maths of sdelab's docstrings in the API reference.

The package's docstrings write equations as the book does (`$\\alpha(t) x_0$`, and `$$...$$` for
displays); reStructuredText has no dollar maths, so before autodoc parses a docstring each inline
`$...$` becomes a `:math:` role and each `$$...$$` display (possibly over several lines) a
`.. math::` directive. A single-backtick item (`draw(fig, i)`, Markdown's inline code) would be
reStructuredText's italic "title reference"; it becomes inline code (double backticks).
"""
import re

_INLINE = re.compile(r"(?<![\\$`])\$(?!\$)([^$]+?)(?<!\\)\$(?!\$)")
# `text` not part of ``code``, a :role:`text` or a `link`_ reference.
_SINGLE_TICK = re.compile(r"(?<![`:\w\\])`([^`\n]+)`(?![`_\w])")


def _inline(line: str) -> str:
    line = _SINGLE_TICK.sub(lambda m: f"``{m.group(1)}``", line)
    return _INLINE.sub(lambda m: f"\\ :math:`{m.group(1).strip()}`\\ ", line)


def convert(lines: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("$$"):
            indent = line[: len(line) - len(line.lstrip())]
            body = [stripped[2:]]
            while not body[-1].rstrip().endswith("$$") and i + 1 < len(lines):
                i += 1
                body.append(lines[i].strip())
            body[-1] = body[-1].rstrip()[:-2]
            out += ["", f"{indent}.. math::", ""] + [f"{indent}   {b}" for b in body if b.strip()] + [""]
        else:
            out.append(_inline(line))
        i += 1
    return out


def process_docstring(app, what, name, obj, options, lines):
    lines[:] = convert(lines)


def setup(app):
    app.connect("autodoc-process-docstring", process_docstring)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
