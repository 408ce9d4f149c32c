"""Fan-out benchmark: one notice to N subscribers through the outbox and the mock WeChat API.

    .venv/bin/python bench/fanout.py                      # 50,000 residents, SQLite in a temp dir
    .venv/bin/python bench/fanout.py --residents 5000 --database-url postgresql+asyncpg://…/bench

What it prints:
- scheduler overhead: the cost of one idle tick (nothing due), and of queueing (fan-out into the outbox);
- sends/s: the outbox sender draining every message to the mock WeChat API (another process, real
  HTTP, so the mock's own work is not counted here), with the rate limit off;
- memory: RSS sampled during queueing and sending, and the peak — it should stay flat because the
  fan-out walks residents in chunks and the sender claims batches, never the whole list.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from bot.config import load_config, replace  # noqa: E402
from bot.services.notices import NoticeService, NoticeSettings, load_notice_file  # noqa: E402
from bot.services.outbox import Outbox  # noqa: E402
from bot.services.sender import OutboxSender  # noqa: E402
from bot.storage.db import create_engine  # noqa: E402
from bot.storage.migrate import upgrade  # noqa: E402
from bot.storage.models import NoticeSubscription, OutboxMessage, Resident  # noqa: E402
from bot.wechat.api import build_wechat_api  # noqa: E402

MOCK = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, {root!r})
    from bot.sandbox.mock_wechat import MockWeChat
    async def main():
        mock = MockWeChat()
        print(await mock.start(), flush=True)
        await asyncio.Event().wait()
    asyncio.run(main())
""")

NOTICE = 'title = "压测通知"\ncategory = "义诊"\ntext = "这是一条压测通知。"\n'


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


async def sample_rss(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(rss_mb())
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except asyncio.TimeoutError:
            pass


async def seed(engine, n: int, now: datetime) -> None:  # type: ignore[no-untyped-def]
    for start in range(0, n, 5000):
        ids = [f"oBench{i:07d}" for i in range(start, min(n, start + 5000))]
        async with engine.begin() as conn:
            await conn.execute(insert(Resident.__table__), [
                {"openid": o, "subscribed": True, "subscribed_at": now, "last_seen_at": now} for o in ids])
            await conn.execute(insert(NoticeSubscription.__table__), [
                {"openid": o, "category": "义诊", "subscribed": True, "updated_at": now} for o in ids])


async def count(engine, status: str | None = None) -> int:  # type: ignore[no-untyped-def]
    stmt = select(func.count()).select_from(OutboxMessage)
    if status:
        stmt = stmt.where(OutboxMessage.status == status)
    async with engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


async def run(args: argparse.Namespace, base_url: str, tmp: Path) -> None:
    url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    config = replace(
        load_config(None, env={}), database={"url": url}, sandbox={"enabled": "true"},
        wechat={"api_base_url": base_url, "api_timeout": 10.0},
        outbox={"batch_size": args.batch, "rate_per_second": 0.0},
        notices={"send_rate": 0.0, "chunk_size": args.chunk, "default_channel": "custom",
                 "quiet_start": "00:00", "quiet_end": "00:00"},
    )
    engine = create_engine(url, 20)
    now = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    await seed(engine, args.residents, now)
    print(f"seeded {args.residents} residents + subscriptions in {time.perf_counter() - t0:.1f} s")
    service = NoticeService(engine, Outbox(engine), NoticeSettings.from_config(config))

    idle = []
    for _ in range(50):
        t = time.perf_counter()
        await service.tick()
        idle.append((time.perf_counter() - t) * 1000)
    print(f"scheduler idle tick: median {statistics.median(idle):.2f} ms (nothing due; one claim query)")

    path = tmp / "bench.toml"
    path.write_text(NOTICE, encoding="utf-8")
    await service.add(load_notice_file(path, service.settings))
    samples: list[float] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(samples, stop))
    t = time.perf_counter()
    results = await service.tick()
    queue_s = time.perf_counter() - t
    queued = await count(engine)
    assert results and results[0][1].status == "done", results
    print(f"fan-out (queue into outbox): {queued} messages in {queue_s:.2f} s = {queued / queue_s:,.0f}/s "
          f"(chunk {args.chunk}); scheduler cost per message {queue_s / queued * 1e6:.0f} µs")
    rss_after_queue = rss_mb()

    api = build_wechat_api(config, engine)
    sender = OutboxSender(engine, api, config.outbox, rate_per_second=0)
    t = time.perf_counter()
    while await sender.run_once():
        pass
    send_s = time.perf_counter() - t
    sent = await count(engine, "sent")
    stop.set()
    await sampler
    await api.close()
    print(f"send (outbox → mock WeChat over HTTP, rate limit off, batch {args.batch}): {sent} sent in "
          f"{send_s:.1f} s = {sent / send_s:,.0f} sends/s")
    print(f"RSS: min {min(samples):.0f} MB, after queueing {rss_after_queue:.0f} MB, max {max(samples):.0f} MB; "
          f"peak RSS (ru_maxrss) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if sent != args.residents:
        print(f"WARNING: {args.residents - sent} not sent", file=sys.stderr)
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=50_000)
    parser.add_argument("--chunk", type=int, default=500, help="notices.chunk_size")
    parser.add_argument("--batch", type=int, default=200, help="outbox.batch_size (rows claimed per round)")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    args = parser.parse_args()
    mock = subprocess.Popen([sys.executable, "-c", MOCK.format(root=str(ROOT))], stdout=subprocess.PIPE, text=True)
    try:
        assert mock.stdout is not None
        base_url = mock.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(args, base_url, Path(tmp)))
    finally:
        mock.terminate()
        mock.wait()


if __name__ == "__main__":
    main()
