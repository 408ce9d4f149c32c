"""`resident-bot serve` as a real process: migrates a fresh database, serves, answers, stops cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.wechat_server import WeChatServerEmulator
from bot.storage.db import _sqlite_pragmas
from bot.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen, timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early with {proc.returncode}")
        try:
            async with session.get(url + "/healthz") as r:
                if r.status == 200:
                    return await r.json()
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("serve did not become healthy")


@pytest.mark.parametrize("workers", [1, 2])
async def test_serve_migrates_answers_and_stops(tmp_path: Path, http: aiohttp.ClientSession, workers: int) -> None:
    port = free_port()
    db = tmp_path / "var" / "bot.db"
    env = {**os.environ, "RESIDENT_BOT_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
           "RESIDENT_BOT_SERVER_PORT": str(port), "RESIDENT_BOT_SERVER_WORKERS": str(workers),
           "RESIDENT_BOT_WECHAT_TOKEN": "proc-token", "RESIDENT_BOT_APP_LOG_LEVEL": "INFO"}
    env.pop("TEST_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        health = await wait_healthy(http, url, proc)
        assert health["database"] == "ok"
        assert db.exists()
        emu = WeChatServerEmulator(url + "/wechat", "proc-token", session=http)
        replies = [await emu.send(emu.text(f"oProc{i}", "你好，请问在吗")) for i in range(6)]
        assert all(r.status == 200 and r.text for r in replies)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    assert "proc-token" not in stderr  # the webhook token is a secret
    assert_no_traceback(stderr)
    assert_every_worker_stopped(stderr, workers)
    with sqlite3.connect(db) as conn:  # the journal was flushed before the workers exited
        logged = conn.execute("SELECT direction, count(*) FROM messages WHERE openid LIKE 'oProc%' "
                              "GROUP BY direction").fetchall()
    assert dict(logged) == {"in": 6, "out": 6}


def serve_env(tmp_path: Path, workers: int) -> dict[str, str]:
    env = {**os.environ, "RESIDENT_BOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'bot.db'}",
           "RESIDENT_BOT_SERVER_PORT": str(free_port()), "RESIDENT_BOT_SERVER_WORKERS": str(workers),
           "RESIDENT_BOT_WECHAT_TOKEN": "proc-token", "RESIDENT_BOT_APP_LOG_LEVEL": "INFO"}
    env.pop("TEST_DATABASE_URL", None)
    return env


def tracebacks(stderr: str) -> str:
    """Every traceback on ``stderr``, shortened to what tells them apart: who logged it, where it was
    raised and what was raised (a JSON log record's ``exc``, or one printed raw, e.g. by
    multiprocessing), so that a failure under load says what raised even when the log is long."""
    found: list[str] = []
    raw: list[str] = []
    for line in stderr.splitlines():
        if raw:
            raw.append(line)
            if not line.startswith((" ", "Traceback")) and line.strip():  # the exception line ends it
                found.append("\n".join(raw if len(raw) <= 8 else raw[:1] + ["  …"] + raw[-6:]))
                raw = []
            continue
        if line.startswith("Traceback") or line.startswith("Process "):
            raw = [line]
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "Traceback" in str(record.get("exc", "")):
            tail = [x for x in record["exc"].splitlines() if x.strip() and not x.strip().startswith("^")][-7:]
            found.append(f"{record.get('ts')} {record.get('logger')}: {record.get('msg')}\n" + "\n".join(tail))
    if raw:
        found.append("\n".join(raw if len(raw) <= 8 else raw[:1] + ["  …"] + raw[-6:]))
    return "\n\n".join(found)


def assert_no_traceback(stderr: str) -> None:
    lifecycle = [line for line in stderr.splitlines() if "bot.commands.serve" in line or "Scheduler" in line]
    assert "Traceback" not in stderr, tracebacks(stderr) + "\n\n" + "\n".join(lifecycle)


def assert_every_worker_stopped(stderr: str, workers: int) -> None:
    """Each worker says so when its shutdown (journal flush, schedulers, engine) is done."""
    lines = [line for line in stderr.splitlines() if "bot.commands.serve" in line]
    for i in range(workers):
        assert f"worker {i} stopped" in stderr, "\n".join(lines) or stderr[-3000:]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_while_the_workers_start_up_stops_each_of_them_cleanly(tmp_path: Path,
                                                                              sig: signal.Signals) -> None:
    """SIGTERM or Ctrl-C right after the banner, while the workers are being forked or are loading.

    Before, the signal could land before anyone handled it: the parent, still forking, died of
    SIGTERM's default action (or raised KeyboardInterrupt); a worker still loading was killed without
    any shutdown (SIGTERM) or printed a KeyboardInterrupt traceback (SIGINT).
    """
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=serve_env(tmp_path, 2),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    early: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # migrations log first; the banner comes just before the workers start
            early.append(line)
            if line.startswith("resident-bot on "):
                break
        proc.send_signal(sig)
        _, rest = proc.communicate(timeout=60)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # nothing it started (a worker orphaned…) outlives the test
        except ProcessLookupError:
            pass
        proc.wait()
    stderr = "".join(early) + rest
    assert proc.returncode == 0, stderr[-3000:]
    assert_no_traceback(stderr)
    assert_every_worker_stopped(stderr, 2)


def test_workers_opening_the_freshly_migrated_database_at_once_never_find_it_locked(tmp_path: Path) -> None:
    """The first connections of the workers run the app's connect pragmas at the same moment.

    On a file the migration had left in rollback-journal mode each of them tried to switch it to WAL,
    and in a few rounds out of a hundred one got "database is locked" at once, whatever the busy
    timeout — in ``serve`` a traceback from a worker's first ticket poll or notice tick.
    """
    template = tmp_path / "migrated.db"
    upgrade(f"sqlite+aiosqlite:///{template}")
    failures: list[str] = []
    for round_ in range(200):
        db = tmp_path / f"round{round_}.db"
        shutil.copyfile(template, db)  # a freshly migrated file each round, no connection open yet
        start = threading.Barrier(3)

        def first_connection(db: Path = db, start: threading.Barrier = start, round_: int = round_) -> None:
            conn = sqlite3.connect(db, check_same_thread=False)
            try:
                start.wait()
                _sqlite_pragmas(conn, None)
                conn.execute("SELECT count(*) FROM messages").fetchone()
            except sqlite3.OperationalError as exc:
                failures.append(f"round {round_}: {exc}")
            finally:
                conn.close()

        threads = [threading.Thread(target=first_connection) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
