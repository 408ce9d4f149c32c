"""What the browser simulator and ``resident-bot chat`` share: sample residents, the menu, building a
typed event from a request, sending it like WeChat does, and reading the mock's customer-service log.

Why one module: both front ends must send exactly the same events and show replies the same way, so a
behaviour seen in the terminal is the behaviour seen on the phone-like page. Nothing here signs or
encrypts by hand; that is :class:`~bot.sandbox.wechat_server.WeChatServerEmulator`'s job.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

import aiohttp

from bot.config import WeChatConfig
from bot.dispatch.events import (
    Event,
    LocationMessage,
    MenuClickEvent,
    SubscribeEvent,
    TextMessage,
    UnsubscribeEvent,
    VoiceMessage,
)
from bot.sandbox.launcher import MOCK_PREFIX
from bot.sandbox.wechat_server import WeChatServerEmulator, WebhookReply, next_msg_id


ACCOUNT = "gh_sandbox"

# Sample residents: fixed openids so a conversation (and its tickets) can be picked up again later.
SAMPLE_RESIDENTS: tuple[dict[str, str], ...] = (
    {"openid": "oSimZhangDaYe0001", "name": "张大爷", "note": "72岁，住3组"},
    {"openid": "oSimLiAYi00000002", "name": "李阿姨", "note": "网格员常联系"},
    {"openid": "oSimWangShiFu0003", "name": "王师傅", "note": "在外务工"},
)

# The account's menu as WeChat shows it: (key sent in the CLICK event, label on the phone).
MENU: tuple[tuple[str, str], ...] = (
    ("GUIDE", "办事指南"),
    ("PROXY", "我要代办"),
    ("REPORT", "报事报修"),
    ("ACTIVITIES", "社区活动"),
    ("MY_TICKETS", "我的工单"),
)

# 普子岭社区 (Sichuan): a point near the community service station.
SAMPLE_LOCATION: dict[str, Any] = {"latitude": 32.2316, "longitude": 106.2813, "scale": 16,
                                   "label": "四川省普子岭社区便民服务站附近"}

KINDS = ("text", "voice", "location", "click", "subscribe", "unsubscribe")
MAX_TEXT = 2000
_OPENID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MENU_KEY = re.compile(r"^[A-Za-z0-9_:.-]{1,128}$")


class BadSend(ValueError):
    """A send request the simulator refuses; the message is shown to the person testing."""


@dataclass(frozen=True)
class SendRequest:
    """One thing a resident does on the phone, validated."""

    openid: str
    kind: str
    text: str = ""
    key: str = ""
    scene: str = ""
    label: str = ""
    latitude: float = SAMPLE_LOCATION["latitude"]
    longitude: float = SAMPLE_LOCATION["longitude"]


def new_openid() -> str:
    """An openid for a "new resident": shaped like WeChat's (28 chars, starts with o)."""
    return "oSimNew" + secrets.token_hex(10) + "x"


def _str(data: Mapping[str, Any], name: str, limit: int) -> str:
    value = data.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadSend(f"{name} must be a string")
    if len(value) > limit:
        raise BadSend(f"{name} is longer than {limit} characters")
    return value


def _coordinate(data: Mapping[str, Any], name: str, default: float, bound: float) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -bound <= value <= bound:
        raise BadSend(f"{name} must be a number between -{bound} and {bound}")
    return float(value)


def parse_send(data: Any) -> SendRequest:
    """Validate the JSON body of ``/simulator/api/send`` (also used by the terminal chat)."""
    if not isinstance(data, dict):
        raise BadSend("body must be a JSON object")
    openid = _str(data, "openid", 64)
    if not _OPENID.match(openid):
        raise BadSend("openid must be 1-64 letters, digits, _ or -")
    kind = _str(data, "kind", 16)
    if kind not in KINDS:
        raise BadSend(f"kind must be one of {', '.join(KINDS)}")
    key = _str(data, "key", 128)
    if kind == "click" and not _MENU_KEY.match(key):
        raise BadSend("click needs a menu key")
    return SendRequest(
        openid=openid,
        kind=kind,
        text=_str(data, "text", MAX_TEXT),
        key=key,
        scene=_str(data, "scene", 64).strip(),
        label=_str(data, "label", 200) or SAMPLE_LOCATION["label"],
        latitude=_coordinate(data, "latitude", SAMPLE_LOCATION["latitude"], 90),
        longitude=_coordinate(data, "longitude", SAMPLE_LOCATION["longitude"], 180),
    )


def build_event(req: SendRequest, now: int | None = None) -> Event:
    """The typed event WeChat would deliver for this action (messages get a fresh MsgId)."""
    base: dict[str, Any] = {"openid": req.openid, "account": ACCOUNT,
                            "create_time": int(time.time()) if now is None else now}
    if req.kind == "text":
        return TextMessage(**base, msg_id=next_msg_id(), content=req.text)
    if req.kind == "voice":
        # Empty text means WeChat's speech recognition gave nothing: the "didn't catch that" path.
        return VoiceMessage(**base, msg_id=next_msg_id(), media_id="sim-" + secrets.token_hex(8),
                            format="amr", recognition=req.text.strip() or None)
    if req.kind == "location":
        return LocationMessage(**base, msg_id=next_msg_id(), latitude=req.latitude, longitude=req.longitude,
                               scale=int(SAMPLE_LOCATION["scale"]), label=req.label)
    if req.kind == "click":
        return MenuClickEvent(**base, msg_id=None, key=req.key)
    if req.kind == "subscribe":
        return SubscribeEvent(**base, msg_id=None, scene=req.scene or None)
    return UnsubscribeEvent(**base, msg_id=None)


def emulator_for(wechat: WeChatConfig, webhook_url: str, session: aiohttp.ClientSession) -> WeChatServerEmulator:
    """An emulator that signs (and encrypts) with the same token, key and AppID as the gateway."""
    return WeChatServerEmulator(webhook_url=webhook_url, token=wechat.token, mode=wechat.mode,
                                encoding_aes_key=wechat.encoding_aes_key, app_id=wechat.app_id or "sandbox",
                                account=ACCOUNT, session=session)


def reply_json(wechat: WeChatConfig, reply: WebhookReply) -> dict[str, Any]:
    """The decoded passive reply for the page and the terminal, plus the raw body for the curious."""
    out: dict[str, Any] = {"status": reply.status, "success": reply.is_success, "raw": reply.body[:8000],
                           "encrypted": "<Encrypt>" in reply.body, "reply": None}
    if reply.status != 200 or reply.is_success or not reply.body:
        return out
    if reply.msg_type == "news":
        out["reply"] = {"msgtype": "news", **reply.article}
    else:
        out["reply"] = {"msgtype": reply.msg_type or "", "text": reply.text or ""}
    return out


async def send(emulator: WeChatServerEmulator, wechat: WeChatConfig, req: SendRequest) -> dict[str, Any]:
    """Post one action to the webhook as WeChat would; return the decoded reply as JSON-ready data."""
    event = build_event(req)
    reply = await emulator.send(event)
    return {"sent": {"kind": event.kind, "summary": event.summary}, **reply_json(wechat, reply)}


# --- customer-service messages (the mock WeChat API's record) ------------------------------------


def mock_root(api_base_url: str) -> str | None:
    """Where the mock's own endpoints live, from the API base the sandbox points the client at.

    ``http://h:p/_sandbox/wechat/cgi-bin/`` → ``http://h:p/_sandbox/wechat``; any other base falls back
    to its origin plus :data:`MOCK_PREFIX`. None when there is no base (not a sandbox).
    """
    if not api_base_url:
        return None
    parts = urlsplit(api_base_url)
    if not parts.scheme or not parts.netloc:
        return None
    path = parts.path.rstrip("/")
    if path.endswith("/cgi-bin"):
        return f"{parts.scheme}://{parts.netloc}{path[: -len('/cgi-bin')]}"
    return f"{parts.scheme}://{parts.netloc}{MOCK_PREFIX}"


@dataclass
class MockInbox:
    """Reads what the bot sent to a resident through the (mock) WeChat API, newest after a cursor."""

    root: str | None
    session: aiohttp.ClientSession
    timeout: float = 3.0

    async def fetch(self, openid: str, after: int = 0) -> dict[str, Any]:
        """``{"available": bool, "messages": [...]}``; never raises, so a missing mock is just "not connected"."""
        if self.root is None:
            return {"available": False, "messages": [], "error": "no mock WeChat API in this mode"}
        url = f"{self.root}/_mock/messages"
        try:
            async with self.session.get(url, params={"touser": openid, "after": str(after)},
                                        timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                if resp.status != 200:
                    return {"available": False, "messages": [], "error": f"mock answered HTTP {resp.status}"}
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return {"available": False, "messages": [], "error": f"mock unreachable: {type(exc).__name__}"}
        messages = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(messages, list):
            return {"available": False, "messages": [], "error": "mock answered without a message list"}
        return {"available": True, "messages": [clean_message(m) for m in messages if isinstance(m, dict)]}


def clean_message(m: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the contract's fields with safe types, so the page never has to guess."""
    raw_id = m.get("id", 0)
    return {
        "id": raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else 0,
        "touser": str(m.get("touser", "")),
        "kind": str(m.get("kind", "custom")),
        "msgtype": str(m.get("msgtype", "")),
        "text": str(m.get("text", "")),
        "ts": m.get("ts"),
    }


def page_config() -> dict[str, Any]:
    """What the page needs to draw itself: residents, menu and the sample location."""
    return {
        "residents": list(SAMPLE_RESIDENTS),
        "menu": [{"key": k, "label": label} for k, label in MENU],
        "location": dict(SAMPLE_LOCATION),
    }
