"""Helpers for the dialogue tests: a controllable clock and one-turn sending through the webhook."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bot.app import Services
from bot.dispatch.events import Event, MenuClickEvent, VoiceMessage
from bot.sandbox.wechat_server import WeChatServerEmulator, WebhookReply, next_msg_id
from bot.storage.models import Message


class FakeClock:
    """The app's clock (seconds since the epoch), moved by the test instead of sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Turn:
    """What the resident saw and what the conversation log recorded for one message."""

    reply: WebhookReply
    intent: str | None
    item: str | None
    action: str | None

    @property
    def text(self) -> str:
        return self.reply.text or ""


async def send(emu: WeChatServerEmulator, services: Services, clock: FakeClock, event: Event) -> Turn:
    """Send ``event`` signed at the app's current time; return the reply and its log row."""
    reply = await emu.send(event, timestamp=int(clock()))
    assert reply.status == 200, reply
    await services.journal.flush()
    async with services.engine.connect() as conn:
        row = (await conn.execute(select(Message.intent, Message.item, Message.action).where(
            Message.reply_to == event.dedup_key, Message.direction == "out"))).first()
    assert row is not None, f"no log row for {event.dedup_key}"
    return Turn(reply, row.intent, row.item, row.action)


async def say(emu: WeChatServerEmulator, services: Services, clock: FakeClock, openid: str, text: str) -> Turn:
    return await send(emu, services, clock, emu.text(openid, text))


def voice(emu: WeChatServerEmulator, openid: str, recognition: str | None) -> VoiceMessage:
    return VoiceMessage(openid=openid, account=emu.account, create_time=int(time.time()), msg_id=next_msg_id(),
                        media_id="media-1", format="amr", recognition=recognition)


_click_seq = [0]


def click(emu: WeChatServerEmulator, openid: str, key: str, clock: FakeClock) -> MenuClickEvent:
    """Events dedup on sender+CreateTime, so each click gets its own second."""
    _click_seq[0] += 1
    return MenuClickEvent(openid=openid, account=emu.account, create_time=int(clock()) + _click_seq[0],
                          msg_id=None, key=key)


def as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else ([str(value)] if value else [])
