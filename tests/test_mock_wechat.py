"""The mock WeChat API itself: token rules, endpoints, fault injection and the simulator's contract."""

from __future__ import annotations

import time

import aiohttp
import pytest

from bot.sandbox.launcher import MOCK_PREFIX
from bot.sandbox.mock_wechat import EARLY_RENEW, MockWeChat
from tests.conftest import make_config
from tests.gateway_helpers import running_app

APPID, SECRET = "wxmock0000000001", "mock-secret-123456"


@pytest.fixture
async def server() -> MockWeChat:
    mock = MockWeChat(APPID, SECRET)
    await mock.start()
    yield mock  # type: ignore[misc]
    await mock.stop()


async def stable_token(http: aiohttp.ClientSession, base: str, force: bool = False, secret: str = SECRET) -> dict:
    body = {"grant_type": "client_credential", "appid": APPID, "secret": secret, "force_refresh": force}
    async with http.post(base + "stable_token", json=body) as r:
        return await r.json()


async def custom(http: aiohttp.ClientSession, base: str, token: str, touser: str, content: str) -> dict:
    body = {"touser": touser, "msgtype": "text", "text": {"content": content}}
    async with http.post(base + "message/custom/send", params={"access_token": token}, json=body) as r:
        return await r.json()


async def test_stable_token_is_reused_until_forced_and_checks_credentials(server: MockWeChat,
                                                                          http: aiohttp.ClientSession) -> None:
    base = server.base_url
    first = await stable_token(http, base)
    assert first["expires_in"] == 7200 and first["access_token"]
    assert (await stable_token(http, base))["access_token"] == first["access_token"]
    forced = await stable_token(http, base, force=True)
    assert forced["access_token"] != first["access_token"]
    assert (await custom(http, base, first["access_token"], "o1", "x"))["errcode"] == 40001
    assert (await custom(http, base, forced["access_token"], "o1", "x"))["errcode"] == 0
    assert (await stable_token(http, base, secret="wrong"))["errcode"] == 40125
    assert all(c["body"]["secret"] == "***" for c in server.calls_to("stable_token"))


async def test_stable_token_renews_in_the_last_five_minutes_and_tokens_expire(http: aiohttp.ClientSession) -> None:
    now = [1_000_000.0]
    mock = MockWeChat(APPID, SECRET, clock=lambda: now[0])
    base = await mock.start()
    try:
        first = (await stable_token(http, base))["access_token"]
        now[0] += 7200 - EARLY_RENEW + 1
        second = (await stable_token(http, base))["access_token"]
        assert second != first
        assert (await custom(http, base, first, "o1", "old still valid"))["errcode"] == 0
        now[0] += EARLY_RENEW
        assert (await custom(http, base, first, "o1", "old expired"))["errcode"] == 42001
        mock.expire_tokens()
        assert (await custom(http, base, second, "o1", "x"))["errcode"] == 42001
        assert (await custom(http, base, "", "o1", "x"))["errcode"] == 41001
    finally:
        await mock.stop()


async def test_endpoints_answer_like_wechat(server: MockWeChat, http: aiohttp.ClientSession) -> None:
    base = server.base_url
    token = (await stable_token(http, base))["access_token"]
    q = {"access_token": token}
    tpl = {"touser": "o1", "template_id": "T", "data": {"first": {"value": "您好"}, "keyword1": {"value": "停水"}}}
    async with http.post(base + "message/template/send", params=q, json=tpl) as r:
        assert isinstance((await r.json())["msgid"], int)
    async with http.post(base + "message/subscribe/bizsend", params=q, json={**tpl, "page": "p"}) as r:
        assert (await r.json())["errcode"] == 0
    async with http.post(base + "menu/create", params=q, json={"button": []}) as r:
        assert (await r.json())["errcode"] == 40016
    server.add_media("M1", b"\xff\xd8jpeg-bytes", "image/jpeg")
    async with http.get(base + "media/get", params={**q, "media_id": "M1"}) as r:
        assert r.content_type == "image/jpeg" and await r.read() == b"\xff\xd8jpeg-bytes"
    server.unsubscribe("o2")
    async with http.get(base + "user/info", params={**q, "openid": "o2"}) as r:
        assert (await r.json())["subscribe"] == 0
    assert (await custom(http, base, token, "o2", "x"))["errcode"] == 43004
    assert [m["text"] for m in server.messages_to("o1")] == ["您好\nkeyword1: 停水", "您好\nkeyword1: 停水"]


async def test_faults_errcode_sequences_http_errors_and_delays(server: MockWeChat, http: aiohttp.ClientSession) -> None:
    base = server.base_url
    token = (await stable_token(http, base))["access_token"]
    server.fail("message/custom/send", 45015, -1)
    server.fail_http("message/custom/send", 500)
    async with http.post(base + "message/custom/send", params={"access_token": token}, json={}) as r:
        assert r.status == 500
    assert (await custom(http, base, token, "o1", "a"))["errcode"] == 45015
    assert (await custom(http, base, token, "o1", "b"))["errcode"] == -1
    assert (await custom(http, base, token, "o1", "c"))["errcode"] == 0
    async with http.post(base.replace("cgi-bin/", "_mock/faults"),
                         json={"endpoint": "message/custom/send", "delay": 0.3, "errcodes": [45047]}) as r:
        assert r.status == 200
    started = time.monotonic()
    assert (await custom(http, base, token, "o1", "d"))["errcode"] == 45047
    assert time.monotonic() - started >= 0.3
    assert [c["status"] for c in server.calls_to("message/custom/send")] == [500, 200, 200, 200, 200]
    assert [c["errcode"] for c in server.calls_to("message/custom/send")][1:] == [45015, -1, 0, 45047]


async def test_simulator_contract_messages_calls_reset(server: MockWeChat, http: aiohttp.ClientSession) -> None:
    base = server.base_url
    root = base[: -len("cgi-bin/")]
    token = (await stable_token(http, base))["access_token"]
    for n in range(3):
        await custom(http, base, token, "oA", f"给A{n}")
    await custom(http, base, token, "oB", "给B")
    news = {"touser": "oA", "msgtype": "news", "news": {"articles": [{"title": "办事指南：居住证", "url": "u"}]}}
    async with http.post(base + "message/custom/send", params={"access_token": token}, json=news) as r:
        assert (await r.json())["errcode"] == 0
    async with http.get(root + "_mock/messages", params={"touser": "oA", "after": "0"}) as r:
        messages = (await r.json())["messages"]
    assert [m["text"] for m in messages] == ["给A0", "给A1", "给A2", "办事指南：居住证"]
    assert [m["msgtype"] for m in messages] == ["text", "text", "text", "news"]
    assert all(m["kind"] == "custom" and m["touser"] == "oA" and isinstance(m["ts"], float) for m in messages)
    ids = [m["id"] for m in messages]
    assert ids == sorted(ids) and len(set(ids)) == 4
    async with http.get(root + "_mock/messages", params={"touser": "oA", "after": str(ids[1])}) as r:
        assert [m["text"] for m in (await r.json())["messages"]] == ["给A2", "办事指南：居住证"]
    async with http.get(root + "_mock/calls") as r:
        calls = (await r.json())["calls"]
    assert [c["endpoint"] for c in calls].count("message/custom/send") == 5
    async with http.post(root + "_mock/reset") as r:
        assert r.status == 200
    async with http.get(root + "_mock/messages", params={"touser": "oA"}) as r:
        assert (await r.json())["messages"] == []
    assert (await custom(http, base, token, "oA", "x"))["errcode"] == 40001  # tokens were reset too


async def test_mounted_inside_the_app_in_sandbox_mode(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (server, _, _):
        async with http.get(server.make_url(f"{MOCK_PREFIX}/_mock/messages"), params={"touser": "o1"}) as r:
            assert r.status == 200 and await r.json() == {"messages": []}
        body = {"grant_type": "client_credential", "appid": "any", "secret": "", "force_refresh": False}
        async with http.post(server.make_url(f"{MOCK_PREFIX}/cgi-bin/stable_token"), json=body) as r:
            assert "access_token" in await r.json()  # sandbox: any credentials will do
