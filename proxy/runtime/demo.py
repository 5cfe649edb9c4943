"""The demo catalogue that `shadowdiff seed` loads into both apps: one JSON document, read by each app's own seed.

The apps share no code with the tool that tests them, so the catalogue is data (`demo_catalogue.json`), as a
migrated copy of production data would be: same rows, same timestamps on both sides. Without equal timestamps every
product read would differ in `created_at` and bury the real differences.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CATALOGUE_FILE = Path(__file__).with_name("demo_catalogue.json")


def demo_catalogue(product_count: int | None = None) -> dict[str, Any]:
    """The catalogue document (`created_at`, `customers`, `products`), its products cut to `product_count`."""
    document: dict[str, Any] = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
    if product_count is not None:
        document["products"] = document["products"][:product_count]
    return document
