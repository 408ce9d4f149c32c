"""A resident without a grid picks their 小区/楼栋 in chat (issue 4), through the real webhook.

Each flow ends where it matters: the ticket is routed to the chosen grid's worker (or the duty desk)
and the template message reaches the mock WeChat API.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp

from bot.handlers import tickets as h
from bot.sandbox.mock_wechat import MockWeChat
from tests.gateway_helpers import running_app
from tests.test_tickets_support import (  # noqa: F401 (mock is a fixture)
    CHEN, DUTY, LI, OPENIDS, ZHANG, eventually, import_and_bind, mock, tickets_config,
)

RESIDENT = "oNoGridYet0000000001"


def ticket_id(text: str | None) -> int:
    m = re.search(r"工单(\d+)", text or "")
    assert m, text
    return int(m.group(1))


def option_number(listing: str, area: str) -> str:
    """The number the list offers for ``area`` (so the test does not hard-code the list's order)."""
    m = re.search(rf"^(\d+) {re.escape(area)}$", listing, re.M)
    assert m, listing
    return m.group(1)


async def assignment_to(mock: MockWeChat, openid: str, tid: int) -> dict[str, Any]:
    """The template message announcing ticket ``tid`` to ``openid``, once the outbox has sent it."""
    sent = await eventually(lambda: [c for c in mock.calls_to("message/template/send")
                                     if c["body"]["touser"] == openid and f"新工单{tid}" in str(c["body"])])
    return sent[0]


async def test_proxy_without_grid_asks_the_area_and_routes_to_its_worker(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (_, emu, services):
        r = await emu.send(emu.text(RESIDENT, "我要代办低保"))
        assert "户口簿" in r.text and "地址" in r.text
        listing = (await emu.send(emu.text(RESIDENT, "城南路12号"))).text  # names no 小区 we know
        assert listing.startswith("请问您住在哪个小区") and "都不是请回复“0”" in listing
        assert "东河苑" in listing and "农贸市场" in listing  # areas, which residents know, not grid names
        assert await services.tickets.grids.resident(RESIDENT) is None  # nothing joined yet
        r = await emu.send(emu.text(RESIDENT, "99"))  # not on the list
        assert r.text == h.AREA_AGAIN
        r = await emu.send(emu.text(RESIDENT, option_number(listing, "东河苑")))
        assert r.text == h.GRID_SET.format(grid="第二网格", name="李建国") + "\n" + h.ASK_PHONE
        row = await services.tickets.grids.resident(RESIDENT)
        assert row["grid_id"] == "2" and row["via"] == "chat"
        assert (await emu.send(emu.text(RESIDENT, "13812345678"))).text == h.ASK_TIME
        await emu.send(emu.text(RESIDENT, "3"))
        r = await emu.send(emu.text(RESIDENT, "确认"))
        tid = ticket_id(r.text)
        assert "李建国" in r.text
        ticket = await services.tickets.get(tid)
        assert ticket["grid_id"] == "2" and ticket["worker_id"] == ids[LI] and ticket["address"] == "城南路12号"
        call = await assignment_to(mock, OPENIDS[LI], tid)
        assert call["body"]["template_id"] == "TPL_ASSIGN" and f"/t/{tid}?" in call["body"]["url"]
        assert not [c for c in mock.calls_to("message/template/send") if c["body"]["touser"] == OPENIDS[DUTY]]

        # Next time the grid is known: no question about the area.
        r = await emu.send(emu.text(RESIDENT, "代办高龄补贴"))
        assert "地址" in r.text
        r = await emu.send(emu.text(RESIDENT, "是"))
        assert h.ASK_PHONE_AGAIN.split("{")[0] in r.text


async def test_area_by_name_shortlist_and_none_of_these(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (_, emu, services):
        # by name, in a reply to the question (the address named nothing)
        await emu.send(emu.text(RESIDENT, "我要代办低保"))
        await emu.send(emu.text(RESIDENT, "后街3号"))
        r = await emu.send(emu.text(RESIDENT, "我住滨河路小区"))
        assert r.text.startswith(h.GRID_SET.format(grid="第三网格", name="陈丽"))
        await emu.send(emu.text(RESIDENT, "13812345678"))
        await emu.send(emu.text(RESIDENT, "1"))
        tid = ticket_id((await emu.send(emu.text(RESIDENT, "确认"))).text)
        assert (await services.tickets.get(tid))["worker_id"] == ids[CHEN]
        await assignment_to(mock, OPENIDS[CHEN], tid)

        # "我的网格" for someone else: "小区" fits two grids → a shortlist to pick from by number
        other = "oNoGridYet0000000002"
        r = await emu.send(emu.text(other, "我的网格"))
        assert r.text.startswith(h.MY_GRID_NONE) and "普子岭小区1栋" in r.text
        r = await emu.send(emu.text(other, "小区"))
        assert r.text.startswith("找到几个相近的")
        shortlist = re.findall(r"^(\d) (第.网格)", r.text, re.M)
        assert sorted(name for _, name in shortlist) == ["第一网格", "第三网格"]
        r = await emu.send(emu.text(other, next(n for n, name in shortlist if name == "第三网格")))
        assert r.text == h.GRID_SET.format(grid="第三网格", name="陈丽")
        assert (await services.tickets.grids.resident(other))["grid_id"] == "3"
        # "普子岭小区" names three 楼栋 of one grid → joined at once
        r = await emu.send(emu.text(other, "选择网格"))
        assert r.text.startswith(h.MY_GRID.split("「")[0])  # already in a grid: says which
        fourth = "oNoGridYet0000000004"
        await emu.send(emu.text(fourth, "我的网格"))
        r = await emu.send(emu.text(fourth, "普子岭小区"))
        assert r.text == h.GRID_SET.format(grid="第一网格", name="张秀英")
        assert (await services.tickets.grids.resident(fourth))["grid_id"] == "1"

        # a third says "0" (none of these): the 代办 goes to the duty desk, and nobody is joined
        third = "oNoGridYet0000000003"
        await emu.send(emu.text(third, "我要代办低保"))
        await emu.send(emu.text(third, "乡下老家"))
        r = await emu.send(emu.text(third, "0"))
        assert r.text == h.AREA_NONE + "\n" + h.ASK_PHONE
        await emu.send(emu.text(third, "13812345670"))
        await emu.send(emu.text(third, "2"))
        tid = ticket_id((await emu.send(emu.text(third, "确认"))).text)
        ticket = await services.tickets.get(tid)
        assert ticket["grid_id"] is None and ticket["worker_id"] == ids[DUTY]
        assert (await services.tickets.grids.resident(third))["grid_id"] is None
        await assignment_to(mock, OPENIDS[DUTY], tid)


async def test_report_without_grid_asks_the_area_then_routes(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (_, emu, services):
        await emu.send(emu.text(RESIDENT, "报修 楼道灯坏了"))
        listing = (await emu.send(emu.text(RESIDENT, "提交"))).text
        assert "都不是请回复“0”" in listing
        r = await emu.send(emu.text(RESIDENT, "看不懂"))  # first miss: asked again
        assert r.text == h.AREA_AGAIN
        r = await emu.send(emu.text(RESIDENT, option_number(listing, "普子岭小区2栋")))
        tid = ticket_id(r.text)
        assert "张秀英" in r.text
        ticket = await services.tickets.get(tid)
        assert ticket["grid_id"] == "1" and ticket["worker_id"] == ids[ZHANG]
        await assignment_to(mock, OPENIDS[ZHANG], tid)
        assert (await services.tickets.grids.resident(RESIDENT))["via"] == "chat"
