"""Ticket benchmark: create and route 10,000 tickets through the dialogue layer, then time "我的任务".

Builds the real services (migrated SQLite under a temp dir, or --database-url), imports the sample
grids, binds the workers, puts residents into grids, then sends each resident's "报修 …" and "提交"
through ``Dispatcher.handle`` (the same object the webhook calls) at fixed concurrency. Every ticket
is deduplicated, routed to its grid's worker, audited, gets its timers and an outbox notification.
Prints tickets/s and the p50/p99 of a worker's "我的任务" (oldest first) with all tickets in the store.

    .venv/bin/python bench/tickets.py --tickets 10000 --concurrency 32
    .venv/bin/python bench/tickets.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import build_services  # noqa: E402
from bot.config import load_config, replace  # noqa: E402
from bot.dispatch.events import TextMessage  # noqa: E402
from bot.services.grids import parse_grids_file  # noqa: E402
from bot.storage.migrate import upgrade_async  # noqa: E402

PROBLEMS = ["楼道灯坏了", "垃圾桶满了没人清", "下水道堵了", "路面有个坑", "单元门锁坏了", "树枝挡住路了"]


def text(openid: str, content: str, n: int) -> TextMessage:
    return TextMessage(openid=openid, account="gh_bench", create_time=int(time.time()), msg_id=f"b{n}",
                       content=content)


async def run(args: argparse.Namespace) -> dict[str, float]:
    tmp = tempfile.mkdtemp(prefix="bench-tickets-")
    url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
    await upgrade_async(url)
    config = replace(load_config(None, env={}), database={"url": url}, sandbox={"enabled": "true"},
                     app={"faq_dir": str(ROOT / "faq"), "intents_dir": str(ROOT / "intents"),
                          "catalog_file": str(ROOT.parent / "shared" / "catalog" / "service-items.tsv"),
                          "data_dir": tmp},
                     # nearby_days = 0: the "我也遇到了" query still runs but never matches, so every
                     # resident's report becomes its own ticket (what this benchmark counts).
                     tickets={"timer_poll_seconds": 3600.0, "nearby_days": 0})
    services = await build_services(config)
    tickets = services.tickets
    data = parse_grids_file(ROOT / "samples" / "grids.toml")
    await tickets.grids.import_file(data)
    workers = []
    for i, phone in enumerate(w.phone for w in data.workers.values()):
        w = await tickets.grids.worker_by_phone(phone)
        code = await tickets.grids.create_invite(w["id"], 1)
        await tickets.grids.bind(code, f"oBenchWorker{i:04d}")
        workers.append(f"oBenchWorker{i:04d}")
    grid_ids = [g.id for g in data.grids]
    residents = [f"oBenchResident{i:06d}" for i in range(args.tickets)]
    for i, openid in enumerate(residents):
        await tickets.grids.assign(openid, grid_ids[i % len(grid_ids)], "chat")

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(args.tickets):
        queue.put_nowait(i)
    created = 0

    async def client() -> None:
        nonlocal created
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            openid = residents[i]
            await services.dispatcher.handle(text(openid, f"报修 {PROBLEMS[i % len(PROBLEMS)]}，{i}号", 2 * i))
            reply = await services.dispatcher.handle(text(openid, "提交", 2 * i + 1))
            if reply.meta.get("ticket"):
                created += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started

    # "我的任务" for the worker with the most open tickets
    latencies = []
    worker_openid = workers[2]  # 张秀英, grid 1
    for n in range(args.queries):
        t0 = time.perf_counter()
        reply = await services.dispatcher.handle(text(worker_openid, "我的任务", 10_000_000 + n))
        latencies.append((time.perf_counter() - t0) * 1000)
    assert reply.intent == "ticket:tasks", reply
    latencies.sort()
    async with services.engine.connect() as conn:
        from sqlalchemy import func, select

        from bot.storage.models import Ticket

        total = (await conn.execute(select(func.count()).select_from(Ticket))).scalar_one()
    await services.close()
    return {
        "tickets_requested": args.tickets, "tickets_in_store": total, "created": created,
        "seconds": round(elapsed, 2), "tickets_per_second": round(args.tickets / elapsed, 1),
        "my_tasks_p50_ms": round(statistics.median(latencies), 2),
        "my_tasks_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "backend": "postgresql" if "postgresql" in url else "sqlite",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickets", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--database-url", default="")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:22} {v}")


if __name__ == "__main__":
    main()
