"""`resident-bot serve` as a real process: migrates a fresh database, serves, answers, stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.wechat_server import WeChatServerEmulator

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
    assert "Traceback" not in stderr, stderr[stderr.find("Traceback") - 300:][:4000]
