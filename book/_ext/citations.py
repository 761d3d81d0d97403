"""Sphinx extension: author-year citations that a reader can tell apart, and chapter reference lists.

**Labels.** sphinxcontrib-bibtex's ``author_year`` referencing style prints "Song et al., 2021" for
both `song2021score` and `song2021ddim`. As natbib and biblatex do, works whose label (the author part
as the citation prints it, and the year) would be the same get a letter after the year, in the order of
the reference list (author, year, title): "Song et al., 2021a", "Song et al., 2021b". The letter is
printed in the in-text citation, in the label of the global list and after the year of the entry. The
letters are assigned once for the whole build (over every entry that appears in some bibliography), so a
chapter citing only one of the two still prints the letter the global list shows (a one-chapter build,
`make chapter`, letters only what that chapter cites). Labels are unique by construction; should two
works ever share one, sphinxcontrib-bibtex's `bibtex.duplicate_label` warning fails the strict build.

It registers, under the name ``sdelab_author_year``:

* a pybtex formatting style (``bibtex_default_style``): pybtex's unsrt entries with the year suffixed,
  labels "Author et al., 2021a", sorted by author, year, title with the LaTeX decoded (so that
  "{\\O}ksendal" sorts under O);
* a sphinxcontrib-bibtex referencing style (``bibtex_reference_style``): the stock author-year style
  (``{cite}``, ``{cite:t}``, ``{cite:year}``, ...) with the suffixed year.

**Where a citation links to.** Each chapter ends with its own list, ``:list: bullet`` filtered to the
chapter (``:filter: docname in docnames``); one page (`book/references.md`) holds the only ``citation``
list, so every work has exactly one citation target and sphinxcontrib-bibtex has no duplicates to warn
about. In HTML, a citation links to the entry in the citing page's own list (the reader stays on the
page); where the page has none, and in LaTeX (one document, with one bibliography at the end), it links
to the global list.
"""
from __future__ import annotations

import contextlib
import re
import string
import unicodedata
from dataclasses import dataclass

import pybtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle
from pybtex.style.template import node
from sphinxcontrib.bibtex.domain import BibtexDomain
from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import GroupReferenceStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle
from sphinxcontrib.bibtex.style.referencing.basic_author_year import (
    BasicAuthorYearParentheticalReferenceStyle,
    BasicAuthorYearTextualReferenceStyle,
)
from sphinxcontrib.bibtex.style.referencing.extra_author import ExtraAuthorReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_empty import ExtraEmptyReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_label import ExtraLabelReferenceStyle
from sphinxcontrib.bibtex.style.referencing.extra_year import ExtraYearReferenceStyle
from sphinxcontrib.bibtex.style.template import join, join2, post_text, pre_text, reference
from sphinxcontrib.bibtex.style.template import year as plain_year

STYLE = "sdelab_author_year"

# Entry key -> letter ("a", "b", ...) for the entries whose author-year label is shared; set for the
# whole build by `assign_suffixes` (on env-updated, before sphinxcontrib-bibtex formats the lists).
SUFFIXES: dict[str, str] = {}

# Letters without a decomposition in NFKD, for sorting ("Øksendal" under O).
_TRANSLIT = str.maketrans({"Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "ß": "ss",
                           "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Þ": "Th", "þ": "th", "ı": "i"})


def _sort_text(latex: str) -> str:
    """Plain, lower-case ASCII letters, digits and single spaces of a BibTeX field, for sorting."""
    text = Text.from_latex(latex).render_as("text").translate(_TRANSLIT)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text).split())


def _persons_key(persons) -> str:
    return "   ".join(
        "  ".join(_sort_text(" ".join(parts)) for parts in (
            p.prelast_names + p.last_names, p.first_names + p.middle_names, p.lineage_names))
        for p in persons)


def sort_key(entry) -> tuple[str, str, str]:
    """Author (editor for a book without one), year, title: the order of every reference list."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    return (_persons_key(persons), entry.fields.get("year", ""), _sort_text(entry.fields.get("title", "")))


_STOCK = AuthorYearReferenceStyle()


def author_year(entry) -> tuple[str, str]:
    """The author part and the year exactly as an in-text citation prints them (without the letter)."""
    style = _STOCK
    data = {"entry": entry, "style": style}
    author = style.person.author_or_editor_or_title(full=False).format_data(data).render_as("text")
    return author, plain_year.format_data(data).render_as("text")


def _letters(i: int) -> str:
    """0 -> a, ..., 25 -> z, 26 -> aa, ..."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = string.ascii_lowercase[r] + out
    return out


def compute_suffixes(entries) -> dict[str, str]:
    """Letters for the entries (pybtex entries with `.key`) whose author-year label is shared."""
    groups: dict[tuple[str, str], list] = {}
    for entry in {e.key: e for e in entries}.values():
        groups.setdefault(author_year(entry), []).append(entry)
    return {entry.key: _letters(i)
            for group in groups.values() if len(group) > 1
            for i, entry in enumerate(sorted(group, key=sort_key))}


def entry_label(entry) -> str:
    """The visible label, "Song et al., 2021b": the same text as the in-text citation."""
    author, year = author_year(entry)
    return f"{author}, {year}{SUFFIXES.get(entry.key, '')}"


# --- pybtex formatting style (bibliography lists) -----------------------------------------------------

class SortingStyle(BaseSortingStyle):
    def sorting_key(self, entry):
        return sort_key(entry)


class LabelStyle(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            yield entry_label(entry)


class FormattingStyle(UnsrtStyle):
    """pybtex's unsrt entries, author-year labels and order, the year suffixed where it is shared."""

    default_sorting_style = STYLE
    default_label_style = STYLE

    def format_entry(self, label, entry, bib_data=None):
        suffix = SUFFIXES.get(entry.key)
        if suffix and "year" in entry.fields:
            # A copy: the parsed entry is cached (and pickled) by sphinxcontrib-bibtex.
            copy = type(entry)(getattr(entry, "original_type", entry.type), fields=entry.fields,
                               persons=entry.persons)
            copy.key = entry.key
            copy.fields["year"] = entry.fields["year"] + suffix
            entry = copy
        return super().format_entry(label, entry, bib_data=bib_data)


# --- sphinxcontrib-bibtex referencing style (in-text citations) -----------------------------------

@node
def year(children, data):
    """The year as the stock template prints it, followed by the entry's letter, if any."""
    assert not children
    return Text(plain_year.format_data(data), SUFFIXES.get(data["entry"].key, ""))


@dataclass
class _Parenthetical(BasicAuthorYearParentheticalReferenceStyle):
    def inner(self, role_name):
        return join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
            pre_text,
            reference[join(sep=self.author_year_sep)[
                self.person.author_or_editor_or_title(full="s" in role_name), year]],
            post_text,
        ]


@dataclass
class _Textual(BasicAuthorYearTextualReferenceStyle):
    def inner(self, role_name):
        return join(sep=self.text_reference_sep)[
            self.person.author_or_editor_or_title(full="s" in role_name),
            join[
                self.bracket.left,
                join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[pre_text, reference[year], post_text],
                self.bracket.right,
            ],
        ]


@dataclass
class _Year(ExtraYearReferenceStyle):
    def inner(self, role_name):
        return reference[year]


@dataclass
class ReferenceStyle(AuthorYearReferenceStyle):
    """sphinxcontrib-bibtex's author_year style, with the letter after a shared year."""

    def __post_init__(self):
        self.styles.extend([
            _Parenthetical(bracket=self.bracket_parenthetical, person=self.person,
                           author_year_sep=self.author_year_sep, pre_text_sep=self.pre_text_sep,
                           post_text_sep=self.post_text_sep),
            _Textual(bracket=self.bracket_textual, person=self.person,
                     text_reference_sep=self.text_reference_sep, pre_text_sep=self.pre_text_sep,
                     post_text_sep=self.post_text_sep),
            ExtraAuthorReferenceStyle(bracket=self.bracket_author, person=self.person),
            ExtraLabelReferenceStyle(bracket=self.bracket_label),
            _Year(bracket=self.bracket_year),
            ExtraEmptyReferenceStyle(),
        ])
        GroupReferenceStyle.__post_init__(self)


# --- Sphinx --------------------------------------------------------------------------------------

class Domain(BibtexDomain):
    """The bibtex domain; in HTML a citation resolves to the citing page's own list first."""

    @contextlib.contextmanager
    def _page_lists_are_targets(self, docname: str):
        # sphinxcontrib-bibtex links only to "citation" lists, preferring one on the citing page. Let the
        # page's own (bullet) lists count as such while this one reference is resolved.
        bibs = self.data["bibliographies"]
        own = {k: v._replace(list_="citation") for k, v in bibs.items()
               if k.docname == docname and v.list_ != "citation"}
        self.data["bibliographies"] = {**bibs, **own}
        try:
            yield
        finally:
            self.data["bibliographies"] = bibs

    def resolve_xref(self, env, fromdocname, builder, typ, target, node, contnode):
        if builder.format != "html":  # LaTeX: the bullet items are no link targets; use the global list
            return super().resolve_xref(env, fromdocname, builder, typ, target, node, contnode)
        with self._page_lists_are_targets(fromdocname):
            return super().resolve_xref(env, fromdocname, builder, typ, target, node, contnode)


def assign_suffixes(app, env):
    """Letter every shared author-year label over all entries of all lists of this build."""
    domain = env.get_domain("cite")
    entries = [entry for key in domain.bibliographies for _, entry in domain.get_filtered_entries(key)]
    new = compute_suffixes(entries)
    old = getattr(env, "sdelab_citation_suffixes", None)
    SUFFIXES.clear()
    SUFFIXES.update(new)
    env.sdelab_citation_suffixes = dict(new)
    if old is None or old == new:
        return []
    # A letter changed: rewrite the pages that cite or list an entry (they were not necessarily re-read).
    docnames = {ref.docname for ref in domain.citation_refs} | {key.docname for key in domain.bibliographies}
    return sorted(docnames)


def setup(app):
    app.setup_extension("sphinxcontrib.bibtex")
    pybtex.plugin.register_plugin("pybtex.style.formatting", STYLE, FormattingStyle)
    pybtex.plugin.register_plugin("pybtex.style.sorting", STYLE, SortingStyle)
    pybtex.plugin.register_plugin("pybtex.style.labels", STYLE, LabelStyle)
    register_plugin("sphinxcontrib.bibtex.style.referencing", STYLE, ReferenceStyle)
    app.add_domain(Domain, override=True)
    # Before sphinxcontrib-bibtex's own env-updated handler (priority 500), which formats the lists.
    app.connect("env-updated", assign_suffixes, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
