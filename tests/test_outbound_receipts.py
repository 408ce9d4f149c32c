"""Template receipts (TEMPLATESENDJOBFINISH) and re-sends, end to end over real HTTP.

The app serves the webhook (receipts arrive signed, as WeChat sends them, through the emulator); the
test's own outbox sender sends to the mock WeChat API and is driven by the same hand-moved clock as
the app, so backoff is checked without sleeping. The app is built without an outbound URL, so its own
sender stays off and only the test's sender touches the queue. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from bot.app import Services
from bot.clock import as_utc
from bot.config import ConfigError, load_config, replace
from bot.dispatch.events import TemplateSendJobFinishEvent
from bot.sandbox.mock_wechat import MockWeChat
from bot.sandbox.wechat_server import WeChatServerEmulator
from bot.services.notices import NoticeService, NoticeSettings, load_notice_file
from bot.services.outbox import Outbox
from bot.services.sender import OutboxSender
from bot.storage import outbox as queries
from bot.storage.db import create_engine
from bot.storage.models import OutboxMessage, TemplateReceipt
from bot.wechat.api import build_wechat_api
from tests.dialogue_helpers import Turn, send
from tests.gateway_helpers import running_app
from tests.test_notices_helpers import add_residents, notice_config, write_notice
from tests.test_outbound_helpers import SECRET, FakeClock, mock, text  # noqa: F401 - fixture

SYSTEM_FAILED = "failed: system failed"
USER_BLOCK = "failed:user block"
NOTICE = 'title = "义诊通知"\ncategory = "义诊"\ntext = "周六上午便民服务站义诊"\n'
_create_times = itertools.count(1)


@dataclass
class World:
    clock: FakeClock
    emu: WeChatServerEmulator
    app: Services
    notices: NoticeService
    outbox: Outbox
    sender: OutboxSender


@asynccontextmanager
async def world(db_url: str, mock: MockWeChat, http: aiohttp.ClientSession,
                delays: str = "60 300 1800") -> AsyncIterator[World]:
    """The app (webhook only), a notice service and an outbox sender, all on one clock and database."""
    clock = FakeClock()
    config = replace(notice_config(db_url, channels="义诊=template"),
                     wechat={"app_secret": SECRET, "api_base_url": mock.base_url, "api_timeout": 2.0},
                     outbox={"receipt_retry_delays": delays})
    engine = create_engine(config.database.url)
    api = build_wechat_api(config, engine)
    outbox = Outbox(engine, clock=clock.dt)
    try:
        async with running_app(replace(config, wechat={"api_base_url": ""}), http, clock=clock) as (_, emu, app):
            assert app.outbound is None  # the app's own sender must not race the test's
            yield World(clock, emu, app,
                        NoticeService(engine, outbox, NoticeSettings.from_config(config), clock=clock.dt), outbox,
                        OutboxSender(engine, api, config.outbox, clock=clock.dt, rate_per_second=0))
    finally:
        await api.close()
        await engine.dispose()


async def publish(w: World, tmp_path: Path, people: list[str]) -> None:
    """One 义诊 notice, sent as a template message to each of ``people`` (queued, not yet sent)."""
    await add_residents(w.notices, people, w.clock.dt())
    for openid in people:
        await w.notices.subscribe(openid, ["义诊"])
    await w.notices.add(load_notice_file(write_notice(tmp_path, "yz", NOTICE), w.notices.settings))
    while await w.notices.tick():
        pass


async def receipt(w: World, openid: str, msgid: str, status: str) -> Turn:
    """A TEMPLATESENDJOBFINISH event through the webhook; each its own CreateTime (not a WeChat retry)."""
    event = TemplateSendJobFinishEvent(openid=openid, account=w.emu.account,
                                       create_time=int(w.clock()) + next(_create_times), msg_id=None,
                                       template_msg_id=msgid, status=status)
    return await send(w.emu, w.app, w.clock, event)


async def row_of(w: World, openid: str) -> dict[str, Any]:
    T = OutboxMessage.__table__
    async with w.app.engine.connect() as conn:
        rows = (await conn.execute(select(T).where(T.c.openid == openid).order_by(T.c.id))).all()
    assert len(rows) == 1, rows
    return dict(rows[0]._mapping)


async def receipts(w: World) -> list[tuple[str, str]]:
    R = TemplateReceipt.__table__
    async with w.app.engine.connect() as conn:
        return [(r.wechat_msgid, r.status) for r in await conn.execute(select(R).order_by(R.c.id))]


def sends_to(mock: MockWeChat, openid: str) -> int:
    return len([m for m in mock.messages_to(openid) if m["kind"] == "template"])


async def test_system_failed_is_resent_after_the_backoff_and_then_counts_as_delivered(
        db_url: str, tmp_path: Path, mock: MockWeChat, http: aiohttp.ClientSession) -> None:
    async with world(db_url, mock, http) as w:
        await publish(w, tmp_path, ["oA", "oB"])
        assert await w.sender.run_once() == 2
        first = await row_of(w, "oA")
        assert first["status"] == "sent" and first["wechat_msgid"]

        turn = await receipt(w, "oA", first["wechat_msgid"], SYSTEM_FAILED)
        assert (turn.intent, turn.action) == ("template_receipt", "resend")
        await receipt(w, "oB", (await row_of(w, "oB"))["wechat_msgid"], "success")
        report = (await w.notices.report("yz"))["publish"]
        assert (report["pending"], report["sent"], report["delivered"], report["failed"]) == (1, 1, 1, 0)

        w.clock.advance(59)
        assert await w.sender.run_once() == 0  # the re-send waits for its backoff
        assert sends_to(mock, "oA") == 1
        w.clock.advance(1)
        assert await w.sender.run_once() == 1
        assert sends_to(mock, "oA") == 2 and sends_to(mock, "oB") == 1

        again = await row_of(w, "oA")
        assert again["status"] == "sent" and again["receipt_retries"] == 1 and again["attempts"] == 2
        assert again["wechat_msgid"] != first["wechat_msgid"]
        assert (await receipt(w, "oA", again["wechat_msgid"], "success")).action == "recorded"
        # A late copy of the first receipt matches nothing any more: no third message.
        assert (await receipt(w, "oA", first["wechat_msgid"], SYSTEM_FAILED)).action == "recorded"
        w.clock.advance(3600)
        assert await w.sender.run_once() == 0

    assert sends_to(mock, "oA") == 2
    report = (await w.notices.report("yz"))["publish"]
    assert report["queued"] == 2 and report["sent"] == 2 and report["delivered"] == 2
    assert report["failed"] == 0 and report["pending"] == 0 and report["reasons"] == {}


async def test_user_block_is_recorded_and_never_resent(db_url: str, tmp_path: Path, mock: MockWeChat,
                                                       http: aiohttp.ClientSession) -> None:
    async with world(db_url, mock, http) as w:
        await publish(w, tmp_path, ["oA"])
        await w.sender.run_once()
        msgid = (await row_of(w, "oA"))["wechat_msgid"]
        assert (await receipt(w, "oA", msgid, USER_BLOCK)).action == "recorded"
        for _ in range(3):
            w.clock.advance(3600)
            assert await w.sender.run_once() == 0
        assert await receipts(w) == [(msgid, USER_BLOCK)]
        assert (await row_of(w, "oA"))["receipt_retries"] == 0
        report = (await w.notices.report("yz"))["publish"]
    assert sends_to(mock, "oA") == 1
    assert (report["sent"], report["delivered"], report["failed"]) == (1, 0, 1)
    assert report["reasons"] == {f"receipt: {USER_BLOCK}": 1}


async def test_a_duplicate_system_failed_receipt_schedules_one_resend(
        db_url: str, tmp_path: Path, mock: MockWeChat, http: aiohttp.ClientSession) -> None:
    async with world(db_url, mock, http) as w:
        await publish(w, tmp_path, ["oA"])
        await w.sender.run_once()
        msgid = (await row_of(w, "oA"))["wechat_msgid"]
        turns = await asyncio.gather(receipt(w, "oA", msgid, SYSTEM_FAILED), receipt(w, "oA", msgid, SYSTEM_FAILED))
        assert sorted(t.action for t in turns) == ["recorded", "resend"]
        assert await receipts(w) == [(msgid, SYSTEM_FAILED)] * 2  # both stored, one acted upon
        assert (await receipt(w, "oA", msgid, SYSTEM_FAILED)).action == "recorded"  # a third, later
        for _ in range(4):
            w.clock.advance(60)
            await w.sender.run_once()
        row = await row_of(w, "oA")
    assert sends_to(mock, "oA") == 2
    assert row["receipt_retries"] == 1 and row["status"] == "sent"


async def test_resends_used_up_leave_the_message_failed_with_the_reason(
        db_url: str, tmp_path: Path, mock: MockWeChat, http: aiohttp.ClientSession) -> None:
    async with world(db_url, mock, http, delays="60 300") as w:
        await publish(w, tmp_path, ["oA"])
        await w.sender.run_once()
        actions = []
        for wait in (60, 300):
            row = await row_of(w, "oA")
            actions.append((await receipt(w, "oA", row["wechat_msgid"], SYSTEM_FAILED)).action)
            w.clock.advance(wait - 1)
            assert await w.sender.run_once() == 0
            w.clock.advance(1)
            assert await w.sender.run_once() == 1
        last = await row_of(w, "oA")
        actions.append((await receipt(w, "oA", last["wechat_msgid"], SYSTEM_FAILED)).action)
        w.clock.advance(3600)
        assert await w.sender.run_once() == 0
        tries = [a["at"] for a in await _attempts(w, last["id"])]
        report = (await w.notices.report("yz"))["publish"]
    assert actions == ["resend", "resend", "recorded"]
    assert sends_to(mock, "oA") == 3 and last["receipt_retries"] == 2
    assert [(b - a).total_seconds() for a, b in zip(tries, tries[1:])] == [60.0, 300.0]
    assert (report["queued"], report["sent"], report["delivered"], report["failed"]) == (1, 1, 0, 1)
    assert report["reasons"] == {f"receipt: {SYSTEM_FAILED}": 1}


async def _attempts(w: World, outbox_id: int) -> list[dict[str, Any]]:
    async with w.app.engine.connect() as conn:
        return [{**a, "at": as_utc(a["at"])} for a in await queries.attempts_of(conn, outbox_id)]


async def test_a_receipt_for_an_unknown_msgid_or_another_resident_is_recorded_and_harmless(
        db_url: str, tmp_path: Path, mock: MockWeChat, http: aiohttp.ClientSession) -> None:
    async with world(db_url, mock, http) as w:
        await publish(w, tmp_path, ["oA"])
        await w.sender.run_once()
        msgid = (await row_of(w, "oA"))["wechat_msgid"]
        assert (await receipt(w, "oStranger", "424242", SYSTEM_FAILED)).action == "recorded"
        # The right msgid from the wrong resident does not move oA's message either.
        assert (await receipt(w, "oStranger", msgid, SYSTEM_FAILED)).action == "recorded"
        w.clock.advance(3600)
        assert await w.sender.run_once() == 0
        assert await receipts(w) == [("424242", SYSTEM_FAILED), (msgid, SYSTEM_FAILED)]
        row = await row_of(w, "oA")
    assert row["status"] == "sent" and row["receipt_retries"] == 0
    assert sends_to(mock, "oA") == 1 and mock.messages_to("oStranger") == []


async def test_a_receipt_that_beats_the_senders_commit_still_gets_the_message_resent(
        db_url: str, tmp_path: Path, mock: MockWeChat, http: aiohttp.ClientSession) -> None:
    """WeChat may call the webhook before the sender has recorded the msgid: the sender catches it."""
    async with world(db_url, mock, http) as w:
        await publish(w, tmp_path, ["oA"])
        first_msgid = "1000001"  # the mock numbers template messages from 1_000_001
        assert (await receipt(w, "oA", first_msgid, SYSTEM_FAILED)).action == "recorded"  # no row has it yet
        assert await w.sender.run_once() == 1
        row = await row_of(w, "oA")
        assert row["wechat_msgid"] == first_msgid
        assert row["status"] == "pending" and row["receipt_retries"] == 1
        w.clock.advance(60)
        assert await w.sender.run_once() == 1
    assert sends_to(mock, "oA") == 2


async def test_a_message_waiting_for_its_resend_does_not_hold_back_the_residents_next_one(
        db_url: str, tmp_path: Path, mock: MockWeChat, http: aiohttp.ClientSession) -> None:
    async with world(db_url, mock, http) as w:
        await publish(w, tmp_path, ["oA"])
        await w.sender.run_once()
        msgid = (await row_of(w, "oA"))["wechat_msgid"]
        assert (await receipt(w, "oA", msgid, SYSTEM_FAILED)).action == "resend"
        await w.outbox.enqueue("ticket:1:accepted", "template", {"template_id": "TPL-T", "data": {
            "first": {"value": "您的工单已受理"}}}, openid="oA", source="tickets")
        assert await w.sender.run_once() == 1  # the ticket message goes now, not in 60 s
        assert [m["text"] for m in mock.messages_to("oA")][-1] == "您的工单已受理"
        w.clock.advance(60)
        assert await w.sender.run_once() == 1
    assert sends_to(mock, "oA") == 3


async def test_one_round_with_mixed_outcomes_records_each_row(db_url: str, mock: MockWeChat) -> None:
    """The group commit writes sent, retry, failed and 43004 results of one round, each to its own row."""
    clock = FakeClock()
    config = replace(notice_config(db_url), wechat={"app_secret": SECRET, "api_base_url": mock.base_url,
                                                    "api_timeout": 2.0})
    engine = create_engine(config.database.url)
    api = build_wechat_api(config, engine)
    try:
        outbox = Outbox(engine, clock=clock.dt)
        sender = OutboxSender(engine, api, config.outbox, clock=clock.dt, rate_per_second=0)
        mock.unsubscribe("o3")
        mock.fail("message/custom/send", 45015, -1)
        await outbox.enqueue_many([{"idempotency_key": f"k{i}", "kind": "custom", "payload": text(f"第{i}条"),
                                    "openid": f"o{i}"} for i in range(12)])
        assert await sender.run_once() == 12
        T = OutboxMessage.__table__
        async with engine.connect() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(select(T).order_by(T.c.id))]
            tries = [len(await queries.attempts_of(conn, r["id"])) for r in rows]
    finally:
        await api.close()
        await engine.dispose()
    # Sends run concurrently, so which rows draw the two injected faults is not fixed: o3 may draw one
    # before the mock gets to answer 43004 for it.
    by_openid = {r["openid"]: (r["status"], r["errcode"]) for r in rows}
    faulted = sorted(s for s in by_openid.values() if s[1] in (45015, -1))
    assert faulted == [("failed", 45015), ("pending", -1)]
    o3_unsubscribed = by_openid["o3"] == ("failed", 43004)
    assert o3_unsubscribed or by_openid["o3"] in faulted
    sent = [o for o, s in by_openid.items() if s == ("sent", 0)]
    assert len(sent) == 12 - 2 - int(o3_unsubscribed) == len(mock.messages)
    assert tries == [1] * 12 and all(r["lease_owner"] is None for r in rows)


def test_receipt_retry_delays_are_checked_at_start_up() -> None:
    assert load_config(None, env={}).outbox.receipt_delays == (timedelta(minutes=1), timedelta(minutes=5),
                                                               timedelta(minutes=30))
    assert load_config(None, env={"RESIDENT_BOT_OUTBOX_RECEIPT_RETRY_DELAYS": ""}).outbox.receipt_delays == ()
    for bad in ("1m 5m", "60 -1", "nan"):
        with pytest.raises(ConfigError, match="outbox.receipt_retry_delays"):
            load_config(None, env={"RESIDENT_BOT_OUTBOX_RECEIPT_RETRY_DELAYS": bad})
