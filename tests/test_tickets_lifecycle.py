"""The ticket state machine, concurrency, timers (督办) with a controllable clock, working days, report."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.services.grids import GridDirectory
from bot.services.outbox import Outbox
from bot.services.tickets import ItemCatalog, TicketError, Tickets, WorkCalendar
from bot.storage.db import create_engine
from bot.storage.models import OutboxMessage
from tests.conftest import ROOT
from tests.test_tickets_support import ADMIN, CHEN, LI, OPENIDS, ZHANG, Clock, import_and_bind, tickets_config

TZ = ZoneInfo("Asia/Shanghai")
RESIDENT = "oResidentLife00000001"
# Tuesday 2025-06-10 10:00 local: a plain working day.
TUESDAY_10 = datetime(2025, 6, 10, 10, 0, tzinfo=TZ).astimezone(timezone.utc)


def make_tickets(db_url: str, tmp_path: Path, clock: Clock, **cfg: Any) -> Tickets:
    config = tickets_config(db_url, None, tmp_path, **cfg)
    engine = create_engine(db_url, 5)
    return Tickets(engine, Outbox(engine, clock=clock), config, GridDirectory(engine, clock),
                   ItemCatalog(ROOT / "faq"), clock=clock)


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[Tickets, Clock, dict[str, int]]]:
    ids = await import_and_bind(db_url)
    clock = Clock(TUESDAY_10)
    tickets = make_tickets(db_url, tmp_path, clock)
    yield tickets, clock, ids
    await tickets.engine.dispose()


async def worker(t: Tickets, phone: str) -> dict[str, Any]:
    w = await t.grids.worker_by_phone(phone)
    assert w is not None
    return w


async def outbox_texts(t: Tickets, openid: str) -> list[str]:
    async with t.engine.connect() as conn:
        rows = (await conn.execute(select(OutboxMessage.payload).where(OutboxMessage.openid == openid)
                                   .order_by(OutboxMessage.id))).scalars().all()
    return [str(p) for p in rows]


async def test_concurrent_accept_exactly_one_wins(world: tuple[Tickets, Clock, dict[str, int]]) -> None:
    t, _, ids = world
    zhang, li = await worker(t, ZHANG), await worker(t, LI)  # worker and backup of grid 1
    for _ in range(5):
        ticket, _ = await t.create("human", RESIDENT + str(_), grid_id="1", content=f"人工{_}")
        results = await asyncio.gather(t.act(ticket["id"], zhang, "accept"), t.act(ticket["id"], li, "accept"),
                                       return_exceptions=True)
        wins = [r for r in results if isinstance(r, dict)]
        losses = [r for r in results if isinstance(r, TicketError)]
        assert len(wins) == 1 and len(losses) == 1, results
        final = await t.get(ticket["id"])
        assert final["status"] == "accepted" and final["worker_id"] == wins[0]["worker_id"]
        assert "已经由" in str(losses[0])
        accepts = [e for e in await t.events(ticket["id"]) if e["action"] == "accept"]
        assert len(accepts) == 1


async def test_impossible_transitions_are_refused_clearly(world: tuple[Tickets, Clock, dict[str, int]]) -> None:
    t, _, ids = world
    zhang, chen, admin = await worker(t, ZHANG), await worker(t, CHEN), await worker(t, ADMIN)
    ticket, _ = await t.create("report", RESIDENT, grid_id="1", content="路灯坏了")
    tid = ticket["id"]
    with pytest.raises(TicketError, match="「待接单」，不能办结"):
        await t.act(tid, zhang, "done", "好了")
    with pytest.raises(TicketError, match="不归您处理"):
        await t.act(tid, chen, "accept")  # grid 3's worker
    with pytest.raises(TicketError, match="只有社区管理员"):
        await t.act(tid, zhang, "reassign", target=chen["id"])
    with pytest.raises(TicketError, match="不是您提交的"):
        await t.cancel("oSomebodyElse", tid)
    with pytest.raises(TicketError, match="没有找到工单"):
        await t.act(tid + 999, zhang, "accept")
    await t.act(tid, zhang, "accept")
    await t.act(tid, zhang, "done", "已修好")
    with pytest.raises(TicketError, match="「已办结」，不能撤销"):
        await t.cancel(RESIDENT, tid)
    with pytest.raises(TicketError, match="「已办结」，不能转派"):
        await t.act(tid, zhang, "transfer", target=chen["id"])
    await t.rate(RESIDENT, "基本满意")
    with pytest.raises(TicketError, match="「已评价」，不能评价"):
        await t.rate(RESIDENT, "满意", tid)
    # the audit trail says who did what, when
    trail = await t.events(tid)
    assert [(e["actor"], e["action"], e["from_status"], e["to_status"]) for e in trail] == [
        (f"resident:{RESIDENT}", "create", None, "pending"),
        (f"worker:{zhang['id']}", "accept", "pending", "accepted"),
        (f"worker:{zhang['id']}", "done", "accepted", "done"),
        (f"resident:{RESIDENT}", "rate", "done", "rated"),
    ]
    assert trail[2]["note"] == "已修好"
    assert admin["role"] == "admin"


async def test_return_reassign_transfer_and_extension(world: tuple[Tickets, Clock, dict[str, int]]) -> None:
    t, clock, ids = world
    zhang, li, chen, admin = (await worker(t, p) for p in (ZHANG, LI, CHEN, ADMIN)) if False else (
        await worker(t, ZHANG), await worker(t, LI), await worker(t, CHEN), await worker(t, ADMIN))
    ticket, _ = await t.create("report", RESIDENT, grid_id="1", content="下水道堵了")
    tid = ticket["id"]
    with pytest.raises(TicketError, match="退单原因"):
        await t.act(tid, zhang, "return")
    returned = await t.act(tid, zhang, "return", "不是本网格的，在滨河路")
    assert returned["status"] == "returned"
    assert any("退单" in x for x in await outbox_texts(t, OPENIDS[ADMIN]))
    again = await t.act(tid, admin, "reassign", target=chen["id"])
    assert again["status"] == "pending" and again["worker_id"] == chen["id"]
    assert any(f"新工单{tid}" in x for x in await outbox_texts(t, OPENIDS[CHEN]))
    await t.act(tid, chen, "accept")
    moved = await t.act(tid, chen, "transfer", target=li["id"])
    assert moved["status"] == "pending" and moved["worker_id"] == li["id"]
    await t.act(tid, li, "accept")
    accepted = await t.get(tid)
    due = accepted["done_due_at"]
    await t.act(tid, li, "extend", "要等物业维修队", hours=48)
    with pytest.raises(TicketError, match="只有社区管理员"):
        await t.act(tid, li, "extend_ok")
    extended = await t.act(tid, admin, "extend_ok")
    assert extended["extension"] == "approved" and extended["done_due_at"] == due + timedelta(hours=48)
    with pytest.raises(TicketError, match="没有待审批的延期"):
        await t.act(tid, admin, "extend_no")
    waiting = [x for x in await t.timers(tid) if x["state"] == "waiting"]
    assert [x["kind"] for x in waiting] == ["done_warn", "done_due"]
    assert waiting[1]["due_at"] == due + timedelta(hours=48)


async def test_custody_steps_confirmed_by_resident(world: tuple[Tickets, Clock, dict[str, int]]) -> None:
    t, clock, ids = world
    zhang = await worker(t, ZHANG)
    item = t.items.get("civil.dibao")
    ticket, _ = await t.create("proxy", RESIDENT, grid_id="1", item=item, address="普子岭小区1栋", phone="13812345678",
                               time_window="明天上午")
    tid = ticket["id"]
    with pytest.raises(TicketError, match="还没有需要您确认"):
        await t.confirm(RESIDENT, tid)
    await t.act(tid, zhang, "accept")
    after_pickup = await t.act(tid, zhang, "pickup", "户口簿原件、身份证复印件2份")
    assert after_pickup["status"] == "in_progress"
    await t.confirm(RESIDENT, tid)
    await t.act(tid, zhang, "handin", "已交便民服务站李老师")
    await t.act(tid, zhang, "done", "已受理，等审批")
    await t.act(tid, zhang, "giveback", "户口簿原件已还")
    await t.confirm(RESIDENT, tid)
    steps = [(e["action"], e["note"]) for e in await t.events(tid) if e["action"] in ("pickup", "handin", "giveback",
                                                                                      "confirm")]
    assert steps == [("pickup", "户口簿原件、身份证复印件2份"), ("confirm", "确认取件"),
                     ("handin", "已交便民服务站李老师"), ("giveback", "户口簿原件已还"), ("confirm", "确认归还原件")]
    texts = await outbox_texts(t, RESIDENT)
    assert sum("请核对后回复“确认" in x for x in texts) == 3


async def test_reminder_then_escalation_with_clock_and_restart(db_url: str, tmp_path: Path) -> None:
    await import_and_bind(db_url)
    clock = Clock(TUESDAY_10)
    t = make_tickets(db_url, tmp_path, clock)
    ticket, _ = await t.create("report", RESIDENT, grid_id="1", content="电梯不动了")
    tid = ticket["id"]
    assert ticket["accept_due_at"] == TUESDAY_10 + timedelta(minutes=30)
    clock.advance(minutes=10)
    assert await t.run_due_timers() == 0
    clock.advance(minutes=15)  # 25 min: past 80 % of 30 min
    assert await t.run_due_timers() == 1
    assert any("还没有接单" in x for x in await outbox_texts(t, OPENIDS[ZHANG]))
    assert not any("督办" in x for x in await outbox_texts(t, OPENIDS[ADMIN]))
    await t.engine.dispose()

    # "restart": a new service over the same database still knows the timers
    t2 = make_tickets(db_url, tmp_path, clock)
    clock.advance(minutes=6)
    assert await t2.run_due_timers() == 1
    assert await t2.run_due_timers() == 0  # fired once only
    assert any("督办" in x and "超时未接单" in x for x in await outbox_texts(t2, OPENIDS[ADMIN]))
    zhang = await worker(t2, ZHANG)
    await t2.act(tid, zhang, "accept")
    accepted = await t2.get(tid)
    assert accepted["done_due_at"] == clock.now + timedelta(hours=24)
    clock.advance(hours=30)
    assert await t2.run_due_timers() == 2  # done_warn and done_due
    assert any("超过办结时限" in x for x in await outbox_texts(t2, OPENIDS[ADMIN]))
    assert [e["action"] for e in await t2.events(tid)] == ["create", "remind", "escalate", "accept", "remind",
                                                           "escalate"]
    await t2.engine.dispose()


async def test_done_ticket_has_no_escalation(world: tuple[Tickets, Clock, dict[str, int]]) -> None:
    t, clock, ids = world
    zhang = await worker(t, ZHANG)
    ticket, _ = await t.create("report", RESIDENT, grid_id="1", content="井盖松了")
    await t.act(ticket["id"], zhang, "accept")
    await t.act(ticket["id"], zhang, "done", "已固定")
    clock.advance(days=5)
    assert await t.run_due_timers() == 0


def test_working_time_follows_the_official_holiday_calendar() -> None:
    cal = WorkCalendar("Asia/Shanghai", "08:30", "17:30")
    local = lambda *a: datetime(*a, tzinfo=TZ)  # noqa: E731
    # Friday 17:20 + 30 working minutes → Monday 08:50
    assert cal.add_work_minutes(local(2025, 6, 6, 17, 20), 30) == local(2025, 6, 9, 8, 50)
    # 2025-09-30 (Tue) 17:00 + 60 min: National Day holiday 10-01..10-08 → 2025-10-09 09:00
    assert cal.add_work_minutes(local(2025, 9, 30, 17, 0), 60) == local(2025, 10, 9, 9, 0)
    # 2025-09-28 is a Sunday that is an official working day (调休)
    assert cal.is_workday(local(2025, 9, 28, 10, 0).date())
    # 代办 in 2 working days from Thursday 2025-09-25 → end of Sunday 09-28 (调休 workday)
    assert cal.add_workdays(local(2025, 9, 25, 10, 0), 2) == local(2025, 9, 28, 17, 30)
    # unknown future year: Monday–Friday instead of a crash
    assert cal.add_work_minutes(local(2031, 1, 3, 17, 20), 30) == local(2031, 1, 6, 8, 50)


async def test_report_rates_per_worker_and_grid(world: tuple[Tickets, Clock, dict[str, int]]) -> None:
    t, clock, ids = world
    zhang, li = await worker(t, ZHANG), await worker(t, LI)
    a, _ = await t.create("report", "oR1", grid_id="1", content="一")
    b, _ = await t.create("report", "oR2", grid_id="1", content="二")
    c, _ = await t.create("report", "oR3", grid_id="2", content="三")
    await t.act(a["id"], zhang, "accept")  # in time
    await t.act(a["id"], zhang, "done", "好")
    await t.rate("oR1", "满意")
    await t.act(c["id"], li, "accept")
    await t.act(c["id"], li, "done", "好")
    await t.rate("oR3", "不满意")  # reopened → goes to the admin, not solved any more
    clock.advance(hours=2)
    await t.act(b["id"], zhang, "accept")  # late
    month = TUESDAY_10.astimezone(TZ).strftime("%Y-%m")
    by_worker = {r["name"]: r for r in await t.report(month, "worker")}
    assert by_worker["张秀英"]["total"] == 2
    assert by_worker["张秀英"]["response_rate"] == 0.5 and by_worker["张秀英"]["solve_rate"] == 0.5
    assert by_worker["张秀英"]["satisfaction_rate"] == 1.0
    assert by_worker["王主任"]["satisfaction_rate"] == 0.0  # the reopened ticket now sits with the admin
    by_grid = {r["name"]: r for r in await t.report(month, "grid")}
    assert by_grid["第一网格"]["total"] == 2 and by_grid["第二网格"]["total"] == 1
    assert await t.report("2020-01", "worker") == []
