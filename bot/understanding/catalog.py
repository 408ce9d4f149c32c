"""The service catalogue (``service-items.tsv``): the list of ids a FAQ file may use.

Why separate from ``faq/``: the catalogue is maintained by the county; a FAQ file for an id the county
does not know is almost always a typo in the id, which would otherwise silently create an item that no
statistics or ticket routing knows about.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

#: Default location, relative to the project root (the directory holding ``faq/``).
DEFAULT_CATALOG = Path("../shared/catalog/service-items.tsv")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    id: str
    department: str
    name: str
    common_names: tuple[str, ...]


def load_catalog(path: Path) -> dict[str, CatalogEntry]:
    """Read the TSV (``id department name common_names``; names joined by ``;``)."""
    entries: dict[str, CatalogEntry] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            ident = (row.get("id") or "").strip()
            if not ident:
                continue
            names = tuple(n.strip() for n in (row.get("common_names") or "").split(";") if n.strip())
            entries[ident] = CatalogEntry(ident, (row.get("department") or "").strip(),
                                          (row.get("name") or "").strip(), names)
    return entries


def default_catalog_path(faq_dir: Path) -> Path:
    """``../shared/catalog/service-items.tsv`` relative to the project root (parent of ``faq/``)."""
    return (faq_dir.resolve().parent / DEFAULT_CATALOG).resolve()
