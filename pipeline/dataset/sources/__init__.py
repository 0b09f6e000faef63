"""Image sources for the scrape stage, found by name, as networks are: each module here may define one `Source`
subclass (see base.py), selected by `source.kind: <its name>`, with its params model under `source.<its name>`.
Adding a source is adding a module."""

from __future__ import annotations

import importlib
import pkgutil

from pipeline.dataset.sources.base import Source


def _discover() -> dict[str, type[Source]]:
    """Import every module of this package; return each Source subclass defined in one, by name, in module order."""
    found: dict[str, type[Source]] = {}
    for module in pkgutil.iter_modules(__path__):
        namespace = vars(importlib.import_module(f"{__name__}.{module.name}"))
        for value in namespace.values():
            if isinstance(value, type) and issubclass(value, Source) and value is not Source and value.__module__ == namespace["__name__"]:
                found[value.name] = value
    return found


SOURCES: dict[str, type[Source]] = _discover()
