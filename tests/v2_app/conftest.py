"""Fixtures for V2: its own seeded SQLite file per test, an in-process client with the lifespan entered."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from proxy.runtime.demo import demo_catalogue
from tests.v2_app.support import MakeProduct, Snapshot, product_maker, serve, snapshotter
from v2_app.seed import seed_database
from v2_app.settings import V2Settings


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'v2.db'}"


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeded once per session; each test gets its own copy of the file."""
    path = tmp_path_factory.mktemp("template") / "seeded.db"
    assert seed_database(f"sqlite:///{path}", demo_catalogue()) == 60
    return path


@pytest.fixture
def seeded_url(seeded_template: Path, tmp_path: Path) -> str:
    shutil.copyfile(seeded_template, tmp_path / "v2.db")
    return f"sqlite+aiosqlite:///{tmp_path / 'v2.db'}"


@pytest.fixture
def settings(seeded_url: str) -> V2Settings:
    return V2Settings(database_url=seeded_url)


@pytest.fixture
async def client(settings: V2Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings) as client:
        yield client


@pytest.fixture
def make_product(client: httpx.AsyncClient) -> MakeProduct:
    return product_maker(client)


@pytest.fixture
def snapshot(client: httpx.AsyncClient) -> Snapshot:
    return snapshotter(client)
