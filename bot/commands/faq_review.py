"""``resident-bot faq unmatched|handoffs|handoff-done``: what the FAQ missed, and who waits for a person.

Why commands: admins review unanswered questions to add them to ``faq/`` (as ``questions`` of an item,
or as a new item), and staff call back residents who asked for 转人工. Both lists are read from the
database the bot writes (``bot.services.unmatched``); times are shown in the community's local time.
Texts were stored with phone and ID numbers masked.
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
    handoffs = faq_sub.add_parser("handoffs", help="列出要求转人工、等待工作人员联系的居民")
    handoffs.add_argument("--all", action="store_true", help="include finished ones")
    handoffs.add_argument("--limit", type=int, default=100)
    handoffs.set_defaults(func=cmd_handoffs)
    done = faq_sub.add_parser("handoff-done", help="把一条转人工记录标记为已联系")
    done.add_argument("id", type=int)
    done.set_defaults(func=cmd_handoff_done)


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
        print(f"{_local(row['created_at'], zone)}  {row['text']}  （相近：{near}；得分 {row['score']:.0f}）")
    return 0


def cmd_handoffs(args: argparse.Namespace) -> int:
    config = _config(args)
    zone = ZoneInfo(config.app.timezone)
    status = None if args.all else "open"
    rows = asyncio.run(_with_queue(config, lambda queue: queue.handoffs(status, args.limit)))
    if not rows:
        print("没有等待联系的转人工请求。" if status else "没有转人工记录。")
        return 0
    print("转人工请求（先来的在前）：")
    for row in rows:
        state = "待联系" if row["status"] == "open" else f"已联系 {_local(row['closed_at'], zone)}"
        about = f"  事项：{row['item']}" if row["item"] else ""
        print(f"#{row['id']}  {_local(row['created_at'], zone)}  {state}  居民：{row['openid']}  "
              f"说：{row['text']}{about}")
    if status:
        print("联系过后运行：resident-bot faq handoff-done 编号")
    return 0


def cmd_handoff_done(args: argparse.Namespace) -> int:
    config = _config(args)
    closed = asyncio.run(_with_queue(config, lambda queue: queue.close_handoff(args.id, utcnow())))
    if not closed:
        print(f"没有编号为 {args.id} 的待联系请求。")
        return 1
    print(f"#{args.id} 已标记为已联系。")
    return 0
