"""The demo seed: customers 1..5 and products 1..60 in catalogue order, loaded once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from proxy.runtime.demo import demo_catalogue
from v2_app.seed import seed_database


def test_seed_loads_the_catalogue_once(tmp_path: Path) -> None:
    path = tmp_path / "seed.db"
    catalogue = demo_catalogue()

    assert seed_database(f"sqlite:///{path}", catalogue) == 60
    assert seed_database(f"sqlite:///{path}", catalogue) == 0

    with sqlite3.connect(path) as conn:
        customers = conn.execute("SELECT id, name, email, tier FROM customers ORDER BY id").fetchall()
        products = conn.execute("SELECT id, sku, stock, status FROM products ORDER BY id").fetchall()
    conn.close()
    assert customers == [(i, c["name"], c["email"], c["tier"]) for i, c in enumerate(catalogue["customers"], start=1)]
    assert products == [(i, p["sku"], p["stock"], p["status"]) for i, p in enumerate(catalogue["products"], start=1)]


def test_seed_of_a_smaller_catalogue(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'small.db'}"

    assert seed_database(url, demo_catalogue(product_count=3)) == 3
    assert seed_database(url, demo_catalogue()) == 0
