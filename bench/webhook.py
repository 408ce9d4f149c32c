"""Webhook load benchmark: signed text messages at fixed concurrency against a real `serve`.

Starts `resident-bot serve` (SQLite under a temp dir, or --database-url) with N worker processes,
then drives it from a separate load process over loopback keep-alive connections for a bounded time.
Every request is a distinct signed WeChat text message (MsgId), so deduplication and the conversation
log are exercised for real; the texts cycle through the resident questions of tests/data/dev.tsv
(less the few that ask for a person: 转人工 would open tickets nobody takes and log warnings), so every
message runs the whole dialogue (understanding, conversation state, FAQ answer). Prints msg/s, p50, p99, errors and peak RSS per server process.

    .venv/bin/python bench/webhook.py --workers 2 --connections 32 --seconds 20
    .venv/bin/python bench/webhook.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import shutil

import psutil

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
sys.path.insert(0, str(ROOT))


def load_questions() -> list[str]:
    """The dev questions that do not ask for a person (see the module docstring)."""
    from bot.understanding import load_knowledge

    knowledge, _ = load_knowledge(ROOT / "faq", ROOT / "intents")
    lines = (ROOT / "tests" / "data" / "dev.tsv").read_text("utf-8").splitlines()[1:]
    questions = [line.split("\t")[0] for line in lines if line.strip()]
    return [q for q in questions if knowledge.understand(q).intent != "handoff"]


QUESTIONS = load_questions()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def request_bytes(port: int, openid: str, msg_id: int, text: str) -> bytes:
    ts, nonce = str(int(time.time())), f"n{msg_id}"
    query = f"/wechat?timestamp={ts}&nonce={nonce}&signature={sign(TOKEN, ts, nonce)}"
    body = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
            f"<MsgId>{msg_id}</MsgId></xml>").encode()
    head = (f"POST {query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n").encode()
    return head + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def connection(port: int, conn_id: int, deadline: float, base_id: int, out: dict[str, list]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    try:
        while time.perf_counter() < deadline:
            n += 1
            msg_id = base_id + conn_id * 10_000_000 + n
            data = request_bytes(port, f"oBench{conn_id:03d}_{n % 50}", msg_id, QUESTIONS[n % len(QUESTIONS)])
            t0 = time.perf_counter()
            writer.write(data)
            status = await read_response(reader)
            out["lat"].append(time.perf_counter() - t0)
            if status != 200:
                out["err"].append(status)
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        out["err"].append(type(exc).__name__)
    finally:
        writer.close()


def load_process(port: int, connections: int, seconds: float, base_id: int, queue: "multiprocessing.Queue") -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out: dict[str, list] = {"lat": [], "err": []}

    async def main() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(connection(port, i, deadline, base_id, out) for i in range(connections)))

    cpu = time.process_time()
    asyncio.run(main())
    out["cpu_s"] = [time.process_time() - cpu]
    queue.put(out)


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--database-url", default="")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="rb-bench-")
    db_url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
    port = free_port()
    # A snapshot of the knowledge files, so an edit in the working tree during the run (hot reload)
    # does not disturb the figures.
    shutil.copytree(ROOT / "faq", Path(tmp) / "faq")
    shutil.copytree(ROOT / "intents", Path(tmp) / "intents")
    env = {**os.environ, "RESIDENT_BOT_DATABASE_URL": db_url, "RESIDENT_BOT_WECHAT_TOKEN": TOKEN,
           "RESIDENT_BOT_APP_FAQ_DIR": f"{tmp}/faq", "RESIDENT_BOT_APP_INTENTS_DIR": f"{tmp}/intents",
           "RESIDENT_BOT_APP_LOG_LEVEL": "WARNING", "RESIDENT_BOT_SERVER_PORT": str(port),
           "RESIDENT_BOT_SERVER_WORKERS": str(args.workers), "RESIDENT_BOT_SANDBOX_ENABLED": "true"}
    server = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=env)
    try:
        wait_ready(port, server)
        time.sleep(1.0)
        procs = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
        peak: dict[int, int] = {pr.pid: 0 for pr in procs}
        queue: multiprocessing.Queue = multiprocessing.Queue()
        base_id = int(time.time()) * 1_000_000_000
        if args.warmup:
            warm = multiprocessing.Process(target=load_process, args=(port, 4, args.warmup, base_id, queue))
            warm.start()
            queue.get()
            warm.join()
        loader = multiprocessing.Process(
            target=load_process, args=(port, args.connections, args.seconds, base_id + 500_000_000, queue)
        )
        started = time.perf_counter()
        loader.start()
        result = None
        while result is None:
            for pr in procs:
                try:
                    peak[pr.pid] = max(peak[pr.pid], pr.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            try:
                result = queue.get(timeout=0.25)
            except Exception:  # noqa: BLE001 - queue.Empty
                result = None
        elapsed = time.perf_counter() - started
        loader.join()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    lat = result["lat"]
    figures = {
        "backend": "postgresql" if "postgresql" in db_url else "sqlite",
        "workers": args.workers,
        "connections": args.connections,
        "seconds": args.seconds,
        "messages": len(lat),
        "msg_per_s": round(len(lat) / min(elapsed, args.seconds), 1),
        "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        "errors": len(result["err"]),
        "load_cpu_pct": round(result["cpu_s"][0] / min(elapsed, args.seconds) * 100, 1),
        "peak_rss_mb": {str(pid): round(rss / 2**20, 1) for pid, rss in peak.items()},
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"backend={figures['backend']} workers={args.workers} connections={args.connections} "
              f"seconds={args.seconds}")
        print(f"messages={figures['messages']} msg/s={figures['msg_per_s']} p50={figures['p50_ms']}ms "
              f"p99={figures['p99_ms']}ms errors={figures['errors']} load-generator CPU={figures['load_cpu_pct']}%")
        print("peak RSS per process (MB): " + ", ".join(f"{k}: {v}" for k, v in figures["peak_rss_mb"].items()))
    return 0 if not result["err"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
