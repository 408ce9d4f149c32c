"""The FAQ conversation through the real webhook: review rows, context, reload, health.

(转人工 is a ticket: tests/test_tickets_handoff.py.)"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from bot.handlers.faq import (
    CONTEXT_TTL,
    FALLBACK,
    MORE_DONE,
    NO_LIST,
    STATE_KEY,
    WRONG_AGAIN,
    WRONG_OFFER,
    last_item,
)
from bot.storage.models import UnmatchedQuestion
from tests.conftest import ROOT, make_config
from tests.dialogue_helpers import FakeClock, say
from tests.gateway_helpers import running_app

OPENID = "oDialogue0001"
PENSION = "hrss.resident-pension-enroll"
PENSION_FILE = "hrss.resident-pension-enroll.toml"


async def test_pension_question_then_where_of_the_same_item(db_url: str, http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with running_app(make_config(db_url), http, clock=clock) as (_, emu, services):
        first = await say(emu, services, clock, OPENID, "我想办理养老保险，要准备哪些材料？")
        assert first.item == PENSION and "一寸白底照片" in first.text and "户口簿" in first.text
        where = await say(emu, services, clock, OPENID, "在哪里办")
        item = services.knowledge.current.items[PENSION]
        assert where.item == PENSION and item.where.place in where.text and item.where.hours in where.text
        state = await services.conversations.load(OPENID, services.dispatcher._clock())  # noqa: SLF001
        assert state[STATE_KEY]["item"] == PENSION  # the tickets feature reads this for "代办"


async def test_follow_ups_read_the_context_written_by_another_worker(db_url: str, http: aiohttp.ClientSession) -> None:
    """Two workers (no authoritative cache): each turn may land on either, the context lives in storage."""
    clock = FakeClock()
    config = make_config(db_url, server={"workers": 2})
    async with running_app(config, http, clock=clock) as (_, emu_a, a), \
            running_app(config, http, clock=clock) as (_, emu_b, b):
        assert (await say(emu_a, a, clock, OPENID, "我想办理养老保险，要准备哪些材料？")).item == PENSION
        where = await say(emu_b, b, clock, OPENID, "在哪里办")
        assert where.item == PENSION and "办理地点" in where.text
        other = await say(emu_b, b, clock, OPENID, "养老保险关系转移接续")
        assert other.item == "hrss.pension-transfer"
        back = await say(emu_a, a, clock, OPENID, "要多久")  # worker A must not answer from what it saw last
        assert back.item == "hrss.pension-transfer", back


async def test_nonsense_gets_fallback_and_an_unmatched_row(db_url: str, http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with running_app(make_config(db_url), http, clock=clock) as (_, emu, services):
        turn = await say(emu, services, clock, OPENID, "阿巴阿巴阿巴")
        assert turn.text == FALLBACK and turn.action == "fallback"
        async with services.engine.connect() as conn:
            rows = (await conn.execute(select(UnmatchedQuestion))).all()
        assert len(rows) == 1
        row = rows[0]
        assert (row.openid, row.text, row.normalized) == (OPENID, "阿巴阿巴阿巴", "阿巴阿巴阿巴")
        assert isinstance(row.candidates, list) and row.score >= 0
        recent = await services.reviews.recent_unmatched(10)
        assert [r["text"] for r in recent] == ["阿巴阿巴阿巴"]
        # an answered question is not recorded
        await say(emu, services, clock, OPENID, "办低保要带啥材料")
        assert len(await services.reviews.recent_unmatched(10)) == 1


async def test_unmatched_text_is_stored_with_personal_numbers_masked(db_url: str, http: aiohttp.ClientSession
                                                                     ) -> None:
    async with running_app(make_config(db_url), http) as (_, _emu, services):
        now = services.dispatcher._clock()  # noqa: SLF001
        services.reviews.record_unmatched(OPENID, "我电话13812345678 身份证510821199001011234", "x", ["a"],
                                          12.5, "1", now)
        await services.journal.flush()
        [row] = await services.reviews.recent_unmatched(5)
        assert "13812345678" not in row["text"] and "510821199001011234" not in row["text"]
        assert "138****5678" in row["text"]


async def test_context_expires_even_when_another_feature_keeps_the_state_alive(
        db_url: str, http: aiohttp.ClientSession) -> None:
    """Another feature saving the shared state (longer TTL) must not keep our 30-minute context alive."""
    clock = FakeClock()
    async with running_app(make_config(db_url), http, clock=clock) as (_, emu, services):
        await say(emu, services, clock, OPENID, "办低保要带啥材料")
        now = services.dispatcher._clock()  # noqa: SLF001
        state = await services.conversations.load(OPENID, now)
        state["tickets"] = {"draft": 1}
        await services.conversations.save(OPENID, state, now + timedelta(hours=5), now)
        assert last_item(state, now) == "civil.dibao"
        clock.advance(CONTEXT_TTL + 60)
        later = services.dispatcher._clock()  # noqa: SLF001
        assert last_item(await services.conversations.load(OPENID, later), later) is None
        turn = await say(emu, services, clock, OPENID, "要多久")
        assert turn.item is None and "最低生活保障" not in turn.text
        kept = await services.conversations.load(OPENID, later)
        assert kept["tickets"] == {"draft": 1}  # read-modify-write: other features' keys survive


def _edit(path: Path, old: str, new: str) -> None:
    """Save an edit the way editors do (write a new file, rename it over the old one). Why not
    ``write_text``: the watcher polling every 50 ms could read the file truncated mid-write, refuse
    that half (and re-read the whole on the next poll), and the test would see the wrong refusal."""
    text = path.read_text(encoding="utf-8")
    assert old in text
    partial = path.with_suffix(".toml.part")
    partial.write_text(text.replace(old, new, 1), encoding="utf-8")
    os.replace(partial, path)


async def _wait_for_version(services, version: str, clock_steps: int = 200) -> None:  # type: ignore[no-untyped-def]
    """The watch task polls every ``reload_interval``; wait (bounded) until it swapped the snapshot."""
    import asyncio

    for _ in range(clock_steps):
        if services.knowledge.current.version != version:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("knowledge was not reloaded")


async def test_hot_reload_serves_edits_and_keeps_last_good_on_broken_file(
        db_url: str, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    faq = tmp_path / "faq"
    shutil.copytree(ROOT / "faq", faq)
    config = make_config(db_url, app={"faq_dir": str(faq), "reload_interval": 0.05})
    clock = FakeClock()
    async with running_app(config, http, clock=clock) as (_, emu, services):
        question = "我想办理养老保险，要准备哪些材料？"
        assert "一寸白底照片" in (await say(emu, services, clock, OPENID, question)).text
        version = services.knowledge.current.version
        _edit(faq / PENSION_FILE, 'name = "一寸白底照片"', 'name = "二寸蓝底照片"')
        await _wait_for_version(services, version)
        edited = await say(emu, services, clock, OPENID, question)
        assert "二寸蓝底照片" in edited.text and "一寸白底照片" not in edited.text

        caplog.set_level(logging.INFO, logger="bot.understanding")
        version = services.knowledge.current.version
        _edit(faq / PENSION_FILE, "proxy = true", 'proxy = "是"')
        await _wait_for_version(services, version)
        still = await say(emu, services, clock, OPENID, question)
        assert still.item == PENSION and "二寸蓝底照片" in still.text
        refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert refused, caplog.text
        line = next(i for i, text in enumerate((faq / PENSION_FILE).read_text().splitlines(), 1)
                    if text.startswith("proxy"))
        assert any(f"{PENSION_FILE}:{line}" in m and "[proxy]" in m for m in refused), refused


async def test_healthz_reports_faq_items(db_url: str, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    count = len(list((ROOT / "faq").glob("*.toml")))
    async with running_app(make_config(db_url), http) as (server, _, _services):
        async with http.get(server.make_url("/healthz")) as resp:
            body = await resp.json()
        assert resp.status == 200 and body["faq"] == "ok" and body["faq_items"] == count
    empty = tmp_path / "empty-faq"
    empty.mkdir()
    async with running_app(make_config(db_url, app={"faq_dir": str(empty)}), http) as (server, emu, services):
        async with http.get(server.make_url("/healthz")) as resp:
            body = await resp.json()
        assert resp.status == 503 and body["faq"] != "ok" and body["faq_items"] == 0
        reply = await emu.send(emu.text(OPENID, "办低保要带啥材料"))  # the fallback still answers
        assert reply.text


def test_review_command_lists_unmatched_questions(db_url: str, tmp_path: Path) -> None:
    import asyncio

    from bot.clock import utcnow
    from bot.services.journal import Journal
    from bot.services.unmatched import ReviewQueue
    from bot.storage.db import create_engine, sqlite_path
    from bot.storage.messages import BatchWriter

    async def seed() -> None:
        engine = create_engine(db_url, 2)
        journal = Journal(engine, BatchWriter(engine, sqlite_path(db_url)))
        journal.start()
        ReviewQueue(engine, journal).record_unmatched(OPENID, "办个护照要多久", "办个护照要多久", ["police.id-card"],
                                                      31.0, "1", utcnow())
        ReviewQueue(engine, journal).record_unmatched(OPENID, "低保边缘户咋个认定", "低保边缘户怎么认定", ["civil.dibao"],
                                                      0.0, "1", utcnow(), "wrong")
        await journal.stop()
        await engine.dispose()

    asyncio.run(seed())
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "faq", *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})

    out = run("unmatched")
    assert out.returncode == 0 and "办个护照要多久" in out.stdout and "police.id-card" in out.stdout, out
    lines = out.stdout.splitlines()
    assert any("办个护照要多久" in line and "相近" in line and "答错" not in line for line in lines), out.stdout
    assert any("低保边缘户咋个认定" in line and "居民说答错了；当时回答：civil.dibao" in line for line in lines), out.stdout


@pytest.mark.backends("sqlite")
async def test_locked_database_does_not_cost_the_answer_and_the_row_lands_later(
        db_url: str, http: aiohttp.ClientSession) -> None:
    """Regression: recording the unmatched question (a write) held the reply past WeChat's deadline."""
    import asyncio
    import sqlite3
    import time

    from sqlalchemy.engine import make_url

    clock = FakeClock()
    async with running_app(make_config(db_url, wechat={"reply_deadline": 3.0}), http, clock=clock) as (
            _, emu, services):
        await say(emu, services, clock, OPENID, "你好")
        blocker = sqlite3.connect(make_url(db_url).database or "", timeout=1)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            started = time.perf_counter()
            reply = await emu.send(emu.text(OPENID, "阿巴阿巴阿巴"), timestamp=int(clock()))
            assert reply.text == FALLBACK and time.perf_counter() - started < 3.0
        finally:
            blocker.rollback()
            blocker.close()
        for _ in range(200):  # the write goes on in the background once the lock is gone
            if await services.reviews.recent_unmatched(5):
                break
            await asyncio.sleep(0.05)
        assert [r["text"] for r in await services.reviews.recent_unmatched(5)] == ["阿巴阿巴阿巴"]


async def test_two_needs_answer_one_and_offer_the_other(db_url: str, http: aiohttp.ClientSession) -> None:
    """A message with two needs is answered about one and offers the other by number; "1" opens it, while a
    follow-up aspect stays with the item just answered (a number only: see FaqHandler._offered_pick)."""
    clock = FakeClock()
    injury, wages = "hrss.work-injury", "hrss.wage-arrears"
    async with running_app(make_config(db_url), http, clock=clock) as (_, emu, services):
        items = services.knowledge.current.items
        first = await say(emu, services, clock, OPENID, "在工地摔伤了，工资也不给")
        assert first.action == "answer" and first.item in (injury, wages), first
        other = wages if first.item == injury else injury
        assert f"【{items[first.item].name}】" in first.text
        assert "您还问到：" in first.text and f"1. {items[other].name}" in first.text and "回复数字查看" in first.text
        assert len(first.text) <= 600
        how_long = await say(emu, services, clock, OPENID, "要多久")
        assert how_long.item == first.item and items[first.item].time_limit in how_long.text
        # the offer was replaced by the follow-up's answer (which offered nothing): "1" no longer picks
        again = await say(emu, services, clock, OPENID, "在工地摔伤了，工资也不给")
        assert again.item == first.item
        picked = await say(emu, services, clock, OPENID, "1")
        assert picked.item == other and f"【{items[other].name}】" in picked.text


async def test_needs_asked_outright_are_listed_and_the_other_offered_after_a_pick(
        db_url: str, http: aiohttp.ClientSession) -> None:
    """还想 asks for the second thing outright (round 16): both are listed to take one first; after the
    pick the other is offered by number, and "1" then opens it."""
    clock = FakeClock()
    wages, job = "hrss.wage-arrears", "hrss.public-welfare-job"
    async with running_app(make_config(db_url), http, clock=clock) as (_, emu, services):
        items = services.knowledge.current.items
        listed = await say(emu, services, clock, OPENID, "老板拖了三个月工资，我还想申请个公益岗")
        assert listed.action == "clarify" and "您问到了几件事，先看哪一件？" in listed.text, listed
        assert items[wages].name in listed.text and items[job].name in listed.text
        order = [wages, job] if listed.text.index(items[wages].name) < listed.text.index(items[job].name) else [job, wages]
        first = await say(emu, services, clock, OPENID, "2")
        assert first.item == order[1] and f"【{items[order[1]].name}】" in first.text
        assert "您还问到：" in first.text and f"1. {items[order[0]].name}" in first.text
        second = await say(emu, services, clock, OPENID, "1")
        assert second.item == order[0] and f"【{items[order[0]].name}】" in second.text
        # "都要" to the list: the first answered, the other offered
        await say(emu, services, clock, OPENID, "老板拖了三个月工资，我还想申请个公益岗")
        both = await say(emu, services, clock, OPENID, "两个都要")
        assert both.item == order[0] and f"1. {items[order[1]].name}" in both.text and "您还问到：" in both.text
        # an ordinary clarify (which item was meant) keeps its head and offers nothing after the pick
        card = await say(emu, services, clock, OPENID, "社保卡咋个办")
        assert card.action == "clarify" and "您问的是哪一项？" in card.text
        one = await say(emu, services, clock, OPENID, "1")
        assert one.action == "answer" and "您还问到" not in one.text


async def test_an_offer_out_of_range_lists_it_again(db_url: str, http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with running_app(make_config(db_url), http, clock=clock) as (_, emu, services):
        await say(emu, services, clock, OPENID, "在工地摔伤了，工资也不给")
        wrong = await say(emu, services, clock, OPENID, "3")
        assert wrong.action == "clarify" and "请回复 1 到 1 之间的数字" in wrong.text


#: (message, answered, offered, the pick): a sibling the question's own words told apart from the
#: answer; a close call, the item scoring just behind the answer that the question also names.
OFFERED = [
    ("我外公前天去世了，后事办完了，有啥子钱可以领不", "civil.funeral-subsidy", "hrss.death-benefit", "第一个"),
    ("看病钱不够屋头困难能救助不", "civil.temporary-assistance", "medins.medical-assistance", "1"),
]


@pytest.mark.parametrize(("message", "answered", "other", "pick"), OFFERED, ids=["sibling", "runner-up"])
async def test_an_answer_offers_what_may_have_been_meant(db_url: str, http: aiohttp.ClientSession, message: str,
                                                       answered: str, other: str, pick: str) -> None:
    """The matcher answered one item, likely but not certainly the one meant; the other is one reply away."""
    clock = FakeClock()
    async with running_app(make_config(db_url), http, clock=clock) as (_, emu, services):
        items = services.knowledge.current.items
        first = await say(emu, services, clock, OPENID, message)
        assert first.item == answered and f"【{items[answered].name}】" in first.text
        assert "您可能还想问：" in first.text and f"1. {items[other].name}" in first.text
        assert "您还问到" not in first.text and len(first.text) <= 600
        picked = await say(emu, services, clock, OPENID, pick)
        assert picked.item == other and f"【{items[other].name}】" in picked.text


async def test_not_this_one_offers_the_others_and_keeps_the_question_for_admins(
        db_url: str, http: aiohttp.ClientSession) -> None:
    """不是这个 after an answer: sorry, the items the answer had offered as a list a number picks from, and
    the question that got the wrong answer in the review queue with the item answered."""
    clock = FakeClock()
    question, answered, other, _ = OFFERED[1]
    async with running_app(make_config(db_url), http, clock=clock) as (_, emu, services):
        items = services.knowledge.current.items
        first = await say(emu, services, clock, OPENID, question)
        assert first.item == answered
        wrong = await say(emu, services, clock, OPENID, "不是这个")
        assert (wrong.intent, wrong.action) == ("wrong", "clarify")
        assert wrong.text == WRONG_OFFER.format(options=f"1. {items[other].name}")
        picked = await say(emu, services, clock, OPENID, "1")
        assert picked.item == other
        await services.journal.flush()
        [row] = await services.reviews.recent_unmatched(5)
        assert (row["text"], row["candidates"], row["reason"]) == (question, [answered], "wrong")
        # nothing offered: ask for other words; said again, the answer it refers to is gone: no new row
        await say(emu, services, clock, OPENID, "办低保要带啥材料")
        again = await say(emu, services, clock, OPENID, "不对")
        assert (again.text, again.action) == (WRONG_AGAIN, "ask_again")
        again = await say(emu, services, clock, OPENID, "不对")
        assert again.text == WRONG_AGAIN
        await services.journal.flush()
        rows = await services.reviews.recent_unmatched(5)
        assert [r["text"] for r in rows] == ["办低保要带啥材料", question]
        assert all(r["reason"] == "wrong" for r in rows)


async def test_anything_else_after_an_answer_says_that_was_all_and_keeps_the_offer(
        db_url: str, http: aiohttp.ClientSession) -> None:
    """还有呢 fell back ("没看懂"): the answer was all of it; the reply says so and repeats what it offered,
    which a number still picks."""
    clock = FakeClock()
    question, answered, other, _ = OFFERED[1]
    async with running_app(make_config(db_url), http, clock=clock) as (_, emu, services):
        items = services.knowledge.current.items
        alone = await say(emu, services, clock, OPENID, "还有呢")
        assert alone.text == NO_LIST  # nothing answered yet
        await say(emu, services, clock, OPENID, question)
        more = await say(emu, services, clock, OPENID, "还有吗")
        assert (more.intent, more.item, more.action) == ("more", answered, "more")
        assert more.text.startswith(MORE_DONE.format(name=items[answered].name))
        assert f"1. {items[other].name}" in more.text
        picked = await say(emu, services, clock, OPENID, "1")
        assert picked.item == other
        assert len(await services.reviews.recent_unmatched(5)) == 0  # nothing here is a miss
