"""A ticket's photos are never lost to a race (issue 4): additions at the same moment, and an addition
while a WeChat download is in flight, all end up in the ticket's media list — SQLite and PostgreSQL.

Regression: ``add_media`` and ``download_media`` both read the list, changed it and wrote it back
without a lock, so the second writer silently dropped what the first had added.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from bot.sandbox.mock_wechat import MockWeChat
from tests.gateway_helpers import running_app
from tests.test_tickets_support import eventually, import_and_bind, mock, tickets_config  # noqa: F401

RESIDENT = "oMediaRace0000000001"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 40


async def test_concurrent_additions_are_all_kept(db_url: str, http: aiohttp.ClientSession, mock: MockWeChat,
                                                 tmp_path: Path) -> None:
    await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (_, _emu, services):
        t = services.tickets
        ticket, _ = await t.create("report", RESIDENT, grid_id="1", content="路灯坏了")
        entries = [{"type": "image", "by": f"worker:{n}", "path": f"/nowhere/{n}.png", "size": n} for n in range(8)]
        await asyncio.gather(*(t.add_media(ticket["id"], [e]) for e in entries))
        media = (await t.get(ticket["id"]))["media"]
        assert sorted(m["by"] for m in media) == sorted(e["by"] for e in entries)
        # Photos a worker takes on the page at the same moment: both kept, both files written.
        saved = await asyncio.gather(t.save_photo(ticket["id"], 1, PNG + b"a"),
                                     t.save_photo(ticket["id"], 2, PNG + b"b"))
        media = (await t.get(ticket["id"]))["media"]
        assert len(media) == 10 and all(s in media for s in saved)
        assert all(Path(s["path"]).read_bytes().startswith(PNG) for s in saved)


async def test_an_addition_during_a_download_is_kept_and_the_download_recorded(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    await import_and_bind(db_url)
    mock.add_media("SLOW_1", PNG, "image/png")
    mock.delay("media/get", 0.5)  # the download is in flight while the worker adds a photo
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (_, _emu, services):
        t = services.tickets
        ticket, _ = await t.create("report", RESIDENT, grid_id="1", content="井盖松了",
                                   media=[{"type": "image", "media_id": "SLOW_1"}])  # starts the download
        await eventually(lambda: mock.count("media/get"))
        await t.save_photo(ticket["id"], 7, PNG + b"worker")
        await asyncio.gather(*t.tasks)  # the download finishes after the addition
        media = (await t.get(ticket["id"]))["media"]
        assert len(media) == 2, media
        downloaded = next(m for m in media if m.get("media_id") == "SLOW_1")
        assert downloaded["size"] == len(PNG) and Path(downloaded["path"]).read_bytes() == PNG
        assert any(m.get("by") == "worker:7" for m in media)
        assert mock.count("media/get") == 1
