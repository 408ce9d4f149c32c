"""One way to reach a person (issue 4): every 转人工 request the understanding recognises opens a
转人工 ticket, routed like the others and carrying the FAQ context; nothing goes to a second queue."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from sqlalchemy import func, inspect, select

from bot.dispatch.events import VoiceMessage
from bot.handlers import tickets as h
from bot.sandbox.mock_wechat import MockWeChat
from bot.sandbox.wechat_server import next_msg_id
from bot.storage.models import UnmatchedQuestion
from tests.conftest import ROOT
from tests.gateway_helpers import running_app
from tests.test_tickets_flow import scan
from tests.test_tickets_grid_pick import assignment_to
from tests.test_tickets_support import (  # noqa: F401 (mock is a fixture)
    LI, OPENIDS, ZHANG, import_and_bind, mock, tickets_config,
)

RESIDENT = "oHandoff000000000001"


def dibao(services: object) -> str:
    """The 低保 item's name as the faq/ files say it today."""
    return services.knowledge.current.items["civil.dibao"].name  # type: ignore[attr-defined]


def ticket_id(text: str | None) -> int:
    m = re.search(r"工单(\d+)", text or "")
    assert m, text
    return int(m.group(1))


async def count(services: object, model: type) -> int:
    async with services.engine.connect() as conn:  # type: ignore[attr-defined]
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def test_any_phrasing_opens_one_routed_ticket_with_the_faq_context(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (_, emu, services):
        await emu.send(scan(RESIDENT, "grid:1"))
        r = await emu.send(emu.text(RESIDENT, "办低保要带啥材料"))
        assert "户口簿" in r.text
        # Not one of the old fixed words: the understanding's hand-off phrases decide.
        r = await emu.send(emu.text(RESIDENT, "我想找个真人问问"))
        tid = ticket_id(r.text)
        assert r.text == h.HUMAN_CREATED.format(id=tid, name="网格员张秀英")
        ticket = await services.tickets.get(tid)
        assert ticket["kind"] == "human" and ticket["grid_id"] == "1" and ticket["worker_id"] == ids[ZHANG]
        assert ticket["content"] == f"居民请求人工服务：我想找个真人问问（刚才在问：{dibao(services)}）"
        call = await assignment_to(mock, OPENIDS[ZHANG], tid)
        assert "转人工" in str(call["body"]["data"]) and f"/t/{tid}?" in call["body"]["url"]
        # Asking again in other words is the same request; a voice message is understood the same way.
        r = await emu.send(emu.text(RESIDENT, "转人工"))
        assert r.text == h.DUPLICATE.format(id=tid, status="待接单")
        r = await emu.send(VoiceMessage(openid=RESIDENT, account="gh", create_time=int(time.time()),
                                        msg_id=next_msg_id(), media_id="V9", format="amr", recognition="帮我转人工嘛"))
        assert r.text == h.DUPLICATE.format(id=tid, status="待接单")
        assert len(await services.tickets.of_resident(RESIDENT)) == 1
        # The worker has it in 我的任务; no "unmatched question" was written, and the old hand-off table
        # (a second queue nobody read) is gone from the schema.
        r = await emu.send(emu.text(OPENIDS[ZHANG], "我的任务"))
        assert f"{tid}号 转人工" in r.text
        assert await count(services, UnmatchedQuestion) == 0
        async with services.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert "handoffs" not in tables and "ticket_takeovers" in tables


async def test_what_it_is_about_and_the_phone_travel_and_other_workers_see_them_masked(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (_, emu, services):
        await emu.send(scan(RESIDENT, "grid:1"))
        r = await emu.send(emu.text(RESIDENT, "转人工，低保的事，我电话13812345678"))
        tid = ticket_id(r.text)
        ticket = await services.tickets.get(tid)
        assert ticket["phone"] == "13812345678" and f"问的是：{dibao(services)}" in ticket["content"]
        assert "法律" not in ticket["content"]  # the phone number is not taken for a question
        # the assignee sees it all; the grid's backup (李建国) sees the ticket with the numbers masked
        r = await emu.send(emu.text(OPENIDS[ZHANG], f"查看 {tid}"))
        assert "电话：13812345678" in r.text and "13812345678" in r.text.split("内容：")[1]
        r = await emu.send(emu.text(OPENIDS[LI], f"查看 {tid}"))
        assert "13812345678" not in r.text and "138****5678" in r.text and "低保的事" in r.text
        # 陈丽 (grid 3) does not see it at all
        r = await emu.send(emu.text(OPENIDS["13800000013"], f"查看 {tid}"))
        assert "不归您处理" in r.text and "138" not in r.text
        assert ids[LI] != ids[ZHANG]


async def test_bare_request_leaves_a_form_but_a_place_named_like_it_does_not(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (_, emu, services):
        await emu.send(scan(RESIDENT, "grid:1"))
        await emu.send(emu.text(RESIDENT, "我要代办低保"))
        r = await emu.send(emu.text(RESIDENT, "人工湖旁3栋2单元"))  # an address, though it has 人工 in it
        assert r.text == h.ASK_PHONE
        r = await emu.send(emu.text(RESIDENT, "我要找人工"))  # a bare request: out of the form, to a person
        tid = ticket_id(r.text)
        ticket = await services.tickets.get(tid)
        assert ticket["kind"] == "human" and ticket["content"].startswith("居民请求人工服务")
        state = await services.conversations.load(RESIDENT, services.dispatcher._clock())  # noqa: SLF001
        assert "tickets" not in state or not state["tickets"].get("form")
        r = await emu.send(emu.text(RESIDENT, "13812345678"))  # no form any more: not taken as the phone
        assert r.text != h.ASK_TIME


def test_staff_list_handoff_tickets_on_the_command_line(db_url: str, tmp_path: Path) -> None:
    import asyncio

    from bot.services.grids import GridDirectory
    from bot.services.outbox import Outbox
    from bot.services.tickets import ItemCatalog, Tickets
    from bot.storage.db import create_engine

    asyncio.run(import_and_bind(db_url))
    config_path = tmp_path / "config.toml"
    config_path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")

    async def seed(done: int | None = None) -> int:
        engine = create_engine(db_url, 2)
        try:
            grids = GridDirectory(engine)
            t = Tickets(engine, Outbox(engine), tickets_config(db_url, None, tmp_path), grids, ItemCatalog(ROOT / "faq"))
            if done is not None:
                zhang = await grids.worker_by_phone(ZHANG)
                await t.act(done, zhang, "accept")
                await t.act(done, zhang, "done", "已电话联系")
                return done
            ticket, _ = await t.create("human", RESIDENT, grid_id="1", content="居民请求人工服务：低保的事",
                                       phone="13812345678", dedup_key="")
            return int(ticket["id"])
        finally:
            await engine.dispose()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", "--config", str(config_path), "faq", *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})

    out = run("handoffs")
    assert out.returncode == 0 and "没有等待联系" in out.stdout, out
    tid = asyncio.run(seed())
    out = run("handoffs")
    assert out.returncode == 0, out
    assert f"工单{tid}" in out.stdout and "待接单" in out.stdout and "张秀英" in out.stdout
    assert "低保的事" in out.stdout and "13812345678" in out.stdout
    asyncio.run(seed(done=tid))
    assert "没有等待联系" in run("handoffs").stdout
    out = run("handoffs", "--all")
    assert f"工单{tid}" in out.stdout and "已办结" in out.stdout
