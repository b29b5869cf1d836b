"""The bundled model catalog (``assets/models/``): friendly names -> config.json, no network needed.

``assets/models/index.json`` lists each entry's friendly name, title, hub id, provenance and
``reference_parameters`` (the transformers meta-device parameter count). The config is either the model's
published ``config.json`` (from shared/reference/model-configs) or, for models whose geometry equals a
transformers default config, ``ConfigClass().to_dict()`` with the published values of the few fields where
the default differs (listed in the provenance).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from planner.errors import InputError
from planner.spec import ModelSpec, parse_config

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@dataclass(frozen=True)
class CatalogEntry:
    name: str  # friendly name, e.g. "llama-3.1-8b"
    title: str
    hub_id: str
    file: str
    provenance: str
    reference_parameters: int | None = None  # transformers' meta-device count, pinned in tests


@lru_cache(maxsize=1)
def catalog() -> dict[str, CatalogEntry]:
    """Friendly name -> entry, in index order."""
    index = json.loads((ASSETS / "models" / "index.json").read_text())
    return {
        m["name"]: CatalogEntry(m["name"], m["title"], m["hub_id"], m["file"], m["provenance"],
                                m.get("reference_parameters"))
        for m in index["models"]
    }


def find(name: str) -> CatalogEntry:
    """Catalog entry by friendly name (case-insensitive) or by hub id; InputError lists close names."""
    key = name.strip().lower()
    entries = catalog()
    if key in entries:
        return entries[key]
    for e in entries.values():
        if e.hub_id.lower() == key:
            return e
    import difflib

    close = difflib.get_close_matches(key, list(entries), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise InputError(
        f"unknown model {name!r}.{hint} Run 'headroom models' for the catalog, or use --config / --hub."
    )


def catalog_config(name: str) -> dict:
    """The raw config dict of a catalog model (a fresh copy)."""
    return json.loads((ASSETS / "models" / find(name).file).read_text())


@lru_cache(maxsize=128)
def catalog_spec(name: str) -> ModelSpec:
    """Parsed ModelSpec of a catalog model."""
    e = find(name)
    return parse_config(catalog_config(e.name), name=e.name)
