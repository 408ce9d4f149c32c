"""Documents in custody (代办, issue 4), end to end: the worker records 取件/交件/还件 in chat or on the
signed page (a list or a photo), the resident is told through the outbox and the mock WeChat API and
confirms in chat, every step is in the audit trail, and "我的工单" says where the documents are."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp.test_utils import TestServer
from yarl import URL

from bot.handlers import tickets as h
from bot.sandbox.mock_wechat import MockWeChat
from bot.services.tickets import CUSTODY_NO_PICKUP, CUSTODY_PROXY_ONLY, NOT_AN_IMAGE
from tests.gateway_helpers import running_app
from tests.test_tickets_flow import scan
from tests.test_tickets_grid_pick import assignment_to
from tests.test_tickets_support import (  # noqa: F401 (mock is a fixture)
    OPENIDS, ZHANG, eventually, import_and_bind, mock, tickets_config,
)

RESIDENT = "oCustody000000000001"
LIST = "户口簿原件、身份证复印件2份"


def ticket_id(text: str | None) -> int:
    m = re.search(r"工单(\d+)", text or "")
    assert m, text
    return int(m.group(1))


def png(width: int = 2, height: int = 2) -> bytes:
    """A small valid PNG (grey pixels), built by hand so the test needs no image library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def page_url(server: TestServer, link: str) -> URL:
    """The worker's link from the template message, on the test server's address."""
    parts = urlsplit(link)
    return server.make_url(parts.path).with_query({k: v[0] for k, v in parse_qs(parts.query).items()})


def texts_to(mock: MockWeChat, openid: str, needle: str) -> Any:
    return lambda: [m["text"] for m in mock.messages_to(openid) if needle in m["text"]]


async def open_proxy_ticket(emu: Any) -> int:
    await emu.send(scan(RESIDENT, "grid:1"))
    await emu.send(emu.text(RESIDENT, "我要代办低保"))
    await emu.send(emu.text(RESIDENT, "普子岭小区2栋3单元501"))
    await emu.send(emu.text(RESIDENT, "13812345678"))
    await emu.send(emu.text(RESIDENT, "3"))
    return ticket_id((await emu.send(emu.text(RESIDENT, "确认"))).text)


async def test_pickup_handin_return_confirmed_in_chat_with_trail_and_whereabouts(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    zhang = OPENIDS[ZHANG]
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        tid = await open_proxy_ticket(emu)
        url = page_url(server, (await assignment_to(mock, zhang, tid))["body"]["url"])
        r = await emu.send(emu.text(RESIDENT, "我的工单"))
        assert h.MY_TICKET_WAITING.format(time="明天上午") in r.text

        await emu.send(emu.text(zhang, f"接单 {tid}"))
        await emu.send(emu.text(zhang, f"开始 {tid}"))
        r = await emu.send(emu.text(zhang, f"交件 {tid} 已交便民服务站"))  # nothing picked up yet
        assert r.text == CUSTODY_NO_PICKUP.format(id=tid)
        r = await emu.send(emu.text(zhang, f"取件 {tid}"))  # no list
        assert "请写明材料清单" in r.text

        # 取件 by chat, with the list → the resident is told and confirms with a bare "确认"
        r = await emu.send(emu.text(zhang, f"取件 {tid} {LIST}"))
        assert r.text == h.ACT_OK["pickup"].format(id=tid, target="")
        told = await eventually(texts_to(mock, RESIDENT, "已取件"))
        assert LIST in told[0] and f"确认 {tid}" in told[0]
        r = await emu.send(emu.text(RESIDENT, "我的工单"))
        assert "材料：在网格员张秀英手里" in r.text and LIST in r.text and f"请核对后回复“确认 {tid}”" in r.text
        r = await emu.send(emu.text(RESIDENT, "确认"))
        assert r.text == h.CONFIRMED.format(what="取件", id=tid)
        await eventually(texts_to(mock, zhang, f"居民已确认取件（工单{tid}）"))
        r = await emu.send(emu.text(RESIDENT, f"确认 {tid}"))
        assert r.text == f"工单{tid}的取件您已经确认过了。"
        r = await emu.send(emu.text(RESIDENT, "我的工单"))
        assert "您已确认" in r.text

        # 交件 on the signed page → told, confirmed with the number
        async with http.post(url, data={"action": "handin", "note": "已交便民服务站李老师"}) as resp:
            body = await resp.text()
            assert resp.status == 200 and "已登记交件" in body and "已交到便民服务站" in body
        await eventually(texts_to(mock, RESIDENT, "已交到便民服务站：已交便民服务站李老师"))
        r = await emu.send(emu.text(RESIDENT, f"确认 {tid}"))
        assert r.text == h.CONFIRMED.format(what="交到便民服务站", id=tid)

        await emu.send(emu.text(zhang, f"办结 {tid} 已受理，等审批"))
        # 还件 on the page with a photo of the returned originals; a file that is no image is refused
        bad = aiohttp.FormData({"action": "giveback", "note": "户口簿原件已当面归还"})
        bad.add_field("photo", b"#!/bin/sh\necho hi\n", filename="x.png", content_type="image/png")
        async with http.post(url, data=bad) as resp:
            assert resp.status == 200 and NOT_AN_IMAGE in await resp.text()
        assert [e["action"] for e in await services.tickets.events(tid)].count("giveback") == 0
        form = aiohttp.FormData({"action": "giveback", "note": "户口簿原件已当面归还"})
        form.add_field("photo", png(), filename="back.png", content_type="image/png")
        async with http.post(url, data=form) as resp:
            body = await resp.text()
            assert resp.status == 200 and "已登记还件" in body and "照片（1张）" in body
        ticket = await services.tickets.get(tid)
        [photo] = [m for m in ticket["media"] if m.get("step") == "giveback"]
        assert Path(photo["path"]).read_bytes() == png() and photo["by"] == f"worker:{ids[ZHANG]}"
        photo_url = url.with_path(f"/t/{tid}/photo/0").with_query(url.query)
        async with http.get(photo_url) as resp:
            assert resp.status == 200 and resp.content_type == "image/png" and await resp.read() == png()
        forged = photo_url.update_query(s="AAAAAAAAAAAAAAAAAAAAAAAA")
        async with http.get(forged) as resp:
            assert resp.status == 403
        await eventually(texts_to(mock, RESIDENT, "归还原件：户口簿原件已当面归还"))
        r = await emu.send(emu.text(RESIDENT, "确认了"))
        assert r.text == h.CONFIRMED.format(what="归还原件", id=tid)
        r = await emu.send(emu.text(RESIDENT, "我的工单"))
        assert "材料：原件已归还" in r.text and "您已确认" in r.text

        trail = await services.tickets.events(tid)
        assert [e["action"] for e in trail] == ["create", "accept", "start", "pickup", "confirm", "handin", "confirm",
                                                "done", "giveback", "confirm"]
        steps = {e["id"]: e for e in trail}
        for e in trail:
            if e["action"] == "confirm":  # each confirmation names the step it confirms
                confirmed = steps[e["data"]["event"]]
                assert confirmed["action"] == e["data"]["step"] and confirmed["id"] < e["id"]
                assert e["actor"] == f"resident:{RESIDENT}"
        assert trail[3]["note"] == LIST and trail[3]["actor"] == f"worker:{ids[ZHANG]}"


async def test_custody_only_for_proxy_and_nothing_to_confirm_falls_through(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    await import_and_bind(db_url)
    zhang = OPENIDS[ZHANG]
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (_, emu, services):
        await emu.send(scan(RESIDENT, "grid:1"))
        await emu.send(emu.text(RESIDENT, "报修 普子岭小区1栋楼道灯坏了"))
        tid = ticket_id((await emu.send(emu.text(RESIDENT, "提交"))).text)
        await emu.send(emu.text(zhang, f"接单 {tid}"))
        r = await emu.send(emu.text(zhang, f"取件 {tid} 灯泡"))
        assert r.text == CUSTODY_PROXY_ONLY.format(id=tid)
        r = await emu.send(emu.text(RESIDENT, f"确认 {tid}"))
        assert r.text == f"工单{tid}还没有需要您确认的材料交接。"
        r = await emu.send(emu.text(RESIDENT, "确认"))  # nothing waits for a confirmation: not a ticket reply
        assert not (r.text or "").startswith("已确认")
        assert [e["action"] for e in await services.tickets.events(tid)] == ["create", "accept"]
