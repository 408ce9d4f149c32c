"""``resident-bot faq unmatched|handoffs``: what the FAQ missed, and who waits for a person.

Why commands: admins review unanswered questions to add them to ``faq/`` (as ``questions`` of an item,
or as a new item), and see who asked for 转人工. Unmatched questions are read from the review queue
(``bot.services.unmatched``, texts stored with phone and ID numbers masked); 转人工 requests are
tickets (``bot.services.tickets``), handled by the grid worker they were routed to like any ticket;
the listing says whether the worker is talking with the resident in WeChat right now.
Times are shown in the community's local time.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.clock import as_utc, utcnow
from bot.config import Config


def register(subparsers: Any) -> None:
    """Add review subcommands under ``faq`` (created by ``bot.understanding.commands``, or here)."""
    faq_sub = _faq_subparsers(subparsers)
    unmatched = faq_sub.add_parser("unmatched", help="列出最近没能回答的问题，供补充办事指南")
    unmatched.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    unmatched.add_argument("--days", type=float, default=7.0, help="only the last N days (default 7)")
    unmatched.set_defaults(func=cmd_unmatched)
    handoffs = faq_sub.add_parser("handoffs", help="列出转人工工单（等待工作人员联系的居民）")
    handoffs.add_argument("--all", action="store_true", help="include finished ones")
    handoffs.add_argument("--limit", type=int, default=100)
    handoffs.set_defaults(func=cmd_handoffs)


def _faq_subparsers(subparsers: Any) -> Any:
    """The ``faq`` command's own subparsers action, creating ``faq`` when no other module did."""
    parser = subparsers.choices.get("faq")
    if parser is None:
        parser = subparsers.add_parser("faq", help="办事指南文件工具")
        return parser.add_subparsers(dest="faq_command", required=True)
    # argparse keeps the subparsers action among the parser's actions (no public accessor).
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return action
    return parser.add_subparsers(dest="faq_command", required=True)


def _config(args: argparse.Namespace) -> Config:
    from bot.cli import config_from_args

    return config_from_args(args)


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    moment = as_utc(value)
    return moment.astimezone(zone).strftime("%m-%d %H:%M") if moment else "-"


async def _with_queue(config: Config, work: Any) -> Any:
    from bot.services.unmatched import ReviewQueue
    from bot.storage.db import create_engine

    engine = create_engine(config.database.url, 2)
    try:
        return await work(ReviewQueue(engine))
    finally:
        await engine.dispose()


def cmd_unmatched(args: argparse.Namespace) -> int:
    config = _config(args)
    zone = ZoneInfo(config.app.timezone)
    since = utcnow() - timedelta(days=args.days)
    rows = asyncio.run(_with_queue(config, lambda queue: queue.recent_unmatched(args.limit, since)))
    if not rows:
        print(f"最近 {args.days:g} 天没有未能回答的问题。")
        return 0
    print(f"最近 {args.days:g} 天未能回答的问题（新的在前，共 {len(rows)} 条）：")
    for row in rows:
        near = "、".join(row["candidates"] or []) or "无"
        why = (f"居民说答错了；当时回答：{near}" if row.get("reason") == "wrong"
               else f"相近：{near}；得分 {row['score']:.0f}")
        print(f"{_local(row['created_at'], zone)}  {row['text']}  （{why}）")
    return 0


async def _handoff_tickets(config: Config, open_only: bool, limit: int
                           ) -> list[tuple[dict[str, Any], str, dict[str, Any] | None]]:
    """转人工 tickets with the name of the worker each is with and its takeover (live conversation), if any."""
    from bot.services.grids import GridDirectory
    from bot.services.outbox import Outbox
    from bot.services.tickets import ItemCatalog, Tickets
    from bot.storage.db import create_engine

    engine = create_engine(config.database.url, 2)
    try:
        grids = GridDirectory(engine)
        tickets = Tickets(engine, Outbox(engine), config, grids, ItemCatalog(config.app.faq_dir))
        rows = await tickets.of_kind("human", open_only, limit)
        takeovers = await tickets.takeovers.of([t["id"] for t in rows])
        return [(t, ((await grids.worker(t["worker_id"])) or {}).get("name", "（未分派）"), takeovers.get(t["id"]))
                for t in rows]
    finally:
        await engine.dispose()


def cmd_handoffs(args: argparse.Namespace) -> int:
    from bot.services.tickets import STATUS_CN

    config = _config(args)
    zone = ZoneInfo(config.app.timezone)
    rows = asyncio.run(_handoff_tickets(config, not args.all, args.limit))
    if not rows:
        print("没有等待联系的转人工请求。" if not args.all else "没有转人工记录。")
        return 0
    print("转人工工单（先来的在前）：")
    for t, worker, takeover in rows:
        phone = f"  电话：{t['phone']}" if t["phone"] else ""
        talking = ""
        if takeover is not None and takeover["ended_at"] is None:
            talking = f"  对话中（最后消息 {_local(takeover['active_at'], zone)}）"
        print(f"工单{t['id']}  {_local(t['created_at'], zone)}  {STATUS_CN[t['status']]}  承办：{worker}{phone}"
              f"{talking}  {t['content']}")
    if not args.all:
        print("承办人在公众号里回复“接单 编号”，之后居民的消息会转给TA，用“回复 编号 内容”答复；"
              "处理完回复“办结 编号 结果”。")
    return 0
