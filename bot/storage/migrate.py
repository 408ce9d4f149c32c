"""Schema upgrades through Alembic, callable from the CLI, ``serve`` and tests.

Alembic's env runs its own event loop, so from async code call :func:`upgrade_async`, which runs it in
a worker thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

from bot.storage.db import sqlite_path

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
    _use_wal(url)


def _use_wal(url: str) -> None:
    """Leave a SQLite database in WAL mode, the mode every connection of the app asks for on connect.

    Why here too: the mode is kept in the file, and switching a rollback-journal file to WAL needs an
    exclusive lock. Migrations leave the file in rollback mode, so the first connections of ``serve``'s
    workers all tried the switch at once, and SQLite answered one of them "database is locked" at once
    (two would-be switchers would deadlock, so the busy timeout does not apply): a traceback from a
    worker's first ticket poll or notice tick. Switched here, before any worker starts, their
    ``PRAGMA journal_mode=WAL`` finds nothing to change.
    """
    path = sqlite_path(url)
    if path is None:
        return
    with closing(sqlite3.connect(path, timeout=10)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, url, revision)
