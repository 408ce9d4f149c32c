"""Migrations: one head, up/down/up works, and the migrated schema matches the models exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage.migrate import MIGRATIONS, alembic_config, downgrade, upgrade
from bot.storage.models import Base


def test_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, script.get_heads()


async def _diff(url: str) -> list:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": False}), Base.metadata)
            )
    finally:
        await engine.dispose()


def test_upgrade_downgrade_upgrade_matches_models(migrated_template: str, backend: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else migrated_template
    upgrade(url)
    downgrade(url, "base")
    upgrade(url)
    diff = asyncio.run(_diff(url))
    assert diff == [], diff
    assert MIGRATIONS.is_dir()
