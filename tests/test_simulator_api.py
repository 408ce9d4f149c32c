"""The simulator's JSON API: it posts real signed XML to the webhook and reads the mock's record."""

from __future__ import annotations

import asyncio
import socket
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from bot.commands.chat import local_bot, local_config
from bot.config import Config, replace
from bot.dispatch.events import TextMessage
from bot.handlers.account import WELCOME
from bot.handlers.fallback import MENU_NAMES, VOICE_UNCLEAR
from bot.storage.models import Message
from bot.web.chatkit import SAMPLE_LOCATION, mock_root
from tests.conftest import make_config
from tests.gateway_helpers import running_app

OPENID = "oSimTest000000000001"


async def _send(http: aiohttp.ClientSession, server: TestServer, **body: Any) -> tuple[int, dict[str, Any]]:
    async with http.post(server.make_url("/simulator/api/send"), json={"openid": OPENID, **body}) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("mode", ["plain", "compatible", "safe"])
async def test_text_goes_through_the_real_webhook_in_every_mode(
    db_url: str, http: aiohttp.ClientSession, mode: str
) -> None:
    async with running_app(make_config(db_url, mode=mode), http) as (server, _, services):
        status, data = await _send(http, server, kind="text", text="低保怎么办？")
        assert status == 200, data
        assert data["status"] == 200 and data["reply"]["msgtype"] == "text" and data["reply"]["text"]
        assert data["encrypted"] is (mode != "plain")
        assert data["sent"] == {"kind": "text", "summary": "低保怎么办？"}
        await services.journal.flush()
        # The webhook logged the message in and the answer out: it really went through the gateway.
        async with services.engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(Message)
                                        .where(Message.openid == OPENID))).scalar_one()
        assert count == 2


async def test_voice_without_recognition_asks_to_type(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (server, _, _s):
        _, data = await _send(http, server, kind="voice", text="  ")
        assert data["reply"]["text"] == VOICE_UNCLEAR
        _, heard = await _send(http, server, kind="voice", text="我想办低保")
        assert heard["sent"]["summary"] == "我想办低保" and heard["reply"]["text"] != VOICE_UNCLEAR


async def test_menu_click_location_and_follow_with_scene(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (server, _, services):
        _, click = await _send(http, server, kind="click", key="GUIDE")
        assert click["sent"]["summary"] == "[菜单] GUIDE" and click["reply"]["text"]
        _, loc = await _send(http, server, kind="location")
        assert loc["sent"]["summary"] == f"[位置] {SAMPLE_LOCATION['label']}" and loc["reply"]["text"]
        _, follow = await _send(http, server, kind="subscribe", scene="grid:3")
        assert follow["reply"]["text"] == WELCOME
        resident = await services.residents.get(OPENID)
        assert resident and resident["scene"] == "grid:3" and resident["subscribed"]


async def test_every_menu_key_gets_an_answer(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (server, _, _s):
        for key in MENU_NAMES:
            status, data = await _send(http, server, kind="click", key=key)
            assert status == 200 and data["status"] == 200, (key, data)


@pytest.mark.parametrize("body", [
    {"kind": "text", "openid": "<script>"},
    {"kind": "shout", "text": "hi"},
    {"kind": "click", "key": ""},
    {"kind": "text", "text": "长" * 2001},
    {"kind": "location", "latitude": "north"},
    {"kind": "text", "text": 5},
])
async def test_bad_requests_are_400_and_reach_nothing(
    db_url: str, http: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    async with running_app(make_config(db_url), http) as (server, _, services):
        async with http.post(server.make_url("/simulator/api/send"), json={"openid": OPENID, **body}) as resp:
            assert resp.status == 400 and "error" in await resp.json()
        async with http.post(server.make_url("/simulator/api/send"), data=b"not json") as resp:
            assert resp.status == 400
        await services.journal.flush()
        assert await services.residents.get(OPENID) is None


async def test_not_served_outside_sandbox_or_when_switched_off(db_url: str, http: aiohttp.ClientSession) -> None:
    production = replace(make_config(db_url), sandbox={"enabled": "false"}, wechat={"app_secret": "s" * 32})
    switched_off = replace(make_config(db_url), sandbox={"simulator": False})
    for config in (production, switched_off):
        async with running_app(config, http) as (server, _, _s):
            for method, path in (("GET", "/simulator"), ("GET", "/simulator/static/simulator.js"),
                                 ("GET", "/simulator/api/config"), ("POST", "/simulator/api/send"),
                                 ("GET", "/simulator/api/messages?openid=x")):
                async with http.request(method, server.make_url(path), json={}) as resp:
                    assert resp.status == 404, (config.sandbox, path)


async def test_page_and_assets_are_served_with_a_strict_policy(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (server, _, _s):
        async with http.get(server.make_url("/simulator")) as resp:
            assert resp.status == 200 and "普子岭社区" in await resp.text()
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        for name in ("simulator.js", "simulator.css"):
            async with http.get(server.make_url(f"/simulator/static/{name}")) as resp:
                assert resp.status == 200
        async with http.get(server.make_url("/simulator/static/../simulator.py")) as resp:
            assert resp.status in (403, 404)
        async with http.get(server.make_url("/simulator/api/config")) as resp:
            data = await resp.json()
        assert [r["name"] for r in data["residents"]][:3] == ["张大爷", "李阿姨", "王师傅"]
        assert [m["key"] for m in data["menu"]] == ["GUIDE", "PROXY", "REPORT", "ACTIVITIES", "MY_TICKETS"]


# --- customer-service messages: read from the mock WeChat API's record ---------------------------


@asynccontextmanager
async def fake_mock(records: list[dict[str, Any]]) -> AsyncIterator[tuple[TestServer, list[dict[str, str]]]]:
    """A stand-in honouring the mock's contract: ``GET …/_mock/messages?touser=&after=``."""
    seen: list[dict[str, str]] = []

    async def messages(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        after = int(request.query.get("after", "0"))
        touser = request.query.get("touser")
        return web.json_response({"messages": [m for m in records if m["touser"] == touser and m["id"] > after]})

    app = web.Application()
    app.router.add_get("/_sandbox/wechat/_mock/messages", messages)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server, seen
    finally:
        await server.close()


async def test_messages_are_read_from_the_mock_after_a_cursor(db_url: str, http: aiohttp.ClientSession) -> None:
    records = [
        {"id": 1, "touser": OPENID, "kind": "custom", "msgtype": "text", "text": "您的工单已受理", "ts": 1},
        {"id": 2, "touser": "oOther", "kind": "custom", "msgtype": "text", "text": "别人的", "ts": 2},
        {"id": 3, "touser": OPENID, "kind": "template", "msgtype": "template", "text": "工单进度：已办结", "ts": 3},
    ]
    async with fake_mock(records) as (mock, seen):
        base = str(mock.make_url("/_sandbox/wechat/cgi-bin/"))
        config = make_config(db_url, wechat={"api_base_url": base})
        async with running_app(config, http) as (server, _, _s):
            async with http.get(server.make_url("/simulator/api/messages"), params={"openid": OPENID}) as resp:
                data = await resp.json()
            assert data["available"] is True
            assert [(m["id"], m["kind"], m["text"]) for m in data["messages"]] == [
                (1, "custom", "您的工单已受理"), (3, "template", "工单进度：已办结")]
            async with http.get(server.make_url("/simulator/api/messages"),
                                params={"openid": OPENID, "after": "1"}) as resp:
                assert [m["id"] for m in (await resp.json())["messages"]] == [3]
            async with http.get(server.make_url("/simulator/api/messages"),
                                params={"openid": "<bad>", "after": "1"}) as resp:
                assert resp.status == 400
    assert seen[0] == {"touser": OPENID, "after": "0"}


async def test_missing_mock_means_not_connected_not_an_error(db_url: str, http: aiohttp.ClientSession) -> None:
    config = make_config(db_url, wechat={"api_base_url": "http://127.0.0.1:9/_sandbox/wechat/cgi-bin/"})
    async with running_app(config, http) as (server, _, _s):
        async with http.get(server.make_url("/simulator/api/messages"), params={"openid": OPENID}) as resp:
            assert resp.status == 200
            data = await resp.json()
    assert data["available"] is False and data["messages"] == []


def test_mock_root_follows_the_api_base() -> None:
    assert mock_root("http://127.0.0.1:8080/_sandbox/wechat/cgi-bin/") == "http://127.0.0.1:8080/_sandbox/wechat"
    assert mock_root("http://10.0.0.2:9000/other/") == "http://10.0.0.2:9000/_sandbox/wechat"
    assert mock_root("") is None


def test_text_event_is_what_wechat_would_send() -> None:
    from bot.web.chatkit import build_event, parse_send

    event = build_event(parse_send({"openid": OPENID, "kind": "text", "text": "你好"}))
    assert isinstance(event, TextMessage) and event.msg_id and event.content == "你好"


async def test_answer_after_the_deadline_shows_as_success(db_url: str, http: aiohttp.ClientSession) -> None:
    """Past the 5-second rule the webhook answers ``success``; the page must say so, not show a blank."""
    async with running_app(make_config(db_url, wechat={"reply_deadline": 0.0}), http) as (server, _, _s):
        status, data = await _send(http, server, kind="text", text="你好")
    assert status == 200 and data["success"] is True and data["reply"] is None


# --- end to end with the real in-app mock WeChat API and the outbox sender ----------------------


@asynccontextmanager
async def sandbox_app(config: Config) -> AsyncIterator[str]:
    """The app as ``serve`` runs it in sandbox: mock WeChat API mounted inside, sender pointed at it.

    The socket is bound first so the configured port (and thus ``api_base_url``) is the real one.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = local_config(config, sock.getsockname()[1])
    async with local_bot(config, sock) as base:
        yield base


async def wait_for_messages(http: aiohttp.ClientSession, base: str, openid: str, timeout: float = 10.0
                            ) -> list[dict[str, Any]]:
    """Poll the simulator like the page does until a customer-service message shows up."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with http.get(f"{base}/simulator/api/messages", params={"openid": openid}) as resp:
            data = await resp.json()
        assert data["available"] is True, data
        if data["messages"] or asyncio.get_running_loop().time() > deadline:
            return data["messages"]
        await asyncio.sleep(0.1)


async def test_late_answer_arrives_as_customer_service_message(db_url: str, http: aiohttp.ClientSession) -> None:
    """Past the deadline: ``success`` now, then the outbox sends the answer through the mock API."""
    async with sandbox_app(make_config(db_url, wechat={"reply_deadline": 0.0})) as base:
        async with http.post(f"{base}/simulator/api/send", json={"openid": OPENID, "kind": "text",
                                                                 "text": "你好"}) as resp:
            data = await resp.json()
        assert data["success"] is True
        messages = await wait_for_messages(http, base, OPENID)
    # The answer's wording belongs to the dialogue; what matters here is how it travelled.
    assert [(m["kind"], m["msgtype"], m["touser"]) for m in messages] == [("custom", "text", OPENID)]
    assert messages[0]["text"].strip()
