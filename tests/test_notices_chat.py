"""Notices in chat through the real app and a WeChat emulator: 订阅/退订/我的订阅, 报名 with capacity and
waiting list (also under concurrent 报名), the ACTIVITIES menu, and 公示 questions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from bot.dispatch.events import MenuClickEvent
from bot.handlers import notices as texts
from bot.services.announcements import Announcements, load_announcement_file
from bot.services.notices import load_notice_file
from tests.conftest import ROOT, make_config
from tests.gateway_helpers import running_app
from tests.test_notices_helpers import EVENT, Clock, local, service_for, write_notice


def chat_config(db_url: str):  # type: ignore[no-untyped-def]
    return make_config(db_url, notices={"scheduler": False})


async def test_subscribe_unsubscribe_and_my_subscriptions(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(chat_config(db_url), http) as (_, emu, services):
        async def say(text: str, who: str = "oSub") -> str:
            reply = await emu.send(emu.text(who, text))
            assert reply.status == 200 and reply.text
            return reply.text

        assert (await say("我的订阅")) == texts.MY_SUBSCRIPTIONS_NONE
        assert "已订阅：义诊、平安巡防" in await say("订阅 义诊 巡防")
        assert await services.notices.receiving("oSub") == ["平安巡防", "义诊", "停水停电"]
        assert "您现在会收到：平安巡防、义诊" in await say("我的订阅")
        assert "已退订：义诊" in await say("退订 义诊")
        assert "不能退订" in await say("退订 停水停电")
        assert await say("退订 全部") == texts.UNSUBSCRIBED_ALL
        assert await services.notices.receiving("oSub") == ["停水停电"]
        assert "可选类别" in await say("订阅 广场舞")
        assert "可选类别" in await say("订阅")
        # a long question mentioning 订阅 is not a command: it goes on to the FAQ / fallback
        assert "已订阅" not in await say("请问怎么订阅社区的养老保险缴费提醒呢谢谢你们了")


async def test_signup_capacity_waiting_list_and_cancel(db_url: str, http: aiohttp.ClientSession,
                                                       tmp_path: Path) -> None:
    async with running_app(chat_config(db_url), http) as (_, emu, services):
        svc = services.notices
        await svc.add(load_notice_file(write_notice(tmp_path, "yz", EVENT.replace("capacity = 3", "capacity = 2")),
                                       svc.settings))

        async def say(who: str, text: str) -> str:
            return (await emu.send(emu.text(who, text))).text or ""

        first = await say("oA", "报名")
        assert "报名成功" in first and "6月15日（周六）09:00" in first
        assert "已经报过名" in await say("oA", "报名")
        assert "报名成功" in await say("oB", "我要报名")
        assert "候补" in await say("oC", "报名")
        rows = await svc.signups("yz")
        assert [(r["openid"], r["status"]) for r in rows] == [("oA", "confirmed"), ("oB", "confirmed"),
                                                               ("oC", "waiting")]
        assert "已取消报名" in await say("oA", "取消报名")
        rows = await svc.signups("yz")
        assert [(r["openid"], r["status"]) for r in rows] == [("oB", "confirmed"), ("oC", "confirmed")]
        assert (await svc.get("yz"))["taken"] == 2
        # the promoted resident is told through the outbox (a customer-service message)
        from sqlalchemy import select

        from bot.storage.models import OutboxMessage

        async with services.engine.connect() as conn:
            told = (await conn.execute(select(OutboxMessage.openid, OutboxMessage.payload)
                                       .where(OutboxMessage.source == "notices"))).all()
        assert [o for o, _ in told] == ["oC"] and "候补转为正式报名" in told[0][1]["text"]["content"]

        # two activities open: 报名 asks which; 报名 2 picks the second
        await svc.add(load_notice_file(write_notice(tmp_path, "zy", EVENT.replace("义诊", "志愿服务")
                                                    .replace("2030-06-15", "2030-06-20")), svc.settings))
        assert "请回复「报名」加序号" in await say("oD", "报名")
        assert "报名成功" in await say("oD", "报名 2")
        assert [r["openid"] for r in await svc.signups("zy")] == ["oD"]
        assert "没有第 5 个" in await say("oD", "报名 5")


async def test_concurrent_signups_respect_capacity(db_url: str, tmp_path: Path) -> None:
    from tests.test_notices_helpers import notice_config

    clock = Clock(local(2030, 6, 10, 10, 0))
    config = notice_config(db_url)
    async with service_for(config, clock) as svc:
        await svc.add(load_notice_file(write_notice(tmp_path, "yz", EVENT.replace("capacity = 3", "capacity = 5")),
                                       svc.settings))
        people = [f"o{i:02d}" for i in range(20)]
        # each 报名 in its own engine: separate connections, as from separate worker processes
        async def one(openid: str) -> str:
            async with service_for(config, clock) as other:
                return await other.signup("yz", openid)

        results = await asyncio.gather(*(one(o) for o in people))
        assert results.count("confirmed") == 5 and results.count("waiting") == 15
        assert (await svc.get("yz"))["taken"] == 5
        rows = await svc.signups("yz")
        assert sum(r["status"] == "confirmed" for r in rows) == 5 and len(rows) == 20


async def test_activities_menu_and_announcements(db_url: str, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    async with running_app(chat_config(db_url), http) as (_, emu, services):
        svc = services.notices
        await svc.add(load_notice_file(write_notice(tmp_path, "yz", EVENT), svc.settings))
        store = Announcements(services.engine)
        for path in sorted((ROOT / "announcements").glob("*.toml")):
            await store.add(load_announcement_file(path))
        menu = MenuClickEvent(openid="oM", account="gh", create_time=int(time.time()), msg_id=None, key="ACTIVITIES")
        text = (await emu.send(menu)).text or ""
        assert "近期社区活动" in text and "免费义诊" in text and "回复「报名」" in text

        text = (await emu.send(emu.text("oM", "社区开支"))).text or ""
        assert "2025年5月社区公共开支公示" in text and "https://example.org/puziling/gongshi/2025-05" in text
        text = (await emu.send(emu.text("oM", "最近有什么工程？"))).text or ""
        assert text.startswith("工程项目") and "路灯改造" in text and "开支" not in text
        text = (await emu.send(emu.text("oM", "好人好事"))).text or ""
        assert "拾金不昧" in text
        text = (await emu.send(emu.text("oM", "公示"))).text or ""
        assert text.count("·") == 3


def test_complaints_mentioning_a_project_are_not_announcement_requests() -> None:
    """Regression: "楼下工程太吵了" is a report for the tickets feature, not a request for 公示."""
    from bot.dispatch.events import TextMessage

    def event(text: str) -> TextMessage:
        return TextMessage(openid="o", account="gh", create_time=0, msg_id="1", content=text)

    assert not texts.is_notice_text(event("楼下工程太吵了"))
    assert not texts.is_notice_text(event("路灯施工挡路了"))
    assert texts.is_notice_text(event("最近有什么工程"))


async def test_no_signup_and_empty_announcements(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(chat_config(db_url), http) as (_, emu, _services):
        assert (await emu.send(emu.text("oN", "报名"))).text == texts.NO_SIGNUP
        assert (await emu.send(emu.text("oN", "取消报名"))).text == texts.NOTHING_TO_CANCEL
        assert "暂时没有社区开支" in ((await emu.send(emu.text("oN", "社区开支"))).text or "")
