"""``resident-bot grids import FILE``, ``workers invite``, ``workers leave``, ``report``: the admins' side of tickets."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.cli import config_from_args
from bot.config import Config
from bot.storage.db import create_engine


def _run(coro: Any) -> int:
    return int(asyncio.run(coro) or 0)


async def _with_engine(config: Config, fn: Any) -> int:
    from bot.services.grids import GridDirectory

    engine = create_engine(config.database.url, 2)
    try:
        return int(await fn(engine, GridDirectory(engine)) or 0)
    finally:
        await engine.dispose()


def _import(args: argparse.Namespace) -> int:
    from bot.services.grids import GridsFileError, parse_grids_file

    try:
        data = parse_grids_file(args.file)
    except GridsFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"导入失败：{len(exc.problems)}处错误，数据库没有改动。", file=sys.stderr)
        return 1

    async def go(engine: Any, grids: Any) -> int:
        n_grids, n_workers = await grids.import_file(data)
        print(f"已导入 {n_grids} 个网格、{n_workers} 位人员。")
        return 0

    return _run(_with_engine(config_from_args(args), go))


async def _find_worker(grids: Any, args: argparse.Namespace) -> dict[str, Any] | None:
    if args.id is not None:
        return await grids.worker(args.id)
    return await grids.worker_by_phone(args.phone)


def _invite(args: argparse.Namespace) -> int:
    config = config_from_args(args)

    async def go(engine: Any, grids: Any) -> int:
        worker = await _find_worker(grids, args)
        if worker is None:
            print("没有这位人员，请先用 grids import 导入。", file=sys.stderr)
            return 1
        code = await grids.create_invite(worker["id"], config.tickets.invite_ttl_hours)
        print(f"{worker['name']}（编号{worker['id']}）的绑定码：{code}")
        print(f"请他在公众号里发送“绑定 {code}”，{config.tickets.invite_ttl_hours}小时内有效，只能用一次。")
        return 0

    return _run(_with_engine(config, go))


def _leave(args: argparse.Namespace) -> int:
    async def go(engine: Any, grids: Any) -> int:
        worker = await _find_worker(grids, args)
        if worker is None:
            print("没有这位人员。", file=sys.stderr)
            return 1
        await grids.set_leave(worker["id"], args.state == "on")
        print(f"{worker['name']}：{'请假中，新工单交给备岗' if args.state == 'on' else '已销假'}")
        return 0

    return _run(_with_engine(config_from_args(args), go))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _report(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    month = args.month or datetime.now(ZoneInfo(config.app.timezone)).strftime("%Y-%m")

    async def go(engine: Any, grids: Any) -> int:
        from bot.services.outbox import Outbox
        from bot.services.tickets import ItemCatalog, Tickets

        tickets = Tickets(engine, Outbox(engine), config, grids, ItemCatalog(config.app.faq_dir))
        rows = await tickets.report(month, args.by)
        title = "网格员" if args.by == "worker" else "网格"
        print(f"{month} 工单统计（按{title}）")
        print(f"{title}\t工单数\t响应率\t解决率\t满意率\t评价数")
        for r in rows:
            print(f"{r['name']}\t{r['total']}\t{_pct(r['response_rate'])}\t{_pct(r['solve_rate'])}\t"
                  f"{_pct(r['satisfaction_rate'])}\t{r['rated']}")
        if not rows:
            print("（本月没有工单）")
        return 0

    return _run(_with_engine(config, go))


def _who(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--phone", help="the worker's phone as in the grids file")
    group.add_argument("--id", type=int, help="the worker's number")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    grids = sub.add_parser("grids", help="网格与网格员 (grids and grid workers)")
    gsub = grids.add_subparsers(dest="grids_command", required=True)
    imp = gsub.add_parser("import", help="load grids and workers from a CSV or TOML file (see samples/grids.toml)")
    imp.add_argument("file")
    imp.set_defaults(func=_import)

    workers = sub.add_parser("workers", help="网格员账号 (worker invite codes, leave)")
    wsub = workers.add_subparsers(dest="workers_command", required=True)
    inv = wsub.add_parser("invite", help="a one-time code the worker sends as “绑定 123456”")
    _who(inv)
    inv.set_defaults(func=_invite)
    leave = wsub.add_parser("leave", help="mark a worker on leave (on) or back (off)")
    _who(leave)
    leave.add_argument("state", choices=["on", "off"])
    leave.set_defaults(func=_leave)

    rep = sub.add_parser("report", help="响应率/解决率/满意率 per worker or grid for a month")
    rep.add_argument("--month", help="YYYY-MM (default: this month)")
    rep.add_argument("--by", choices=["worker", "grid"], default="worker")
    rep.set_defaults(func=_report)
