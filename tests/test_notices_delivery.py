"""Delivery: outbox → sender → mock WeChat API over real HTTP; opt-out mid fan-out; channels; receipts;
43004; and a fan-out killed with SIGKILL and restarted sends everyone exactly one message."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from sqlalchemy import func, select, update

from bot.config import Config
from bot.sandbox.mock_wechat import MockWeChat
from bot.services.residents import Residents
from bot.services.sender import OutboxSender
from bot.storage.db import create_engine
from bot.storage.models import OutboxMessage, Resident
from bot.wechat.api import build_wechat_api
from tests.conftest import ROOT
from tests.test_notices_helpers import (
    Clock,
    add_file,
    add_residents,
    local,
    notice_config,
    outbox_rows,
    run_until_idle,
    service_for,
    write_notice,
)

SIMPLE = 'title = "义诊通知"\ncategory = "义诊"\ntext = "周六义诊"\n'


@pytest.fixture
async def mock() -> AsyncIterator[MockWeChat]:
    server = MockWeChat()
    await server.start()
    yield server
    await server.stop()


def delivery_config(db_url: str, mock: MockWeChat, **notices: Any) -> Config:
    config = notice_config(db_url, **notices)
    from bot.config import replace

    return replace(config, wechat={"api_base_url": mock.base_url, "api_timeout": 2.0})


@asynccontextmanager
async def sender_for(config: Config, clock: Clock) -> AsyncIterator[OutboxSender]:
    engine = create_engine(config.database.url)
    api = build_wechat_api(config, engine)
    try:
        yield OutboxSender(engine, api, config.outbox, clock=clock, rate_per_second=0)
    finally:
        await api.close()
        await engine.dispose()


async def drain(sender: OutboxSender) -> None:
    while await sender.run_once():
        pass


def per_resident(mock: MockWeChat) -> Counter[str]:
    return Counter(m["touser"] for m in mock.messages)


async def test_fan_out_sends_each_resident_one_custom_message(db_url: str, tmp_path: Path, mock: MockWeChat) -> None:
    clock = Clock(local(2030, 6, 10, 10, 0))
    config = delivery_config(db_url, mock, default_channel="custom", chunk_size=4)
    people = [f"o{i:02d}" for i in range(10)]
    async with service_for(config, clock) as svc, sender_for(config, clock) as sender:
        await add_residents(svc, people, clock() - timedelta(hours=47))
        await add_residents(svc, ["oStale"], clock() - timedelta(hours=49))  # outside the 48-hour window
        for o in people + ["oStale"]:
            await svc.subscribe(o, ["义诊"])
        await add_file(svc, write_notice(tmp_path, "yz", SIMPLE))
        await run_until_idle(svc)
        await run_until_idle(svc)  # nothing more to do: no second batch
        await drain(sender)
        assert per_resident(mock) == Counter({o: 1 for o in people})
        assert mock.messages[0]["kind"] == "custom" and "回复「退订 义诊」" in mock.messages[0]["text"]
        report = (await svc.report("yz"))["publish"]
        assert report["targeted"] == 11 and report["sent"] == 10 and report["delivered"] == 10
        assert report["skipped"] == 1 and report["reasons"] == {"skipped: no_channel_48h": 1}


async def test_opt_out_during_a_fan_out_takes_effect_at_once(db_url: str, tmp_path: Path, mock: MockWeChat) -> None:
    clock = Clock(local(2030, 6, 10, 10, 0))
    config = delivery_config(db_url, mock, chunk_size=2, send_rate=1000.0)
    people = [f"o{i}" for i in range(6)]
    async with service_for(config, clock) as svc, sender_for(config, clock) as sender:
        await add_residents(svc, people, clock())
        for o in people:
            await svc.subscribe(o, ["义诊"])
        calls = 0

        async def between_chunks(_seconds: float) -> None:
            """After the first chunk (o0, o1) is queued: o0 and o4 reply 退订 义诊."""
            nonlocal calls
            calls += 1
            if calls == 1:
                await svc.unsubscribe("o0", ["义诊"])
                await svc.unsubscribe("o4", None)

        svc._sleep = between_chunks  # noqa: SLF001 - the pause between chunks is where residents act
        await add_file(svc, write_notice(tmp_path, "yz", SIMPLE))
        await run_until_idle(svc)
        await drain(sender)
        assert sorted(per_resident(mock)) == ["o1", "o2", "o3", "o5"]
        report = (await svc.report("yz"))["publish"]
        assert report["opted_out"] == 2 and report["sent"] == 4 and report["targeted"] == 6


async def test_template_receipts_and_43004_in_the_report(db_url: str, tmp_path: Path, mock: MockWeChat) -> None:
    clock = Clock(local(2030, 6, 10, 10, 0))
    config = delivery_config(db_url, mock, channels="义诊=template")
    people = ["oA", "oB", "oC", "oGone"]
    async with service_for(config, clock) as svc, sender_for(config, clock) as sender:
        await add_residents(svc, people, clock())
        for o in people:
            await svc.subscribe(o, ["义诊"])
        mock.unsubscribe("oGone")
        await add_file(svc, write_notice(tmp_path, "yz", SIMPLE))
        await run_until_idle(svc)
        await drain(sender)
        assert sorted(per_resident(mock)) == ["oA", "oB", "oC"]
        assert {m["kind"] for m in mock.messages} == {"template"}
        rows = {r["openid"]: r for r in await outbox_rows(svc)}
        residents = Residents(svc._engine, clock=clock)  # noqa: SLF001 - as the gateway stores receipts
        await residents.receipt(rows["oA"]["wechat_msgid"], "oA", "success")
        await residents.receipt(rows["oB"]["wechat_msgid"], "oB", "failed:user block")
        report = (await svc.report("yz"))["publish"]
        assert report["sent"] == 3 and report["delivered"] == 1 and report["failed"] == 2
        assert report["reasons"]["receipt: failed:user block"] == 1
        assert any(k.startswith("43004") for k in report["reasons"])
        # 43004 marked the resident: the next notice does not target them
        async with svc._engine.connect() as conn:  # noqa: SLF001
            gone = (await conn.execute(select(Resident.subscribed).where(Resident.openid == "oGone"))).scalar()
        assert gone is False
        await add_file(svc, write_notice(tmp_path, "yz2", SIMPLE))
        await run_until_idle(svc)
        assert "oGone" not in {r["openid"] for r in await outbox_rows(svc) if r["source"].startswith("notice:yz2")}


# ---- crash in the middle of a fan-out -------------------------------------------------------------


def _env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESIDENT_BOT_")}
    env.update({
        "RESIDENT_BOT_DATABASE_URL": db_url,
        "RESIDENT_BOT_SANDBOX_ENABLED": "true",
        "RESIDENT_BOT_NOTICES_SEND_RATE": "400",
        "RESIDENT_BOT_NOTICES_CHUNK_SIZE": "20",
        "RESIDENT_BOT_NOTICES_LEASE_SECONDS": "2",
        "RESIDENT_BOT_NOTICES_DEFAULT_CHANNEL": "custom",
        "RESIDENT_BOT_NOTICES_QUIET_START": "00:00",  # real time drives the subprocess: no quiet hours
        "RESIDENT_BOT_NOTICES_QUIET_END": "00:00",
    })
    return env


def _scheduler(db_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bot", "notices", "run", "--once", "--no-sender"],
                            cwd=ROOT, env=_env(db_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def _queued(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(OutboxMessage))).scalar_one())
    finally:
        await engine.dispose()


async def test_sigkill_mid_fan_out_then_restart_sends_everyone_exactly_once(db_url: str, tmp_path: Path,
                                                                           mock: MockWeChat) -> None:
    people = [f"o{i:04d}" for i in range(600)]
    clock = Clock(local(2030, 1, 1))
    config = delivery_config(db_url, mock, default_channel="custom")
    async with service_for(config, clock) as svc:
        from datetime import datetime, timezone

        clock.set(datetime.now(timezone.utc))
        await add_residents(svc, people, clock())
        for o in people:
            await svc.subscribe(o, ["义诊"])
        await add_file(svc, write_notice(tmp_path, "big", SIMPLE))

    proc = _scheduler(db_url)
    deadline = time.monotonic() + 30
    while await _queued(db_url) < 100:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = await _queued(db_url)
    assert 100 <= killed_at < 600

    await asyncio.sleep(2.2)  # the dead process's lease on the push (2 s) must lapse
    proc = _scheduler(db_url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "big publish: done" in out.decode()
    assert await _queued(db_url) == 600

    sender_clock = Clock(datetime_now())
    async with sender_for(config, sender_clock) as sender:
        await drain(sender)
    counts = per_resident(mock)
    assert set(counts) == set(people) and set(counts.values()) == {1}


def datetime_now():  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


async def test_a_resident_who_wrote_recently_is_inside_the_48_hour_window(db_url: str, tmp_path: Path,
                                                                          mock: MockWeChat) -> None:
    """The window opens with the resident's last message (``residents.last_inbound_at``, recorded by the
    journal) as well as with their last event (``last_seen_at``): a follower who subscribed long ago but
    wrote yesterday gets the custom message."""
    clock = Clock(local(2030, 6, 10, 10, 0))
    config = delivery_config(db_url, mock, default_channel="custom", chunk_size=4)
    async with service_for(config, clock) as svc, sender_for(config, clock) as sender:
        await add_residents(svc, ["oWrote", "oSilent"], clock() - timedelta(days=30))
        async with svc._engine.begin() as conn:  # noqa: SLF001 - what Journal.inbound records
            await conn.execute(update(Resident.__table__).where(Resident.openid == "oWrote")
                               .values(last_inbound_at=clock() - timedelta(hours=20)))
        for o in ("oWrote", "oSilent"):
            await svc.subscribe(o, ["义诊"])
        await add_file(svc, write_notice(tmp_path, "yz", SIMPLE))
        await run_until_idle(svc)
        await drain(sender)
        assert per_resident(mock) == Counter({"oWrote": 1})
        report = (await svc.report("yz"))["publish"]
        assert report["reasons"] == {"skipped: no_channel_48h": 1}
