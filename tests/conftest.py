"""Shared fixtures: a migrated database per backend, the app on a real loopback port, the emulator.

Every test that takes ``db_url`` runs once on SQLite and, when ``TEST_DATABASE_URL`` is set (CI sets
it), once more on PostgreSQL. PostgreSQL gets a fresh database per test session (so parallel runs on
one server never collide) and its tables are emptied before each test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import Config, load_config, replace
from bot.storage.migrate import upgrade
from bot.storage.models import Base
from bot.understanding.knowledge import Knowledge
from tests.test_understanding_helpers import shipped_knowledge

#: The ``browser`` fixture (headless Debian Chromium) for the browser tests.
pytest_plugins = ["tests.browser_helpers"]

ROOT = Path(__file__).resolve().parent.parent
TEST_TOKEN = "test-token-123"
TEST_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TEST_APPID = "wx0123456789abcdef"


def backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get("TEST_DATABASE_URL") else ["sqlite"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): run only on these database backends")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = backends()
        marker = metafunc.definition.get_closest_marker("backends")
        if marker:
            chosen = [b for b in chosen if b in marker.args]
        metafunc.parametrize("backend", chosen, scope="session")


async def _create_pg_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()


async def _drop_pg_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[str]:
    """A migrated database for the backend: a template file for SQLite, a fresh database for PostgreSQL."""
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("db") / "template.db"
        upgrade(f"sqlite+aiosqlite:///{path}")
        yield str(path)
        return
    admin = os.environ["TEST_DATABASE_URL"]
    name = f"rb_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_create_pg_database(admin, name))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    asyncio.run(_drop_pg_database(admin, name))


async def _truncate(url: str) -> None:
    engine = create_async_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture
def db_url(migrated_template: str, backend: str, tmp_path: Path) -> str:
    """A clean, migrated database URL for one test."""
    if backend == "sqlite":
        path = tmp_path / "bot.db"
        shutil.copy(migrated_template, path)
        return f"sqlite+aiosqlite:///{path}"
    asyncio.run(_truncate(migrated_template))
    return migrated_template


def make_config(db_url: str, mode: str = "plain", **sections: dict[str, Any]) -> Config:
    """A test config: sandbox, our token/key, the given database; more keys per section via kwargs."""
    base = load_config(None, env={})
    wechat = {"token": TEST_TOKEN, "mode": mode, "app_id": TEST_APPID, "encoding_aes_key": TEST_AES_KEY,
              **sections.pop("wechat", {})}
    app = {"faq_dir": str(ROOT / "faq"), "intents_dir": str(ROOT / "intents"),
           "catalog_file": str(ROOT.parent / "shared" / "catalog" / "service-items.tsv"), **sections.pop("app", {})}
    return replace(base, wechat=wechat, database={"url": db_url}, sandbox={"enabled": "true"}, app=app, **sections)


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    """The shipped faq/ and intents/, loaded once (see ``shipped_knowledge``). A module that needs a
    tree of its own defines a ``knowledge`` fixture of its own, which takes precedence."""
    return shipped_knowledge()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(autouse=True)
async def _no_task_left_behind(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail loudly (instead of hanging at loop close) when a test leaves tasks running."""
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0)
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t not in before and t is not current and not t.done()]
    if left:
        for task in left:
            task.cancel()
        done, pending = await asyncio.wait(left, timeout=5)
        names = ", ".join(f"{t.get_name()}={t.get_coro()!r}" for t in left)
        if pending:
            raise AssertionError(f"tasks ignore cancellation after {request.node.name}: {names}")
