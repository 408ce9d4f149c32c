"""Scheduling with a controllable clock: reminder times, quiet hours, repeats, missed jobs, leases, cap."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.storage import notices as q
from tests.test_notices_helpers import (
    EVENT,
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

PEOPLE = ["oR1", "oR2", "oR3"]


def keys(rows: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [r["idempotency_key"] for r in rows]


async def test_reminders_fire_at_the_right_local_time(db_url: str, tmp_path: Path) -> None:
    clock = Clock(local(2030, 6, 10, 10, 0))
    async with service_for(notice_config(db_url), clock) as svc:
        await add_residents(svc, PEOPLE + ["oNotSubscribed"], clock())
        for openid in PEOPLE:
            await svc.subscribe(openid, ["义诊"])
        pushes = await add_file(svc, write_notice(tmp_path, "yz", EVENT))
        assert {p["push_key"]: p["due_at"] for p in pushes} == {
            "publish": local(2030, 6, 10, 10, 0),
            "evening_before": local(2030, 6, 14, 19, 0),
            "hour_before": local(2030, 6, 15, 8, 0),
        }
        await run_until_idle(svc)
        assert keys(await outbox_rows(svc)) == [f"notice:yz:publish:{o}" for o in PEOPLE]

        clock.set(local(2030, 6, 14, 18, 59))
        assert await svc.tick() == []
        clock.set(local(2030, 6, 14, 19, 0))
        await run_until_idle(svc)
        rows = await outbox_rows(svc)
        assert keys(rows)[3:] == [f"notice:yz:evening_before:{o}" for o in PEOPLE]
        assert rows[3]["kind"] == "subscribe" and rows[3]["payload"]["template_id"] == "TPL-2"
        assert rows[3]["payload"]["data"]["time2"]["value"] == "6月15日（周六）09:00—11:30"

        clock.set(local(2030, 6, 15, 7, 59))
        assert await svc.tick() == []
        clock.set(local(2030, 6, 15, 8, 0))
        await run_until_idle(svc)
        assert len(await outbox_rows(svc)) == 9
        assert [p["status"] for p in await svc.pushes("yz")] == ["done", "done", "done"]


async def test_quiet_hours_hold_non_urgent_until_morning_but_not_urgent(db_url: str, tmp_path: Path) -> None:
    clock = Clock(local(2030, 6, 10, 22, 30))
    async with service_for(notice_config(db_url), clock) as svc:
        await add_residents(svc, ["oA", "oB", "oC"], clock(), scenes={"oA": "grid:3", "oB": "grid:4"})
        await svc.subscribe("oA", ["义诊"])
        await add_file(svc, write_notice(tmp_path, "late", """
            title = "义诊通知"
            category = "义诊"
            text = "x"
        """))
        await add_file(svc, write_notice(tmp_path, "water", """
            title = "停水"
            category = "停水停电"
            text = "明天停水"
            [audience]
            grids = ["3", "4"]
        """))
        results = await run_until_idle(svc)
        assert {p["notice_id"]: r.status for p, r in results} == {"late": "held", "water": "done"}
        # urgent: everyone in grids 3 and 4, subscribed or not; nobody outside them
        assert sorted(keys(await outbox_rows(svc))) == ["notice:water:publish:oA", "notice:water:publish:oB"]
        held = (await svc.pushes("late"))[0]
        assert held["due_at"] == local(2030, 6, 11, 8, 0) and held["note"] == "held: quiet hours"

        clock.set(local(2030, 6, 11, 7, 59))
        assert await svc.tick() == []
        clock.set(local(2030, 6, 11, 8, 0))
        await run_until_idle(svc)
        assert "notice:late:publish:oA" in keys(await outbox_rows(svc))
        assert (await svc.pushes("late"))[0]["status"] == "done"


async def test_repeating_rule_and_missed_occurrence_after_downtime(db_url: str, tmp_path: Path) -> None:
    clock = Clock(local(2030, 6, 12, 12, 0))  # a Wednesday
    async with service_for(notice_config(db_url, grace_minutes=60), clock) as svc:
        await add_residents(svc, ["oV1", "oV2", "oX"], clock())
        async with svc._engine.begin() as conn:  # noqa: SLF001
            await q.set_tags(conn, "oV1", ["志愿者"])
            await q.set_tags(conn, "oV2", ["志愿者", "老年人"])
        for o in ("oV1", "oV2", "oX"):
            await svc.subscribe(o, ["平安巡防"])
        pushes = await add_file(svc, write_notice(tmp_path, "xf", """
            title = "巡防集合"
            category = "平安巡防"
            text = "广场集合"
            [audience]
            tags = ["志愿者"]
            [push]
            repeat = "每周六 08:30"
        """))
        assert [(p["push_key"], p["due_at"]) for p in pushes] == [("r:2030-06-15T08:30", local(2030, 6, 15, 8, 30))]

        clock.set(local(2030, 6, 15, 8, 30))
        await run_until_idle(svc)
        assert sorted(keys(await outbox_rows(svc))) == ["notice:xf:r:2030-06-15T08:30:oV1",
                                                        "notice:xf:r:2030-06-15T08:30:oV2"]
        planned = await svc.pushes("xf")
        assert [(p["push_key"], p["status"]) for p in planned] == [("r:2030-06-15T08:30", "done"),
                                                                   ("r:2030-06-22T08:30", "scheduled")]
        # the service is down from Friday to Saturday 10:00: beyond the 60-minute grace → missed
        clock.set(local(2030, 6, 22, 10, 0))
        results = await run_until_idle(svc)
        assert [r.status for _, r in results] == ["missed"]
        assert len(await outbox_rows(svc)) == 2
        planned = await svc.pushes("xf")
        assert [(p["push_key"], p["status"]) for p in planned][1:] == [("r:2030-06-22T08:30", "missed"),
                                                                       ("r:2030-06-29T08:30", "scheduled")]
        # down again, but back within the grace window: it still goes out
        clock.set(local(2030, 6, 29, 9, 15))
        results = await run_until_idle(svc)
        assert [r.status for _, r in results] == ["done"]
        assert len(await outbox_rows(svc)) == 4


async def test_restart_keeps_jobs_in_the_database(db_url: str, tmp_path: Path) -> None:
    clock = Clock(local(2030, 6, 10, 10, 0))
    path = write_notice(tmp_path, "yz", EVENT)
    async with service_for(notice_config(db_url), clock) as first:
        await add_residents(first, PEOPLE, clock())
        for o in PEOPLE:
            await first.subscribe(o, ["义诊"])
        await add_file(first, path)
    # a new process (new engine, new owner) finds the pushes and runs the due ones
    clock.set(local(2030, 6, 14, 19, 20))
    async with service_for(notice_config(db_url), clock) as second:
        results = await run_until_idle(second)
        assert sorted((p["push_key"], r.status) for p, r in results) == [("evening_before", "done"),
                                                                         ("publish", "missed")]
        # re-adding the same file does not re-plan what already ran
        await add_file(second, path)
        assert [p["status"] for p in await second.pushes("yz")] == ["missed", "done", "scheduled"]


async def test_two_schedulers_never_run_the_same_push(db_url: str, tmp_path: Path) -> None:
    clock = Clock(local(2030, 6, 10, 10, 0))
    config = notice_config(db_url, chunk_size=7, lease_seconds=60)
    people = [f"o{i:03d}" for i in range(60)]
    async with service_for(config, clock, owner="A") as a, service_for(config, clock, owner="B") as b:
        await add_residents(a, people, clock())
        for o in people:
            await a.subscribe(o, ["义诊"])
        for i in range(4):
            await add_file(a, write_notice(tmp_path, f"n{i}", EVENT.replace("[push]\n    at = [\"发布时\", \"前一天晚上\", \"提前一小时\"]", "")))
        ra, rb = await asyncio.gather(run_until_idle(a), run_until_idle(b))
        ran = [p["notice_id"] for p, r in ra + rb if r.status == "done"]
        assert sorted(ran) == ["n0", "n1", "n2", "n3"]
        rows = await outbox_rows(a)
        assert len(rows) == 4 * 60 == len(set(keys(rows)))

        # a scheduler that dies holding a lease: nobody else touches the push until the lease lapses
        await add_file(a, write_notice(tmp_path, "n9", EVENT.replace("[push]\n    at = [\"发布时\", \"前一天晚上\", \"提前一小时\"]", "")))
        async with a._engine.begin() as conn:  # noqa: SLF001
            claimed = await q.claim_due_pushes(conn, "dead", clock(), clock() + config_lease(60), 10)
        assert [p["notice_id"] for p in claimed] == ["n9"]
        assert await b.tick() == []
        clock.advance(seconds=61)
        assert [(p["notice_id"], r.status) for p, r in await run_until_idle(b)] == [("n9", "done")]


def config_lease(seconds: int):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return timedelta(seconds=seconds)


async def test_daily_cap_holds_the_rest_until_tomorrow(db_url: str, tmp_path: Path) -> None:
    clock = Clock(local(2030, 6, 10, 10, 0))
    people = [f"o{i}" for i in range(5)]
    async with service_for(notice_config(db_url, daily_cap=2, chunk_size=10), clock) as svc:
        await add_residents(svc, people, clock())
        for o in people:
            await svc.subscribe(o, ["义诊"])
        await add_file(svc, write_notice(tmp_path, "cap", 'title = "t"\ncategory = "义诊"\ntext = "x"\n'))
        results = await run_until_idle(svc)
        assert [r.status for _, r in results] == ["held"]
        assert len(await outbox_rows(svc)) == 2
        clock.set(local(2030, 6, 11, 8, 0))
        await run_until_idle(svc)
        assert len(await outbox_rows(svc)) == 4
        clock.set(local(2030, 6, 12, 8, 0))
        await run_until_idle(svc)
        rows = await outbox_rows(svc)
        assert sorted(keys(rows)) == sorted(f"notice:cap:publish:{o}" for o in people)
        assert (await svc.pushes("cap"))[0]["status"] == "done"
