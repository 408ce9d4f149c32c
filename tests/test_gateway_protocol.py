"""The webhook protocol as WeChat speaks it: verification, modes, signatures, events, bad input."""

from __future__ import annotations

import asyncio
import time
from datetime import timezone

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.dispatch.events import (
    ImageMessage,
    LinkMessage,
    LocationMessage,
    LocationReportEvent,
    MenuClickEvent,
    MenuViewEvent,
    ScanEvent,
    SubscribeEvent,
    TemplateSendJobFinishEvent,
    UnsubscribeEvent,
    VideoMessage,
    VoiceMessage,
)
from bot.handlers.account import WELCOME
from bot.handlers.fallback import VOICE_UNCLEAR
from bot.storage.models import Message, TemplateReceipt
from bot.wechat.codec import sign
from tests.conftest import TEST_TOKEN, make_config
from tests.gateway_helpers import running_app

OPENID = "oResident0001"


def _now() -> int:
    return int(time.time())


async def _count(services, model, *where) -> int:  # type: ignore[no-untyped-def]
    await services.journal.flush()
    async with services.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def test_get_verification_echoes_only_with_valid_signature(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (server, emu, _):
        ts, nonce = str(_now()), "n1"
        ok = {"timestamp": ts, "nonce": nonce, "signature": sign(TEST_TOKEN, ts, nonce), "echostr": "e123"}
        async with http.get(emu.webhook_url, params=ok) as r:
            assert r.status == 200 and await r.text() == "e123"
        bad = {**ok, "signature": "0" * 40}
        async with http.get(emu.webhook_url, params=bad) as r:
            assert r.status == 403
        stale_ts = str(_now() - 3600)
        stale = {**ok, "timestamp": stale_ts, "signature": sign(TEST_TOKEN, stale_ts, nonce)}
        async with http.get(emu.webhook_url, params=stale) as r:
            assert r.status == 403


@pytest.mark.parametrize("mode", ["plain", "compatible", "safe"])
async def test_text_gets_honest_reply_in_every_mode(db_url: str, http: aiohttp.ClientSession, mode: str) -> None:
    async with running_app(make_config(db_url, mode=mode), http) as (_, emu, services):
        reply = await emu.send(emu.text(OPENID, "我想办理养老保险，要准备哪些材料？"))
        assert reply.status == 200
        if mode != "plain":
            assert "<Encrypt>" in reply.body and "养老" not in reply.body
        assert reply.msg_type == "text" and reply.text
        assert await _count(services, Message, Message.openid == OPENID) == 2


async def test_bad_signature_is_403_and_nothing_logged(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (_, emu, services):
        xml = "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId></xml>"
        params, body = emu.build(xml)
        for broken in ({**params, "signature": "f" * 40}, {k: v for k, v in params.items() if k != "signature"}):
            reply = await emu.post_raw(broken, body.encode())
            assert reply.status == 403
        assert await _count(services, Message) == 0


async def test_safe_mode_checks_msg_signature_not_signature(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url, mode="safe"), http) as (_, emu, services):
        params, body = emu.build(emu_xml(emu))
        tampered = {**params, "msg_signature": "0" * 40}
        assert (await emu.post_raw(tampered, body.encode())).status == 403
        plain_only = {k: v for k, v in params.items() if k not in ("encrypt_type", "msg_signature")}
        assert (await emu.post_raw(plain_only, b"<xml><Content>x</Content></xml>")).status == 403
        assert (await emu.post_raw(params, body.encode())).status == 200


def emu_xml(emu) -> str:  # type: ignore[no-untyped-def]
    from bot.wechat.codec import event_fields, fields_to_xml

    return fields_to_xml(event_fields(emu.text(OPENID, "你好")))


async def test_tampered_ciphertext_and_wrong_key_are_refused(db_url: str, http: aiohttp.ClientSession) -> None:
    from bot.sandbox.wechat_server import WeChatServerEmulator

    async with running_app(make_config(db_url, mode="safe"), http) as (_, emu, services):
        wrong = WeChatServerEmulator(emu.webhook_url, TEST_TOKEN, "safe", "Z" * 43, emu.app_id, session=http)
        assert (await wrong.send(wrong.text(OPENID, "hi"))).status == 400
        params, body = emu.build(emu_xml(emu))
        from bot.wechat.codec import parse_fields

        enc = parse_fields(body)["Encrypt"]
        flipped = enc[:20] + ("A" if enc[20] != "A" else "B") + enc[21:]
        ts, nonce = params["timestamp"], params["nonce"]
        params = {**params, "msg_signature": sign(TEST_TOKEN, ts, nonce, flipped)}
        tampered_body = f"<xml><Encrypt><![CDATA[{flipped}]]></Encrypt></xml>"
        assert (await emu.post_raw(params, tampered_body.encode())).status == 400
        assert await _count(services, Message) == 0


async def test_stale_timestamp_is_refused(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (_, emu, services):
        reply = await emu.post_xml(emu_xml(emu), timestamp=_now() - 301)
        assert reply.status == 403
        fresh = await emu.post_xml(emu_xml(emu), timestamp=_now() - 10)
        assert fresh.status == 200


async def test_oversized_body_is_413(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url, wechat={"max_body_bytes": 4096}), http) as (_, emu, services):
        big = emu_xml(emu).replace("你好", "长" * 5000)
        reply = await emu.post_xml(big)
        assert reply.status == 413
        assert await _count(services, Message) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><ToUserName>",  # truncated
        b"not xml at all",
        b"",
        b"<notxml><a>1</a></notxml>",
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<xml><FromUserName>&lol2;</FromUserName><Content>&lol2;</Content></xml>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>',
        b"<xml><FromUserName>u</FromUserName><CreateTime>notanumber</CreateTime><MsgType>text</MsgType></xml>",
    ],
    ids=["truncated", "garbage", "empty", "wrong-root", "billion-laughs", "xxe", "bad-number"],
)
async def test_malformed_and_hostile_xml_is_400_without_stack_trace(
    db_url: str, http: aiohttp.ClientSession, body: bytes
) -> None:
    async with running_app(make_config(db_url), http) as (_, emu, services):
        params, _ = emu.build("")
        reply = await emu.post_raw(params, body)
        assert reply.status == 400
        assert "Traceback" not in reply.body and "lol" not in reply.body and "root:" not in reply.body


async def test_subscribe_welcome_keeps_scene(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (_, emu, services):
        event = SubscribeEvent(openid=OPENID, account="gh", create_time=_now(), msg_id=None, scene="grid:7")
        reply = await emu.send(event)
        assert reply.text == WELCOME
        resident = await services.residents.get(OPENID)
        assert resident and resident["scene"] == "grid:7" and resident["subscribed"]
        await emu.send(UnsubscribeEvent(openid=OPENID, account="gh", create_time=_now() + 1, msg_id=None))
        resident = await services.residents.get(OPENID)
        assert resident and not resident["subscribed"]


async def test_every_message_type_is_accepted(db_url: str, http: aiohttp.ClientSession) -> None:
    base = {"openid": OPENID, "account": "gh", "create_time": _now()}
    events = [
        VoiceMessage(**base, msg_id="v1", media_id="m", format="amr", recognition="养老保险要带啥"),
        VoiceMessage(**base, msg_id="v2", media_id="m", format="amr", recognition=None),
        ImageMessage(**base, msg_id="i1", media_id="m", pic_url="http://x/p.jpg"),
        VideoMessage(**base, msg_id="vi1", media_id="m", thumb_media_id="t"),
        VideoMessage(**base, msg_id="vi2", media_id="m", thumb_media_id="t", short=True),
        LocationMessage(**base, msg_id="l1", latitude=32.23, longitude=106.28, scale=15, label="普子岭社区"),
        LinkMessage(**base, msg_id="k1", title="t", description="d", url="http://x"),
        MenuClickEvent(**{**base, "create_time": _now() + 1}, msg_id=None, key="GUIDE"),
        MenuViewEvent(**{**base, "create_time": _now() + 2}, msg_id=None, url="http://x"),
        ScanEvent(**{**base, "create_time": _now() + 3}, msg_id=None, scene="grid:3"),
        LocationReportEvent(**{**base, "create_time": _now() + 4}, msg_id=None, latitude=32.2, longitude=106.2,
                            precision=30.0),
        TemplateSendJobFinishEvent(**{**base, "create_time": _now() + 5}, msg_id=None, template_msg_id="200163836",
                                   status="success"),
    ]
    async with running_app(make_config(db_url), http) as (_, emu, services):
        replies = [await emu.send(e) for e in events]
        assert all(r.status == 200 for r in replies)
        assert replies[1].text == VOICE_UNCLEAR
        assert replies[2].text and "图片" in replies[2].text
        assert replies[5].text and "普子岭社区" in replies[5].text
        assert replies[9].text  # scan acknowledged
        assert replies[10].is_success and replies[11].is_success  # no reply to reports and receipts
        assert await _count(services, TemplateReceipt, TemplateReceipt.wechat_msgid == "200163836") == 1
        resident = await services.residents.get(OPENID)
        assert resident and resident["scene"] == "grid:3" and abs(resident["latitude"] - 32.2) < 1e-6


async def test_unknown_type_and_empty_text_get_polite_replies(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (_, emu, services):
        xml = (f"<xml><ToUserName>gh</ToUserName><FromUserName>{OPENID}</FromUserName><CreateTime>{_now()}</CreateTime>"
               "<MsgType>hologram</MsgType><MsgId>99</MsgId></xml>")
        assert (await emu.post_xml(xml)).text
        assert (await emu.send(emu.text(OPENID, "   "))).text
        assert (await emu.send(emu.text(OPENID, "🙂👍 你好 hello ｈｅｌｌｏ ١٢٣"))).text


async def test_long_text_in_and_out_fits_limits(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (_, emu, services):
        reply = await emu.send(emu.text(OPENID, "养" * 10_000))
        assert reply.status == 200 and reply.text
        assert len(reply.text.encode()) <= 2048


async def test_same_message_four_times_concurrently_is_handled_once(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (_, emu, services):
        event = emu.text(OPENID, "低保咋个申请")
        replies = await asyncio.gather(*(emu.send(event) for _ in range(4)))
        assert {r.text for r in replies} == {replies[0].text} and replies[0].text
        again = await emu.send(event)  # a later retry
        assert again.text == replies[0].text
        assert await _count(services, Message, Message.direction == "in") == 1
        assert await _count(services, Message, Message.direction == "out") == 1


async def test_events_dedup_on_sender_and_create_time(db_url: str, http: aiohttp.ClientSession) -> None:
    async with running_app(make_config(db_url), http) as (_, emu, services):
        event = MenuClickEvent(openid=OPENID, account="gh", create_time=_now(), msg_id=None, key="GUIDE")
        first, second = await emu.send(event), await emu.send(event)
        assert first.text == second.text
        assert await _count(services, Message, Message.direction == "in") == 1


async def test_log_rows_follow_the_gateways_clock(db_url: str, http: aiohttp.ClientSession) -> None:
    """Inbound and outbound rows are stamped by the app's clock, as the signature window is: a clock
    120 s behind (inside the window) puts both rows 120 s in the past, not at the machine's time."""
    shift = 120.0
    async with running_app(make_config(db_url), http, clock=lambda: time.time() - shift) as (_, emu, services):
        await emu.send(emu.text(OPENID, "你好"))
        await services.gateway.drain()
        await services.journal.flush()
        async with services.engine.connect() as conn:
            stamps = (await conn.execute(select(Message.created_at).where(Message.openid == OPENID))).scalars().all()
    assert len(stamps) == 2
    for stamp in stamps:
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
        behind = time.time() - stamp.timestamp()
        assert shift - 30 < behind < shift + 30, stamps
