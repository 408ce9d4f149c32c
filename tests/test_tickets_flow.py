"""Whole ticket flows through the real webhook, the outbox and the mock WeChat API (issue 4)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from bot.dispatch.events import ImageMessage, LocationMessage, MenuClickEvent, ScanEvent, VoiceMessage
from bot.handlers import faq as fh
from bot.handlers import tickets as h
from bot.sandbox.mock_wechat import MockWeChat
from bot.sandbox.wechat_server import next_msg_id
from tests.gateway_helpers import running_app
from tests.test_tickets_support import (
    ADMIN, LI, OPENIDS, ZHANG, eventually, import_and_bind, mock, tickets_config,  # noqa: F401 (fixture)
)

RESIDENT = "oResidentTicket000001"


def scan(openid: str, scene: str) -> ScanEvent:
    return ScanEvent(openid=openid, account="gh_sandbox", create_time=int(time.time()), msg_id=None, scene=scene)


def ticket_id(text: str | None) -> int:
    m = re.search(r"工单(\d+)", text or "")
    assert m, text
    return int(m.group(1))


async def test_proxy_ticket_from_request_to_rating(db_url: str, http: aiohttp.ClientSession, mock: MockWeChat,
                                                   tmp_path: Path) -> None:
    ids = await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        await emu.send(scan(RESIDENT, "grid:1"))
        r = await emu.send(emu.text(RESIDENT, "低保要带啥子材料"))  # answered by the FAQ router
        assert "低保" in r.text
        r = await emu.send(emu.text(RESIDENT, "代办"))  # the FAQ's last item travels into the ticket
        assert "户口簿" in r.text and "地址" in r.text  # the item's checklist, then the address
        r = await emu.send(emu.text(RESIDENT, "普子岭小区2栋3单元501"))
        assert r.text == h.ASK_PHONE
        r = await emu.send(emu.text(RESIDENT, "1380000"))
        assert r.text == h.BAD_PHONE
        r = await emu.send(emu.text(RESIDENT, "13812345678"))
        assert r.text == h.ASK_TIME
        r = await emu.send(emu.text(RESIDENT, "2"))
        assert "今天下午" in r.text and "确认" in r.text
        r = await emu.send(emu.text(RESIDENT, "确认"))
        tid = ticket_id(r.text)
        assert "张秀英" in r.text

        ticket = await services.tickets.get(tid)
        assert ticket["kind"] == "proxy" and ticket["grid_id"] == "1" and ticket["worker_id"] == ids[ZHANG]
        assert any("户口簿" in c for c in ticket["checklist"]) and ticket["time_window"] == "今天下午"

        # The worker gets a template message with a signed link to the ticket page.
        sent = await eventually(lambda: mock.messages_to(OPENIDS[ZHANG]))
        assert sent[0]["kind"] == "template" and f"新工单{tid}" in sent[0]["text"]
        call = [c for c in mock.calls_to("message/template/send") if c["body"]["touser"] == OPENIDS[ZHANG]][0]
        link = call["body"]["url"]
        assert f"/t/{tid}?" in link

        # "我的任务" lists it; accepting by chat notifies the resident.
        r = await emu.send(emu.text(OPENIDS[ZHANG], "我的任务"))
        assert f"{tid}号" in r.text
        r = await emu.send(emu.text(OPENIDS[ZHANG], f"接单 {tid}"))
        assert r.text == h.ACT_OK["accept"].format(id=tid, target="")
        note = await eventually(lambda: mock.messages_to(RESIDENT))
        assert "张秀英" in note[0]["text"] and "接单" in note[0]["text"]
        # A second accept is refused with a clear message, not a crash.
        r = await emu.send(emu.text(OPENIDS[ZHANG], f"接单 {tid}"))
        assert "已经由您接单" in r.text

        # The page shows the ticket to that worker; done from the page.
        path = urlsplit(link)
        url = server.make_url(path.path).with_query(parse_qs(path.query, keep_blank_values=True) and
                                                    {k: v[0] for k, v in parse_qs(path.query).items()})
        async with http.get(url) as resp:
            page = await resp.text()
            assert resp.status == 200 and "13812345678" in page and "户口簿" in page
        async with http.post(url, data={"action": "done", "note": "已收材料并递交民政办"}) as resp:
            assert resp.status == 200 and "已办结" in await resp.text()
        done = await eventually(lambda: [m for m in mock.messages_to(RESIDENT) if "办结" in m["text"]])
        assert "满意" in done[0]["text"]

        r = await emu.send(emu.text(RESIDENT, "满意"))
        assert r.text == h.RATED
        ticket = await services.tickets.get(tid)
        assert ticket["status"] == "rated" and ticket["rating"] == "满意"
        trail = [e["action"] for e in await services.tickets.events(tid)]
        assert trail == ["create", "accept", "done", "rate"]
        r = await emu.send(emu.text(RESIDENT, "我的工单"))
        assert f"{tid}号" in r.text and "已评价" in r.text


async def test_accept_through_signed_page_and_forged_or_expired_links(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        await emu.send(scan(RESIDENT, "grid:2"))
        r = await emu.send(emu.text(RESIDENT, "报修 东河苑门口路灯坏了"))
        r = await emu.send(emu.text(RESIDENT, "提交"))
        tid = ticket_id(r.text)
        t = services.tickets
        params = t.links.sign(tid, ids[LI], t.clock())
        url = server.make_url(f"/t/{tid}")
        async with http.post(url.with_query(params), data={"action": "accept"}) as resp:
            assert resp.status == 200 and "已接单" in await resp.text()
        assert (await t.get(tid))["status"] == "accepted"
        # forged signature, another worker's id with this signature, another ticket: all 403
        forged = {**params, "s": params["s"][:-2] + ("AA" if not params["s"].endswith("AA") else "BB")}
        other_worker = {**params, "w": str(ids[ZHANG])}
        for bad_url in (url.with_query(forged), url.with_query(other_worker),
                        server.make_url(f"/t/{tid + 1}").with_query(params), url):
            async with http.get(bad_url) as resp:
                assert resp.status == 403
                assert "东河苑" not in await resp.text()
        # expired: signed in the past beyond the TTL
        from datetime import timedelta

        old = t.links.sign(tid, ids[LI], t.clock() - timedelta(hours=t.config.tickets.link_ttl_hours + 1))
        async with http.get(url.with_query(old)) as resp:
            assert resp.status == 403
        # a genuine link for a worker outside the grid is refused too
        stranger = t.links.sign(tid, ids[ZHANG], t.clock())
        async with http.get(url.with_query(stranger)) as resp:
            assert resp.status == 403


async def test_report_with_voice_photo_location_downloads_media(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    mock.add_media("MEDIA_1", b"\xff\xd8photo-bytes", "image/jpeg")
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        r = await emu.send(MenuClickEvent(openid=RESIDENT, account="gh", create_time=int(time.time()), msg_id=None,
                                          key="REPORT"))
        assert r.text == h.REPORT_START
        r = await emu.send(VoiceMessage(openid=RESIDENT, account="gh", create_time=int(time.time()),
                                        msg_id=next_msg_id(), media_id="V1", format="amr",
                                        recognition="楼道的灯坏了好几天了"))
        assert r.text == h.REPORT_MORE
        r = await emu.send(ImageMessage(openid=RESIDENT, account="gh", create_time=int(time.time()),
                                        msg_id=next_msg_id(), media_id="MEDIA_1", pic_url="http://x/p.jpg"))
        assert r.text == h.REPORT_PHOTO.format(n=1)
        r = await emu.send(LocationMessage(openid=RESIDENT, account="gh", create_time=int(time.time()),
                                           msg_id=next_msg_id(), latitude=32.2321, longitude=106.2822, scale=15,
                                           label="普子岭小区"))
        assert "普子岭小区" in r.text
        r = await emu.send(emu.text(RESIDENT, "提交"))
        tid = ticket_id(r.text)
        ticket = await services.tickets.get(tid)
        # no scan, no chosen grid: the location inside grid 1's boundary routes it
        assert ticket["grid_id"] == "1" and ticket["worker_id"] == ids[ZHANG]
        assert "楼道的灯坏了" in ticket["content"] and ticket["latitude"] == pytest.approx(32.2321)

        async def saved() -> bool:
            t = await services.tickets.get(tid)
            return bool(t["media"] and t["media"][0].get("path"))

        await eventually(saved)
        ticket = await services.tickets.get(tid)
        assert Path(ticket["media"][0]["path"]).read_bytes() == b"\xff\xd8photo-bytes"
        assert mock.count("media/get") >= 1


async def test_same_request_twice_is_one_ticket_and_me_too_follows(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        await emu.send(scan(RESIDENT, "grid:3"))
        r = await emu.send(emu.text(RESIDENT, "转人工"))
        first = ticket_id(r.text)
        r = await emu.send(emu.text(RESIDENT, "转人工"))
        assert r.text == h.DUPLICATE.format(id=first, status="待接单")

        await emu.send(emu.text(RESIDENT, "报修 滨河路小区垃圾桶满了没人清"))
        r = await emu.send(emu.text(RESIDENT, "提交"))
        report = ticket_id(r.text)
        await emu.send(emu.text(RESIDENT, "报修 滨河路小区垃圾桶满了没人清"))
        r = await emu.send(emu.text(RESIDENT, "提交"))
        assert r.text == h.DUPLICATE.format(id=report, status="待接单")

        neighbour = "oNeighbour00000000001"
        await emu.send(scan(neighbour, "grid:3"))
        await emu.send(emu.text(neighbour, "报修 滨河路小区的垃圾桶满了"))
        r = await emu.send(emu.text(neighbour, "提交"))
        assert f"工单{report}" in r.text and "我也遇到了" in r.text
        r = await emu.send(emu.text(neighbour, "我也遇到了"))
        assert r.text == h.FOLLOWED.format(id=report)
        assert len(await services.tickets.of_resident(neighbour)) == 0

        await emu.send(emu.text(OPENIDS["13800000013"], f"接单 {report}"))
        await emu.send(emu.text(OPENIDS["13800000013"], f"办结 {report} 已联系环卫清运"))
        told = await eventually(lambda: mock.messages_to(neighbour))
        assert f"工单{report}" in told[0]["text"] and "处理完毕" in told[0]["text"]


async def test_worker_binding_and_leave_routes_to_backup(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    from bot.services.grids import GridDirectory, parse_grids_file
    from bot.storage.db import create_engine
    from tests.test_tickets_support import SAMPLE_GRIDS

    engine = create_engine(db_url, 2)
    grids = GridDirectory(engine)
    await grids.import_file(parse_grids_file(SAMPLE_GRIDS))
    zhang = await grids.worker_by_phone(ZHANG)
    code = await grids.create_invite(zhang["id"], 1)
    await engine.dispose()
    worker_openid = "oNewWorker0000000001"
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        r = await emu.send(emu.text(worker_openid, "我的任务"))
        assert r.text == h.NOT_WORKER
        r = await emu.send(emu.text(worker_openid, "绑定 000000" if code != "000000" else "绑定 111111"))
        assert r.text == h.BIND_FAILED
        r = await emu.send(emu.text(worker_openid, f"绑定 {code}"))
        assert r.text == h.BOUND.format(name="张秀英")
        r = await emu.send(emu.text("oSomeoneElse00000001", f"绑定 {code}"))
        assert r.text == h.BIND_FAILED  # one-time
        r = await emu.send(emu.text(worker_openid, "请假"))
        assert r.text == h.LEAVE_ON
        await emu.send(scan(RESIDENT, "grid:1"))
        r = await emu.send(emu.text(RESIDENT, "转人工"))
        assert "李建国" in r.text  # the backup of grid 1
        # a resident with no grid goes to the duty desk
        r = await emu.send(emu.text("oNoGrid0000000000001", "转人工"))
        assert "社区值班台" in r.text


async def test_unsatisfied_reopens_for_admin_and_resident_can_cancel(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        await emu.send(scan(RESIDENT, "grid:1"))
        r = await emu.send(emu.text(RESIDENT, "转人工"))
        tid = ticket_id(r.text)
        zhang = OPENIDS[ZHANG]
        r = await emu.send(emu.text(zhang, f"办结 {tid} 好了"))
        assert r.text == "工单{}现在是「待接单」，不能办结。".format(tid)
        await emu.send(emu.text(zhang, f"接单 {tid}"))
        r = await emu.send(emu.text(zhang, f"办结 {tid}"))
        assert "请写明办理结果" in r.text
        await emu.send(emu.text(zhang, f"办结 {tid} 已电话回复居民"))
        r = await emu.send(emu.text(RESIDENT, "不满意"))
        assert r.text == h.REOPENED.format(id=tid)
        t = await services.tickets.get(tid)
        assert t["status"] == "pending" and t["worker_id"] == ids[ADMIN] and t["reopened"] == 1
        await eventually(lambda: [m for m in mock.messages_to(OPENIDS[ADMIN]) if "不满意" in m["text"]])
        # the admin reassigns to a worker (改派), who now has it
        r = await emu.send(emu.text(OPENIDS[ADMIN], f"改派 {tid} {ids[LI]}"))
        assert "李建国" in r.text
        # the resident cancels it
        r = await emu.send(emu.text("oStranger00000000001", f"撤销 {tid}"))
        assert r.text == h_not_residents(tid)
        r = await emu.send(emu.text(RESIDENT, f"撤销 {tid}"))
        assert r.text == h.CANCELLED.format(id=tid)
        r = await emu.send(emu.text(OPENIDS[LI], f"接单 {tid}"))
        assert "已撤销" in r.text
        actions = [e["action"] for e in await services.tickets.events(tid)]
        assert actions == ["create", "accept", "done", "reopen", "reassign", "cancel"]


def h_not_residents(tid: int) -> str:
    from bot.services.tickets import NOT_RESIDENTS

    return NOT_RESIDENTS.format(id=tid)


async def test_acknowledgements_in_the_proxy_form_are_not_taken_as_answers(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    """好的 is what elderly residents answer to almost anything: it is not an address nor a time, and
    the summary asked again names the item, not its id."""
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        r = await emu.send(emu.text(RESIDENT, "低保要带啥子材料"))
        r = await emu.send(emu.text(RESIDENT, "代办"))
        assert "地址" in r.text
        r = await emu.send(emu.text(RESIDENT, "好的"))
        assert r.text == h.ADDRESS_MISSING
        r = await emu.send(emu.text(RESIDENT, "普子岭小区2栋3单元501"))
        assert r.text == h.ASK_PHONE  # no grids imported: nothing to pick from
        r = await emu.send(emu.text(RESIDENT, "13812345678"))
        r = await emu.send(emu.text(RESIDENT, "好的"))
        assert r.text == h.ASK_TIME
        r = await emu.send(emu.text(RESIDENT, "3"))
        r = await emu.send(emu.text(RESIDENT, "等一下"))
        name = services.knowledge.current.items["civil.dibao"].name
        assert f"业务：{name}" in r.text and "civil.dibao" not in r.text and "明天上午" in r.text
        r = await emu.send(emu.text(RESIDENT, "确认"))
        tid = ticket_id(r.text)
        assert r.text == h.PROXY_CREATED.format(id=tid, name=h.NOBODY)  # no worker: the duty desk, no 网格员 title
        ticket = await services.tickets.get(tid)
        assert ticket["address"] == "普子岭小区2栋3单元501" and ticket["time_window"] == "明天上午"


async def test_thanks_after_an_answer_repeats_the_proxy_offer_once(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, tmp_path: Path
) -> None:
    """"好的" to "回复「代办」请网格员上门收取材料" often means yes: the offer once more, by name; not
    again, and not after the resident took it up."""
    await import_and_bind(db_url)
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        await emu.send(scan(RESIDENT, "grid:1"))
        name = services.knowledge.current.items["civil.dibao"].name
        r = await emu.send(emu.text(RESIDENT, "低保要带啥子材料"))
        assert "代办" in r.text
        r = await emu.send(emu.text(RESIDENT, "好的"))
        assert r.text == fh.THANKS_PROXY.format(name=name)
        r = await emu.send(emu.text(RESIDENT, "谢谢"))
        assert r.text == fh.THANKS
        # taken up, then dropped: no reminder afterwards either
        await emu.send(emu.text(RESIDENT, "低保要带啥子材料"))
        r = await emu.send(emu.text(RESIDENT, "代办"))
        assert name in r.text and "地址" in r.text
        r = await emu.send(emu.text(RESIDENT, "取消"))
        assert r.text == h.FORM_CANCELLED
        r = await emu.send(emu.text(RESIDENT, "谢谢"))
        assert r.text == fh.THANKS
        # an item that needs the resident in person has no offer to repeat
        divorce = services.knowledge.current.items["civil.divorce-registration"]
        assert not divorce.proxy
        r = await emu.send(emu.text(RESIDENT, "离婚登记要带啥"))
        r = await emu.send(emu.text(RESIDENT, "好的"))
        assert r.text == fh.THANKS
