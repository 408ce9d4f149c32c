"""The shared access_token: fetched once for all processes, refreshed once per rejection burst, bounded.

Each test runs on SQLite and PostgreSQL (db_url) and with the token in the database or in Redis
(store_kind, when TEST_REDIS_URL is set). The mock WeChat API's call records are the evidence.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.sandbox.mock_wechat import MockWeChat
from bot.wechat.api import AccessTokenRejected, WeChatApiError
from bot.wechat.tokens import TokenUnavailable
from tests.test_outbound_helpers import (  # noqa: F401 - fixtures
    SECRET,
    FakeClock,
    ProcessFactory,
    mock,
    outbound_config,
    process,
    redis_prefix,
    store_kind,
    text,
)

OPENID = "oResident0001"


def tokens_used(mock: MockWeChat, endpoint: str = "message/custom/send") -> list[str]:
    return [c["query"].get("access_token", "") for c in mock.calls_to(endpoint)]


def token_fetch_log(mock: MockWeChat) -> list[tuple[float, int, int, bool]]:
    """What the mock saw of token fetches (time, HTTP status, errcode, force), for failure messages."""
    return [(round(c["ts"], 3), c["status"], c["errcode"], c["body"]["force_refresh"])
            for c in mock.calls_to("stable_token")]


async def test_token_is_fetched_once_and_shared_by_two_processes(db_url: str, mock: MockWeChat,
                                                                 process: ProcessFactory) -> None:
    config = outbound_config(db_url, mock)
    async with process(config) as one, process(config) as two:
        await one.send_custom(OPENID, text("一"))
        await two.send_custom(OPENID, text("二"))
        await asyncio.gather(*(p.send_custom(OPENID, text(str(i))) for i in range(5) for p in (one, two)))
    assert mock.count("stable_token") == 1
    assert mock.count("token") == 0  # never the endpoint that invalidates the others' token
    fetch = mock.calls_to("stable_token")[0]["body"]
    assert fetch == {"grant_type": "client_credential", "appid": one.client.appid, "secret": "***",
                     "force_refresh": False}
    assert len(set(tokens_used(mock))) == 1
    assert len(mock.messages) == 12


async def test_first_use_from_many_concurrent_calls_in_two_processes_fetches_once(
        db_url: str, mock: MockWeChat, process: ProcessFactory) -> None:
    mock.delay("stable_token", 0.2)  # the lease is held while the winner fetches
    # The mock answers on this test's event loop: a stall of the loop (a full collection in a long
    # suite process took 1.3 s under CPU load) made the client's 1 s read timeout fire while the mock
    # had already counted the fetch, and the fetcher's retry was a second, legitimate stable_token call.
    # The timeout is not what this test is about, so it gets room; the lease is.
    config = outbound_config(db_url, mock, wechat={"api_timeout": 5.0})
    async with process(config) as one, process(config) as two:
        await asyncio.gather(*(p.send_custom(OPENID, text(f"{i}")) for i in range(6) for p in (one, two)))
        fetch_attempts = (one.tokens.fetches, two.tokens.fetches)
    assert sorted(fetch_attempts) == [0, 1], (fetch_attempts, token_fetch_log(mock))  # one process, one try
    assert mock.count("stable_token") == 1, (fetch_attempts, token_fetch_log(mock))
    assert len(mock.messages) == 12


async def test_40001_burst_from_concurrent_calls_refetches_exactly_once(db_url: str, mock: MockWeChat,
                                                                        process: ProcessFactory) -> None:
    config = outbound_config(db_url, mock)
    async with process(config) as one, process(config) as two:
        await one.send_custom(OPENID, text("warm up"))
        await two.send_custom(OPENID, text("warm up"))
        old = tokens_used(mock)[0]
        mock.revoke_tokens()  # e.g. someone fetched a token elsewhere with the same AppSecret
        await asyncio.gather(*(p.send_custom(OPENID, text(f"burst {i}")) for i in range(5) for p in (one, two)))
    fetches = mock.calls_to("stable_token")
    assert len(fetches) == 2
    assert [f["body"]["force_refresh"] for f in fetches] == [False, True]  # force only on compare-and-refresh
    rejected = [c for c in mock.calls_to("message/custom/send") if c["errcode"] == 40001]
    assert rejected and all(c["query"]["access_token"] == old for c in rejected)
    assert len([m for m in mock.messages if m["text"].startswith("burst")]) == 10


async def test_42001_expired_token_is_refreshed_once_and_the_call_retried(db_url: str, mock: MockWeChat,
                                                                          process: ProcessFactory) -> None:
    config = outbound_config(db_url, mock)
    async with process(config) as api:
        await api.send_custom(OPENID, text("before"))
        expired = tokens_used(mock)[0]
        mock.expire_tokens()
        await asyncio.gather(*(api.send_custom(OPENID, text(f"after {i}")) for i in range(4)))
    assert mock.count("stable_token") == 2
    # All four calls carry the expired token and each is turned away once: 42001 while WeChat still
    # knows it, 40001 for a call that (under load) reaches it after the forced refresh replaced it.
    rejected = [c for c in mock.calls_to("message/custom/send") if c["errcode"] in (42001, 40001)]
    assert len(rejected) == 4 and all(c["query"]["access_token"] == expired for c in rejected)
    assert rejected[0]["errcode"] == 42001
    assert len(mock.messages) == 5


async def test_token_is_refreshed_before_it_expires(db_url: str, process: ProcessFactory) -> None:
    clock = FakeClock()
    server = MockWeChat("wx0123456789abcdef", SECRET, clock=clock)
    await server.start()
    try:
        config = outbound_config(db_url, server)
        async with process(config, clock=clock) as api:
            await api.send_custom(OPENID, text("fresh"))
            clock.advance(7200 - 240)  # four minutes left: inside the five-minute margin
            await api.send_custom(OPENID, text("renewed early"))
            clock.advance(120)
            await api.send_custom(OPENID, text("still fine"))
        fetches = server.calls_to("stable_token")
        assert [f["body"]["force_refresh"] for f in fetches] == [False, False]
        assert all(c["errcode"] == 0 for c in server.calls_to("message/custom/send"))
        assert len(set(tokens_used(server))) == 2
    finally:
        await server.stop()


async def test_a_token_that_keeps_being_rejected_is_refreshed_once_per_call_then_fails(
        db_url: str, mock: MockWeChat, process: ProcessFactory) -> None:
    mock.fail_always("message/custom/send", 40001)
    config = outbound_config(db_url, mock)
    async with process(config) as api:
        with pytest.raises(AccessTokenRejected) as err:
            await api.send_custom(OPENID, text("x"))
    assert err.value.errcode == 40001
    assert mock.count("message/custom/send") == 2  # wechatpy alone would loop forever
    assert mock.count("stable_token") == 2


async def test_sends_are_not_retried_on_http_errors_but_idempotent_calls_are_bounded(
        db_url: str, mock: MockWeChat, process: ProcessFactory) -> None:
    mock.fail_http("message/custom/send", 500)
    mock.fail_http("media/get", 500, 502, 503, 500, 500)
    config = outbound_config(db_url, mock)
    async with process(config) as api:
        with pytest.raises(WeChatApiError) as send_err:
            await api.send_custom(OPENID, text("x"))
        with pytest.raises(WeChatApiError) as media_err:
            await api.download_media("MEDIA1")
    assert send_err.value.errcode is None and send_err.value.transient
    assert mock.count("message/custom/send") == 1  # the outbox owns retries of sends
    assert media_err.value.errcode is None
    assert mock.count("media/get") == 3  # one try + two retries


async def test_token_fetch_retries_are_bounded_and_credential_errors_not_retried(
        db_url: str, mock: MockWeChat, process: ProcessFactory) -> None:
    mock.fail_always("stable_token", -1)
    config = outbound_config(db_url, mock)
    async with process(config, fetch_attempts=3) as api:
        with pytest.raises(WeChatApiError) as busy:
            await api.send_custom(OPENID, text("x"))
    assert busy.value.errcode == -1
    assert mock.count("stable_token") == 3
    assert mock.count("message/custom/send") == 0

    mock.reset()
    wrong = outbound_config(db_url, mock, wechat={"app_secret": "not-the-secret"})
    async with process(wrong, fetch_attempts=3) as api:
        with pytest.raises(WeChatApiError) as bad:
            await api.send_custom(OPENID, text("x"))
    assert bad.value.errcode == 40125 and not bad.value.transient
    assert mock.count("stable_token") == 1
    assert "not-the-secret" not in str(bad.value)


async def test_slow_wechat_times_out(db_url: str, mock: MockWeChat, process: ProcessFactory) -> None:
    config = outbound_config(db_url, mock, wechat={"api_timeout": 0.3})
    async with process(config) as api:
        await api.send_custom(OPENID, text("warm up"))
        mock.delay("message/custom/send", 2.0)
        started = time.monotonic()
        with pytest.raises(WeChatApiError) as err:
            await api.send_custom(OPENID, text("slow"))
        assert time.monotonic() - started < 1.6
        mock.delay("message/custom/send", 0)
    assert err.value.errcode is None and err.value.transient


async def test_a_stuck_token_fetch_in_another_process_is_waited_for_with_a_bound(
        db_url: str, mock: MockWeChat, process: ProcessFactory) -> None:
    config = outbound_config(db_url, mock)
    async with process(config) as holder, process(config, wait_timeout=0.3) as waiter:
        assert await holder.tokens._store.acquire("stuck-worker", time.time(), 60)  # a worker that hangs
        with pytest.raises(TokenUnavailable):
            await waiter.send_custom(OPENID, text("x"))
    assert mock.count("stable_token") == 0


async def test_secrets_and_tokens_are_not_logged(db_url: str, mock: MockWeChat, process: ProcessFactory,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    config = outbound_config(db_url, mock)
    async with process(config) as api:
        await api.send_custom(OPENID, text("x"))
        mock.revoke_tokens()
        await api.send_custom(OPENID, text("y"))
    tokens = {c["query"]["access_token"] for c in mock.calls_to("message/custom/send")}
    for record in caplog.records:
        if record.name.startswith("aiosqlite"):  # its DEBUG trace echoes SQL parameters; never on in production
            continue
        message = record.getMessage()
        assert SECRET not in message
        assert not any(t in message for t in tokens)


async def test_while_another_process_renews_early_the_old_token_is_still_used(db_url: str,
                                                                              process: ProcessFactory) -> None:
    clock = FakeClock()
    server = MockWeChat("wx0123456789abcdef", SECRET, clock=clock)
    await server.start()
    try:
        config = outbound_config(db_url, server)
        async with process(config, clock=clock) as first, process(config, clock=clock, wait_timeout=0.3) as other:
            await first.send_custom(OPENID, text("fresh"))
            clock.advance(7200 - 240)  # due for renewal, still valid for four minutes
            assert await first.tokens._store.acquire("renewing-worker", clock(), 60)
            await other.send_custom(OPENID, text("no waiting"))
        assert server.count("stable_token") == 1
        assert len(set(tokens_used(server))) == 1
    finally:
        await server.stop()
