"""A stand-in for the WeChat server's side of the webhook: it signs, encrypts and POSTs like WeChat.

Used by the browser simulator, ``resident-bot chat``, the protocol tests and the benchmark, so they
all exercise the real webhook over real HTTP with exactly the requests WeChat would send.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.dispatch.events import Event, TextMessage
from bot.wechat.codec import Cipher, event_fields, fields_to_xml, parse_fields, sign

_msg_ids = itertools.count(int(time.time() * 1000) * 1000)


def next_msg_id() -> str:
    return str(next(_msg_ids))


@dataclass(frozen=True)
class WebhookReply:
    """What the webhook answered, decoded the way a phone would show it."""

    status: int
    body: str
    msg_type: str | None = None
    text: str | None = None
    title: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    article: dict[str, str] = field(default_factory=dict)  # title, description, url, picurl of a news reply

    @property
    def is_success(self) -> bool:
        return self.status == 200 and self.body == "success"


def _article(inner_xml: str) -> dict[str, str]:
    """The one article of a passive news reply (our own renderer's CDATA layout)."""
    out: dict[str, str] = {}
    for tag in ("Title", "Description", "Url", "PicUrl"):
        m = re.search(rf"<{tag}><!\[CDATA\[(.*?)\]\]></{tag}>", inner_xml, re.S)
        out[tag.lower()] = m.group(1) if m else ""
    return out


@dataclass
class WeChatServerEmulator:
    webhook_url: str
    token: str
    mode: str = "plain"
    encoding_aes_key: str = ""
    app_id: str = "sandbox"
    account: str = "gh_sandbox"
    session: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        self._cipher = Cipher(self.token, self.encoding_aes_key, self.app_id) if self.mode != "plain" else None

    def text(self, openid: str, content: str, msg_id: str | None = None) -> TextMessage:
        return TextMessage(openid=openid, account=self.account, create_time=int(time.time()),
                           msg_id=msg_id or next_msg_id(), content=content)

    def build(self, xml: str, timestamp: int | None = None, nonce: str | None = None) -> tuple[dict[str, str], str]:
        """Query string and body for an inner XML message, as WeChat would send it in our mode."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or secrets.token_hex(5)
        params = {"timestamp": ts, "nonce": nonce, "signature": sign(self.token, ts, nonce), "openid": "x"}
        if self._cipher is None:
            return params, xml
        envelope = self._cipher.encrypt_envelope(xml, nonce, ts)
        env = parse_fields(envelope)
        params["encrypt_type"] = "aes"
        params["msg_signature"] = env["MsgSignature"]
        if self.mode == "safe":
            return params, f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName><Encrypt><![CDATA[{env['Encrypt']}]]></Encrypt></xml>"
        # compatible mode: plain fields and the ciphertext side by side
        return params, xml[:-len("</xml>")] + f"<Encrypt><![CDATA[{env['Encrypt']}]]></Encrypt></xml>"

    def decode(self, status: int, body: str) -> WebhookReply:
        if status != 200 or body in ("", "success"):
            return WebhookReply(status=status, body=body)
        inner = body
        outer = parse_fields(body)
        if "Encrypt" in outer and self._cipher is not None:
            inner = self._cipher.decrypt(outer["Encrypt"])
        fields = parse_fields(inner)
        article = _article(inner) if fields.get("MsgType") == "news" else {}
        return WebhookReply(status=status, body=body, msg_type=fields.get("MsgType"), text=fields.get("Content"),
                            title=article.get("title"), fields=fields, article=article)

    async def post_xml(self, xml: str, **kw: Any) -> WebhookReply:
        params, body = self.build(xml, **kw)
        return await self.post_raw(params, body.encode("utf-8"))

    async def post_raw(self, params: dict[str, str], body: bytes) -> WebhookReply:
        assert self.session is not None, "set .session to an aiohttp.ClientSession"
        async with self.session.post(self.webhook_url, params=params, data=body,
                                     headers={"Content-Type": "text/xml"}) as resp:
            return self.decode(resp.status, await resp.text())

    async def send(self, event: Event, **kw: Any) -> WebhookReply:
        """Send a typed event exactly as WeChat would and decode the passive reply."""
        return await self.post_xml(fields_to_xml(event_fields(event)), **kw)
