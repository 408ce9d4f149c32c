"""``resident-bot notices …`` and ``resident-bot announcements …``: the admin's side of notices.

``notices add FILE`` validates a notice file (every problem with file, line and field) and stores it
with its planned pushes; ``list``, ``report ID`` (delivery report) and ``signups ID`` show what
happened; ``run`` runs the scheduler on its own (what worker 0 of ``serve`` does). ``announcements
add FILE`` / ``list`` do the same for 公示.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from typing import Any, Awaitable, Callable

from bot.cli import config_from_args
from bot.config import Config


def _engine(config: Config) -> Any:
    from bot.storage.db import create_engine

    return create_engine(config.database.url, 2)


async def _with_service(config: Config, body: Callable[[Any], Awaitable[int]]) -> int:
    from bot.services.notices import NoticeService, NoticeSettings
    from bot.services.outbox import Outbox

    engine = _engine(config)
    try:
        return await body(NoticeService(engine, Outbox(engine), NoticeSettings.from_config(config)))
    finally:
        await engine.dispose()


def _local(at: datetime | None, config: Config) -> str:
    from zoneinfo import ZoneInfo

    return "—" if at is None else at.astimezone(ZoneInfo(config.app.timezone)).strftime("%Y-%m-%d %H:%M")


def _files(given: list[str], folder: str) -> list[str]:
    """The files named, or every ``*.toml`` in the configured folder when none are."""
    from pathlib import Path

    return given or [str(p) for p in sorted(Path(folder).glob("*.toml"))]


def _add(args: argparse.Namespace) -> int:
    from bot.services.notices import NoticeFileError, NoticeSettings, load_notice_file

    config = config_from_args(args)
    settings = NoticeSettings.from_config(config)
    loaded, failed = [], False
    for path in _files(args.files, config.notices.dir):
        try:
            loaded.append(load_notice_file(path, settings))
        except NoticeFileError as exc:
            failed = True
            for problem in exc.problems:
                print(str(problem), file=sys.stderr)
    if failed:
        print("没有保存：请先改正上面的问题。", file=sys.stderr)
        return 1
    if args.check:
        print(f"检查通过：{len(loaded)} 个通知文件")
        return 0

    async def body(service: Any) -> int:
        for notice in loaded:
            pushes = await service.add(notice)
            print(f"已保存 {notice.id}「{notice.title}」（{notice.category}）")
            for push in pushes:
                print(f"  {push['push_key']:<22} {_local(push['due_at'], config)}  {push['status']}")
        return 0

    return asyncio.run(_with_service(config, body))


def _list(args: argparse.Namespace) -> int:
    config = config_from_args(args)

    async def body(service: Any) -> int:
        for notice in await service.list():
            places = f" 名额 {notice['taken']}/{notice['capacity']}" if notice["capacity"] else ""
            print(f"{notice['id']:<24} {notice['category']:<8} {_local(notice['starts_at'], config)}  "
                  f"{notice['title']}{places} [{notice['status']}]")
            for push in await service.pushes(notice["id"]):
                note = f"  ({push['note']})" if push["note"] else ""
                print(f"    {push['push_key']:<22} {_local(push['due_at'], config)}  {push['status']}"
                      f" queued={push['queued']}{note}")
        return 0

    return asyncio.run(_with_service(config, body))


def _report(args: argparse.Namespace) -> int:
    config = config_from_args(args)

    async def body(service: Any) -> int:
        if await service.get(args.id) is None:
            print(f"没有这个通知：{args.id}", file=sys.stderr)
            return 1
        for key, s in (await service.report(args.id)).items():
            print(f"{key} ({s['status']}, {_local(s['due_at'], config)}): targeted={s['targeted']} "
                  f"sent={s['sent']} delivered={s['delivered']} failed={s['failed']} opted_out={s['opted_out']} "
                  f"skipped={s['skipped']} pending={s['pending']}")
            for reason, n in sorted(s["reasons"].items()):
                print(f"    {reason}: {n}")
        return 0

    return asyncio.run(_with_service(config, body))


def _signups(args: argparse.Namespace) -> int:
    config = config_from_args(args)

    async def body(service: Any) -> int:
        notice = await service.get(args.id)
        if notice is None:
            print(f"没有这个通知：{args.id}", file=sys.stderr)
            return 1
        rows = await service.signups(args.id)
        print(f"{notice['title']}：名额 {notice['capacity'] or '不限'}，已报名 {notice['taken']}，"
              f"候补 {sum(1 for r in rows if r['status'] == 'waiting')}")
        for i, row in enumerate(rows, 1):
            label = "报名" if row["status"] == "confirmed" else "候补"
            print(f"{i:>3}. {label} {row['openid']}  {_local(row['created_at'], config)}")
        return 0

    return asyncio.run(_with_service(config, body))


def _tag(args: argparse.Namespace) -> int:
    config = config_from_args(args)

    async def body(service: Any) -> int:
        from bot.storage import notices as q

        async with service._engine.begin() as conn:  # noqa: SLF001 - one admin write, no service API needed
            await q.set_tags(conn, args.openid, args.tags)
        print(f"{args.openid}: {'、'.join(args.tags) or '（无标签）'}")
        return 0

    return asyncio.run(_with_service(config, body))


async def run_scheduler(config: Config, once: bool, with_sender: bool) -> int:
    """The scheduler (and optionally an outbox sender) in this process, until interrupted or done."""
    from bot.services.notices import NoticeService, NoticeSettings
    from bot.services.outbox import Outbox

    engine = _engine(config)
    sender = api = None
    if with_sender:
        from bot.services.sender import OutboxSender
        from bot.wechat.api import build_wechat_api

        api = build_wechat_api(config, engine)
        sender = OutboxSender(engine, api, config.outbox)
        sender.start()
    service = NoticeService(engine, Outbox(engine), NoticeSettings.from_config(config),
                            on_queued=sender.wake if sender else None)
    try:
        while True:
            results = await service.tick()
            for push, result in results:
                print(f"{push['notice_id']} {push['push_key']}: {result.status} queued={result.queued}", flush=True)
            if once and not results:
                return 0
            if not results:
                await asyncio.sleep(service.settings.tick_seconds)
    finally:
        if sender is not None:
            await sender.stop()
        if api is not None:
            await api.close()
        await engine.dispose()


def _run(args: argparse.Namespace) -> int:
    return asyncio.run(run_scheduler(config_from_args(args), args.once, not args.no_sender))


def _ann_add(args: argparse.Namespace) -> int:
    from bot.services.announcements import AnnouncementFileError, Announcements, load_announcement_file

    config = config_from_args(args)
    loaded, failed = [], False
    for path in _files(args.files, config.notices.announcements_dir):
        try:
            loaded.append(load_announcement_file(path))
        except AnnouncementFileError as exc:
            failed = True
            for problem in exc.problems:
                print(str(problem), file=sys.stderr)
    if failed:
        print("没有保存：请先改正上面的问题。", file=sys.stderr)
        return 1

    async def body() -> int:
        engine = _engine(config)
        try:
            store = Announcements(engine)
            for ann in loaded:
                await store.add(ann)
                print(f"已保存 {ann.id}「{ann.title}」（{ann.kind}，{ann.published_on}）")
        finally:
            await engine.dispose()
        return 0

    return asyncio.run(body())


def _ann_list(args: argparse.Namespace) -> int:
    from bot.services.announcements import Announcements

    config = config_from_args(args)

    async def body() -> int:
        engine = _engine(config)
        try:
            for ann in await Announcements(engine).latest(args.kind, args.limit):
                print(f"{ann['published_on']}  {ann['kind']:<6} {ann['id']:<24} {ann['title']}")
        finally:
            await engine.dispose()
        return 0

    return asyncio.run(body())


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    notices = sub.add_parser("notices", help="社区通知与活动 (scheduled notices)")
    actions = notices.add_subparsers(dest="notices_command", required=True)
    add = actions.add_parser("add", help="validate and store notice files (default: every file in notices.dir)")
    add.add_argument("files", nargs="*")
    add.add_argument("--check", action="store_true", help="only validate, store nothing")
    add.set_defaults(func=_add)
    actions.add_parser("list", help="notices and their pushes").set_defaults(func=_list)
    report = actions.add_parser("report", help="delivery report of one notice")
    report.add_argument("id")
    report.set_defaults(func=_report)
    signups = actions.add_parser("signups", help="who signed up (报名) and the waiting list")
    signups.add_argument("id")
    signups.set_defaults(func=_signups)
    tag = actions.add_parser("tag", help="set a resident's audience tags (老年人, 残疾人, 志愿者 …)")
    tag.add_argument("openid")
    tag.add_argument("tags", nargs="*")
    tag.set_defaults(func=_tag)
    run = actions.add_parser("run", help="run the notice scheduler in this process")
    run.add_argument("--once", action="store_true", help="stop when nothing is due")
    run.add_argument("--no-sender", action="store_true", help="only queue; leave sending to the server")
    run.set_defaults(func=_run)

    ann = sub.add_parser("announcements", help="公示: 社区开支、工程项目、好人好事")
    ann_actions = ann.add_subparsers(dest="announcements_command", required=True)
    ann_add = ann_actions.add_parser("add", help="validate and store announcement files (default: all)")
    ann_add.add_argument("files", nargs="*")
    ann_add.set_defaults(func=_ann_add)
    ann_list = ann_actions.add_parser("list", help="latest announcements")
    ann_list.add_argument("--kind")
    ann_list.add_argument("--limit", type=int, default=20)
    ann_list.set_defaults(func=_ann_list)
