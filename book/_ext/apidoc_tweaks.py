"""Sphinx tweaks for the API reference (book/api.md and the pages autosummary generates from it).

* Module-level data and class attributes whose value prints long (``reproduce.specs.TABLES``: thousands of
  characters) show their type and docstring, not their value; short values (``UNANNOTATED = 255``) still show.
* The pages autosummary writes into ``book/api/`` stay in the build: Jupyter Book's ``only_build_toc_files``
  excludes every source file missing from ``_toc.yml``, and those pages are reached through the autosummary
  toctrees of ``book/api.md`` instead. A page left behind by a module that no longer exists stays excluded.
* sphinx-external-toc warns of every toctree in a page ("toctree directive not expected with external-toc"),
  autosummary's included; the toctrees autosummary makes are hidden from that check, hand-written ones are not.
* A summary (the first sentence of a docstring, in autosummary tables) no longer stops at "Eq." or "Eqs.".
* The links in an autosummary table's summaries resolve in the summarised object's module, as they do on its
  own page (``:class:`TrainConfig``` in ``modelmix_lite.config``'s docstring, summarised in ``book/api.md``).
* ``package-modules``: the autosummary table of a package's modules, found when the book builds, so a new module
  appears on the entry page without editing it.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import PurePosixPath

from docutils import nodes
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.ext.autodoc import AttributeDocumenter, DataDocumenter
import sphinx.ext.autosummary
from sphinx.ext.autosummary import Autosummary, autosummary_toc
from sphinx.transforms import SphinxTransform
from sphinx.util.inspect import object_description

#: Where ``book/api.md``'s ``:toctree: api`` puts the generated pages, relative to the book root.
GENERATED_DIR = "book/api"
#: Abbreviations a docstring's first sentence may contain ("... (Eq. 5) and ...").
ABBREVIATIONS = ("Eq.", "Eqs.")
#: A value whose repr is longer than this (or spans lines) is not printed.
MAX_VALUE_CHARS = 80


def value_too_long(value: object) -> bool:
    """Whether the repr autodoc would print for ``value`` is longer than :data:`MAX_VALUE_CHARS` or multi-line."""
    try:
        text = object_description(value)
    except ValueError:  # autodoc prints nothing for these either
        return False
    return len(text) > MAX_VALUE_CHARS or "\n" in text


class ShortValueDataDocumenter(DataDocumenter):
    """``autodata``, printing a module constant's value only when it is short."""

    def should_suppress_value_header(self) -> bool:
        return super().should_suppress_value_header() or value_too_long(self.object)


class ShortValueAttributeDocumenter(AttributeDocumenter):
    """``autoattribute``, printing a class attribute's value only when it is short."""

    def should_suppress_value_header(self) -> bool:
        return super().should_suppress_value_header() or value_too_long(self.object)


def public_modules(package: str) -> list[str]:
    """The full names of a package's public modules and subpackages, in name order (what autosummary recurses into)."""
    path = importlib.import_module(package).__path__
    return [f"{package}.{info.name}" for info in pkgutil.iter_modules(path) if not info.name.startswith("_")]


def generated_module(pattern: str) -> str | None:
    """The module name of an exclude pattern naming a generated page (``book/api/<module>.rst``), else None."""
    path = PurePosixPath(pattern)
    if path.parent != PurePosixPath(GENERATED_DIR) or path.suffix != ".rst":
        return None
    return path.stem


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def keep_generated_pages(app: Sphinx, config: Config) -> None:
    """Take the generated pages of existing modules back out of ``exclude_patterns`` (after sphinx-external-toc)."""
    config.exclude_patterns = [
        pattern
        for pattern in config.exclude_patterns
        if (module := generated_module(pattern)) is None or not module_exists(module)
    ]


class HideAutosummaryToctrees(SphinxTransform):
    """Detach the toctrees of autosummary tables before sphinx-external-toc's ``InsertToctrees`` (priority 100)."""

    default_priority = 99

    def apply(self, **kwargs) -> None:
        for holder in self.document.findall(autosummary_toc):
            holder.__dict__["stashed_children"] = list(holder.children)
            holder.clear()


class RestoreAutosummaryToctrees(SphinxTransform):
    """Put them back right after it, so Sphinx's toctree collector sees them as before."""

    default_priority = 101

    def apply(self, **kwargs) -> None:
        for holder in self.document.findall(autosummary_toc):
            holder.extend(holder.__dict__.pop("stashed_children", []))


def owning_module(name: str) -> str:
    """The longest imported module name that ``name`` starts with (``name`` itself for a module)."""
    while name and name not in sys.modules:
        name = name.rpartition(".")[0]
    return name


class ModuleContextAutosummary(Autosummary):
    """``autosummary``, resolving the cross-references of each row's summary in that row's module."""

    def get_table(self, items: list[tuple[str, str, str, str]]) -> list[nodes.Node]:
        table_nodes = super().get_table(items)
        rows = [row for node in table_nodes for row in node.findall(nodes.row)]
        for (_name, _sig, _summary, real_name), row in zip(items, rows):
            module = owning_module(real_name)
            for ref in row.findall(addnodes.pending_xref):
                if module and ref.get("refdomain") == "py":
                    ref["py:module"] = module
        return table_nodes


class PackageModules(ModuleContextAutosummary):
    """``.. package-modules:: modelmix_lite.data``: an autosummary table (no toctree) of the package's modules."""

    required_arguments = 1
    has_content = False
    option_spec = {"nosignatures": Autosummary.option_spec["nosignatures"]}

    def run(self):
        self.content = StringList(public_modules(self.arguments[0]), source=self.get_source_info()[0])
        self.options = {"nosignatures": None}
        return super().run()


def setup(app: Sphinx) -> dict:
    # autosummary ends a summary at the first ". " unless the text before it ends with one of these.
    known = sphinx.ext.autosummary.WELL_KNOWN_ABBREVIATIONS
    sphinx.ext.autosummary.WELL_KNOWN_ABBREVIATIONS = (*known, *(a for a in ABBREVIATIONS if a not in known))
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.autosummary")
    app.add_autodocumenter(ShortValueDataDocumenter, override=True)
    app.add_autodocumenter(ShortValueAttributeDocumenter, override=True)
    # sphinx-external-toc fills exclude_patterns at priority 900.
    app.connect("config-inited", keep_generated_pages, priority=950)
    app.add_transform(HideAutosummaryToctrees)
    app.add_transform(RestoreAutosummaryToctrees)
    app.add_directive("autosummary", ModuleContextAutosummary, override=True)
    app.add_directive("package-modules", PackageModules)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
