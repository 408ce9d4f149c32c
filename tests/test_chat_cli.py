"""``resident-bot chat`` driven through a pipe, the way a script or a tired engineer at 2 a.m. would."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.commands.chat import format_message, format_result, line_to_request, resolve_openid
from bot.handlers.account import WELCOME
from bot.handlers.fallback import VOICE_UNCLEAR
from bot.web.chatkit import SAMPLE_RESIDENTS
from tests.conftest import ROOT, TEST_AES_KEY, TEST_APPID, TEST_TOKEN, make_config
from tests.gateway_helpers import running_app

ZHANG = SAMPLE_RESIDENTS[0]["openid"]


def chat_env(**extra: str) -> dict[str, str]:
    """The environment of a deployment: only RESIDENT_BOT_* keys, knowledge paths made absolute."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESIDENT_BOT_")}
    env.update({
        "PYTHONPATH": str(ROOT),
        "RESIDENT_BOT_APP_FAQ_DIR": str(ROOT / "faq"),
        "RESIDENT_BOT_APP_INTENTS_DIR": str(ROOT / "intents"),
        "RESIDENT_BOT_APP_CATALOG_FILE": str(ROOT.parent / "shared" / "catalog" / "service-items.tsv"),
        **extra,
    })
    return env


def replies(stdout: str) -> list[str]:
    """The first line of every passive reply, in order."""
    return [line[len("回复> "):] for line in stdout.splitlines() if line.startswith("回复> ")]


def test_piped_session_against_an_in_process_bot(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"  # does not exist yet: chat must migrate it
    script = "你好\n\n/voice\n/voice 我想办低保\n/click 办事指南\n/loc\n/follow grid:3\n/nonsense\n/quit\n没发出去\n"
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "chat", "--linger", "0.2"],
        input=script, capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=chat_env(RESIDENT_BOT_DATABASE_URL=f"sqlite+aiosqlite:///{db}"),
    )
    assert proc.returncode == 0, proc.stderr
    got = replies(proc.stdout)
    assert len(got) == 6, proc.stdout  # six things sent, six passive replies; the blank line sends nothing
    assert got[1] == VOICE_UNCLEAR and got[2] != VOICE_UNCLEAR
    assert all(r.strip() for r in got)
    assert got[5] == WELCOME.splitlines()[0]
    assert "/nonsense" in proc.stdout and "/help" in proc.stdout
    assert "没发出去" not in proc.stdout.split("你> /quit")[1]  # nothing after /quit is sent
    assert "Traceback" not in proc.stderr
    with sqlite3.connect(db) as conn:  # it used the configured database
        scene = conn.execute("SELECT scene FROM residents WHERE openid = ?", (ZHANG,)).fetchone()
        logged = conn.execute("SELECT COUNT(*) FROM messages WHERE openid = ?", (ZHANG,)).fetchone()[0]
    assert scene == ("grid:3",) and logged == 12


def test_in_process_bot_delivers_late_answers_through_the_mock_api(tmp_path: Path) -> None:
    """Past the deadline the reply is ``success`` and the answer comes back as a 客服 message."""
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "chat", "--openid", "new", "--poll", "0.1", "--linger", "3"],
        input="你好\n", capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=chat_env(RESIDENT_BOT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'late.db'}",
                     RESIDENT_BOT_WECHAT_REPLY_DEADLINE="0"),
    )
    assert proc.returncode == 0, proc.stderr
    assert not replies(proc.stdout) and "success" in proc.stdout
    custom = [line for line in proc.stdout.splitlines() if line.startswith("客服> ")]
    assert len(custom) == 1 and custom[0][len("客服> "):].strip(), proc.stdout


def test_refuses_to_run_in_process_on_a_production_config(tmp_path: Path) -> None:
    """Its outbox sender would hand residents' real pending messages to the mock."""
    db = tmp_path / "prod.db"
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "chat"], input="你好\n", capture_output=True, text=True, timeout=60,
        cwd=tmp_path, env=chat_env(RESIDENT_BOT_DATABASE_URL=f"sqlite+aiosqlite:///{db}",
                                   RESIDENT_BOT_SANDBOX_ENABLED="false", RESIDENT_BOT_WECHAT_APP_ID=TEST_APPID,
                                   RESIDENT_BOT_WECHAT_APP_SECRET="s" * 32),
    )
    assert proc.returncode == 2 and "--url" in proc.stderr
    assert not db.exists() and not proc.stdout


async def _chat_subprocess(args: list[str], script: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "chat", *args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(script.encode()), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_url_mode_talks_encrypted_to_a_running_bot_and_shows_later_messages(
    db_url: str, http: aiohttp.ClientSession,
) -> None:
    """Against a bot in safe mode, with a mock whose record gains a message while we chat."""
    later = {"id": 41, "touser": ZHANG, "kind": "custom", "msgtype": "text", "text": "您的代办已受理\n网格员会联系您"}
    calls: list[dict[str, str]] = []

    async def messages(request: web.Request) -> web.Response:
        calls.append(dict(request.query))
        after = int(request.query.get("after", "0"))
        old = [{"id": 40, "touser": ZHANG, "kind": "custom", "msgtype": "text", "text": "以前的消息"}]
        ready = old + ([later] if len(calls) > 1 else [])
        return web.json_response({"messages": [m for m in ready if m["id"] > after]})

    mock_app = web.Application()
    mock_app.router.add_get("/_sandbox/wechat/_mock/messages", messages)
    mock = TestServer(mock_app, host="127.0.0.1")
    await mock.start_server()
    try:
        base = str(mock.make_url("/_sandbox/wechat/cgi-bin/"))
        config = make_config(db_url, mode="safe", wechat={"api_base_url": base})
        async with running_app(config, http) as (server, _, _s):
            env = chat_env(RESIDENT_BOT_WECHAT_TOKEN=TEST_TOKEN, RESIDENT_BOT_WECHAT_MODE="safe",
                           RESIDENT_BOT_WECHAT_ENCODING_AES_KEY=TEST_AES_KEY, RESIDENT_BOT_WECHAT_APP_ID=TEST_APPID,
                           RESIDENT_BOT_WECHAT_API_BASE_URL=base, RESIDENT_BOT_DATABASE_URL=db_url)
            code, out, err = await _chat_subprocess(
                ["--url", str(server.make_url("/wechat")), "--openid", "张大爷", "--linger", "0.3"],
                "低保怎么申请\n", env)  # no /quit: end of input ends the chat
    finally:
        await mock.close()
    assert code == 0, err
    assert len(replies(out)) == 1
    assert "客服> 您的代办已受理" in out and "以前的消息" not in out  # history is skipped, news is shown
    assert calls[0] == {"touser": ZHANG, "after": "0"} and calls[-1]["after"] == "41"


async def test_wrong_token_is_reported_not_crashed(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (server, _, _s):
        env = chat_env(RESIDENT_BOT_WECHAT_TOKEN="not-the-token", RESIDENT_BOT_DATABASE_URL=db_url)
        code, out, err = await _chat_subprocess(["--url", str(server.make_url("/")), "--linger", "0"], "你好\n", env)
    assert code == 0, err
    assert "HTTP 403" in out and not replies(out)


def test_lines_become_wechat_actions() -> None:
    assert line_to_request("你好") == {"kind": "text", "text": "你好"}
    assert line_to_request("/::)") == {"kind": "text", "text": "/::)"}  # a WeChat face code, not a command
    assert line_to_request("/voice") == {"kind": "voice", "text": ""}
    assert line_to_request("/click 我的工单") == {"kind": "click", "key": "MY_TICKETS"}
    assert line_to_request("/click guide") == {"kind": "click", "key": "GUIDE"}
    assert line_to_request("/follow grid:3") == {"kind": "subscribe", "scene": "grid:3"}
    assert line_to_request("/loc 村委会")["label"] == "村委会"  # type: ignore[index]
    assert line_to_request("/as 王师傅") == {"as": SAMPLE_RESIDENTS[2]["openid"]}
    assert resolve_openid("new").startswith("oSimNew")


def test_replies_print_readably() -> None:
    text: dict[str, Any] = {"status": 200, "success": False, "reply": {"msgtype": "text", "text": "第一行\n第二行"}}
    assert format_result(text) == "回复> 第一行\n      第二行"
    assert format_result({"status": 200, "success": True, "reply": None}).startswith("系统> ")
    news = {"status": 200, "success": False,
            "reply": {"msgtype": "news", "title": "低保", "description": "带身份证", "url": "https://x/y"}}
    assert format_result(news).startswith("回复> [图文] 低保")
    assert format_message({"kind": "template", "text": "工单已办结"}) == "模板> 工单已办结"
