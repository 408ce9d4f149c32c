"""The project's own mock of the WeChat API server (api.weixin.qq.com/cgi-bin/), over real HTTP.

Why a server and not monkeypatched functions: the real wechatpy client, the token store and the
outbox sender are exercised end to end, and tests assert on what the fake server *received* (the
bolt-python ``mock_web_api_server`` idea). In sandbox mode it is mounted inside the app at
``MOCK_PREFIX`` and the chat simulator reads the messages it recorded; tests start it standalone on a
loopback port with the same URL layout, so ``api_base_url`` is always ``…/_sandbox/wechat/cgi-bin/``.

It issues and validates access tokens like WeChat (40001 unknown/replaced, 42001 expired), and can
inject faults per endpoint: a sequence of errcodes, HTTP error statuses, delays, token expiry.

Contract relied on by the simulator page (keep exact):
  GET  {MOCK_PREFIX}/_mock/messages?touser=OPENID&after=N
       → {"messages": [{"id", "touser", "kind": custom|template|subscribe, "msgtype", "text", "ts"}]}
  GET  {MOCK_PREFIX}/_mock/calls   → {"calls": [...every recorded call...]}
  POST {MOCK_PREFIX}/_mock/reset
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import itertools
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from bot.sandbox.launcher import MOCK_PREFIX

TOKEN_TTL = 7200
EARLY_RENEW = 300  # stable_token hands out a new token in the last 5 minutes of the old one

# A 1×1 PNG: what media/get returns for ids it was not given (sandbox residents "send" images too).
PLACEHOLDER_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)

MEDIA_LABELS = {"image": "[图片]", "voice": "[语音]", "video": "[视频]", "music": "[音乐]", "file": "[文件]",
                "mpnews": "[图文消息]", "mpnewsarticle": "[图文消息]", "wxcard": "[卡券]"}

Handler = Callable[[dict[str, Any], dict[str, str]], Awaitable[web.StreamResponse | dict[str, Any]]]


@dataclass
class Faults:
    """What one endpoint should do wrong next. Sequences are consumed one per call."""

    errcodes: deque[int] = field(default_factory=deque)
    http_statuses: deque[int] = field(default_factory=deque)
    always_errcode: int | None = None
    delay: float = 0.0


def flatten_template_data(data: Any) -> str:
    """Template/subscribe data as lines: ``first``/``remark`` as they are, others as ``key: value``."""
    if not isinstance(data, dict):
        return ""
    lines = []
    for key, item in data.items():
        value = item.get("value", "") if isinstance(item, dict) else item
        lines.append(str(value) if key in ("first", "remark") else f"{key}: {value}")
    return "\n".join(lines)


def custom_text(body: dict[str, Any]) -> str:
    """What a resident would read for a customer-service message."""
    msgtype = str(body.get("msgtype", ""))
    part = body.get(msgtype) if isinstance(body.get(msgtype), dict) else {}
    if msgtype == "text":
        return str(part.get("content", ""))
    if msgtype == "news":
        return "\n".join(str(a.get("title", "")) for a in part.get("articles", []) if isinstance(a, dict))
    if msgtype == "msgmenu":
        items = [str(i.get("content", "")) for i in part.get("list", []) if isinstance(i, dict)]
        return "\n".join([str(part.get("head_content", "")), *items, str(part.get("tail_content", ""))]).strip()
    if msgtype == "miniprogrampage":
        return str(part.get("title", "[小程序]"))
    return MEDIA_LABELS.get(msgtype, f"[{msgtype}]")


class MockWeChat:
    """State, fault injection and the aiohttp application of the fake WeChat API."""

    def __init__(self, appid: str = "", secret: str = "", *, token_ttl: int = TOKEN_TTL,
                 clock: Callable[[], float] = time.time, strict_media: bool = False) -> None:
        self.appid = appid
        self._secret = secret
        self.token_ttl = token_ttl
        self.clock = clock
        self.strict_media = strict_media
        self._message_ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.reset()

    # ---- state --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget calls, messages, tokens, faults, menu, media, unsubscribed residents and closed windows."""
        self.calls: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.tokens: dict[str, float] = {}  # token -> expires_at
        self.current_token: str | None = None
        self.faults: dict[str, Faults] = {}
        self.menu: dict[str, Any] | None = None
        self.media: dict[str, tuple[bytes, str]] = {}
        self.unsubscribed: set[str] = set()
        self.window_closed: set[str] = set()

    def _faults(self, endpoint: str) -> Faults:
        return self.faults.setdefault(endpoint.strip("/"), Faults())

    def fail(self, endpoint: str, *errcodes: int) -> None:
        """The next calls to ``endpoint`` answer these errcodes, one per call, in order."""
        self._faults(endpoint).errcodes.extend(errcodes)

    def fail_always(self, endpoint: str, errcode: int | None) -> None:
        """Every call to ``endpoint`` answers ``errcode`` until cleared with None."""
        self._faults(endpoint).always_errcode = errcode

    def fail_http(self, endpoint: str, *statuses: int) -> None:
        """The next calls to ``endpoint`` get these HTTP statuses (e.g. 500, 502)."""
        self._faults(endpoint).http_statuses.extend(statuses)

    def delay(self, endpoint: str, seconds: float) -> None:
        """Every call to ``endpoint`` waits this long before answering (0 to stop)."""
        self._faults(endpoint).delay = seconds

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (WeChat answers 42001)."""
        now = self.clock()
        self.tokens = {t: min(exp, now - 1) for t, exp in self.tokens.items()}

    def revoke_tokens(self) -> None:
        """Every token issued so far becomes unknown (WeChat answers 40001), as after a reset elsewhere."""
        self.tokens.clear()
        self.current_token = None

    def add_media(self, media_id: str, content: bytes, content_type: str = "image/jpeg") -> None:
        self.media[media_id] = (content, content_type)

    def unsubscribe(self, openid: str) -> None:
        """Sends to this resident answer 43004 (not following)."""
        self.unsubscribed.add(openid)

    def close_window(self, openid: str, closed: bool = True) -> None:
        """Customer-service messages to this follower answer 45015, as when they have not written to
        the account for 48 hours (template messages still go); ``closed=False`` opens it again."""
        (self.window_closed.add if closed else self.window_closed.discard)(openid)

    def calls_to(self, endpoint: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["endpoint"] == endpoint]

    def count(self, endpoint: str) -> int:
        return len(self.calls_to(endpoint))

    def messages_to(self, touser: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["id"] > after and (touser is None or m["touser"] == touser)]

    # ---- tokens -------------------------------------------------------------------------------

    def _issue_token(self, invalidate_others: bool) -> tuple[str, int]:
        if invalidate_others:
            self.tokens.clear()
        token = f"MOCK_{secrets.token_urlsafe(24)}"
        self.tokens[token] = self.clock() + self.token_ttl
        self.current_token = token
        return token, self.token_ttl

    def _stable_token(self, force: bool) -> tuple[str, int]:
        """Like WeChat: reuse the current token unless forced or in its last five minutes."""
        now = self.clock()
        current = self.current_token
        if not force and current and self.tokens.get(current, 0) - now > EARLY_RENEW:
            return current, int(self.tokens[current] - now)
        return self._issue_token(invalidate_others=force)

    def _check_credentials(self, appid: str, secret: str) -> dict[str, Any] | None:
        if not (self.appid and self._secret):
            return None  # sandbox: any credentials will do
        if not hmac.compare_digest(appid.encode(), self.appid.encode()):
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if not hmac.compare_digest(secret.encode(), self._secret.encode()):
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        return None

    def _check_token(self, token: str) -> dict[str, Any] | None:
        if not token:
            return {"errcode": 41001, "errmsg": "access_token missing"}
        expires_at = next((exp for t, exp in self.tokens.items() if hmac.compare_digest(t, token)), None)
        if expires_at is None:
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
        if self.clock() >= expires_at:
            return {"errcode": 42001, "errmsg": "access_token expired"}
        return None

    # ---- endpoints ----------------------------------------------------------------------------

    async def _ep_stable_token(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        if body.get("grant_type") != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        bad = self._check_credentials(str(body.get("appid", "")), str(body.get("secret", "")))
        if bad:
            return bad
        token, expires_in = self._stable_token(bool(body.get("force_refresh")))
        return {"access_token": token, "expires_in": expires_in}

    async def _ep_token(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        bad = self._check_credentials(query.get("appid", ""), query.get("secret", ""))
        if bad:
            return bad
        token, expires_in = self._issue_token(invalidate_others=True)
        return {"access_token": token, "expires_in": expires_in}

    def _record_message(self, touser: str, kind: str, msgtype: str, text: str) -> int:
        msg_id = next(self._message_ids)
        self.messages.append({"id": msg_id, "touser": touser, "kind": kind, "msgtype": msgtype, "text": text,
                              "ts": time.time()})
        return msg_id

    def _check_touser(self, touser: Any) -> dict[str, Any] | None:
        if not touser or not isinstance(touser, str):
            return {"errcode": 40003, "errmsg": "invalid openid"}
        if touser in self.unsubscribed:
            return {"errcode": 43004, "errmsg": "require subscribe"}
        return None

    async def _ep_custom_send(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        bad = self._check_touser(body.get("touser"))
        if bad:
            return bad
        if body["touser"] in self.window_closed:
            return {"errcode": 45015, "errmsg": "response out of time limit or subscription is canceled"}
        msgtype = body.get("msgtype")
        if not isinstance(msgtype, str) or not isinstance(body.get(msgtype), dict):
            return {"errcode": 40008, "errmsg": "invalid message type"}
        self._record_message(body["touser"], "custom", msgtype, custom_text(body))
        return {"errcode": 0, "errmsg": "ok"}

    async def _ep_template_send(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        bad = self._check_touser(body.get("touser"))
        if bad:
            return bad
        if not body.get("template_id"):
            return {"errcode": 40037, "errmsg": "invalid template_id"}
        msgid = self._record_message(body["touser"], "template", "template", flatten_template_data(body.get("data")))
        return {"errcode": 0, "errmsg": "ok", "msgid": 1_000_000 + msgid}

    async def _ep_subscribe_send(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        bad = self._check_touser(body.get("touser"))
        if bad:
            return bad
        if not body.get("template_id"):
            return {"errcode": 40037, "errmsg": "invalid template_id"}
        self._record_message(body["touser"], "subscribe", "subscribe", flatten_template_data(body.get("data")))
        return {"errcode": 0, "errmsg": "ok"}

    async def _ep_menu_create(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        buttons = body.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return {"errcode": 40016, "errmsg": "invalid button size"}
        if any(len(b.get("sub_button", [])) > 5 for b in buttons if isinstance(b, dict)):
            return {"errcode": 40023, "errmsg": "invalid sub button size"}
        self.menu = body
        return {"errcode": 0, "errmsg": "ok"}

    async def _ep_menu_get(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        if self.menu is None:
            return {"errcode": 46003, "errmsg": "menu no exist"}
        return {"menu": self.menu}

    async def _ep_media_get(self, body: dict[str, Any], query: dict[str, str]) -> web.StreamResponse | dict[str, Any]:
        media_id = query.get("media_id", "")
        found = self.media.get(media_id)
        if found is None and (self.strict_media or not media_id):
            return {"errcode": 40007, "errmsg": "invalid media_id"}
        content, content_type = found or (PLACEHOLDER_PNG, "image/png")
        return web.Response(body=content, content_type=content_type,
                            headers={"Content-Disposition": f'attachment; filename="{media_id}"'})

    async def _ep_user_info(self, body: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        openid = query.get("openid", "")
        if not openid:
            return {"errcode": 40003, "errmsg": "invalid openid"}
        if openid in self.unsubscribed:
            return {"subscribe": 0, "openid": openid}
        return {"subscribe": 1, "openid": openid, "language": "zh_CN", "subscribe_time": int(self.clock()),
                "subscribe_scene": "ADD_SCENE_QR_CODE", "remark": "", "tagid_list": []}

    def _endpoints(self) -> dict[str, Handler]:
        return {
            "stable_token": self._ep_stable_token,
            "token": self._ep_token,
            "message/custom/send": self._ep_custom_send,
            "message/template/send": self._ep_template_send,
            "message/subscribe/bizsend": self._ep_subscribe_send,
            "menu/create": self._ep_menu_create,
            "menu/get": self._ep_menu_get,
            "media/get": self._ep_media_get,
            "user/info": self._ep_user_info,
        }

    # ---- HTTP ---------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.match_info["endpoint"].strip("/")
        query = dict(request.query)
        raw = await request.read()
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError):
            body = None
        call = {"id": next(self._call_ids), "ts": time.time(), "method": request.method, "endpoint": endpoint,
                "query": _redact(query), "body": _redact(body), "status": 200, "errcode": 0}
        self.calls.append(call)
        response = await self._answer(endpoint, body, query, call)
        return response

    async def _answer(self, endpoint: str, body: Any, query: dict[str, str], call: dict[str, Any]) -> web.StreamResponse:
        faults = self._faults(endpoint)
        if faults.delay:
            await asyncio.sleep(faults.delay)
        if faults.http_statuses:
            call["status"] = faults.http_statuses.popleft()
            return web.Response(status=call["status"], text="mock fault")
        forced = faults.errcodes.popleft() if faults.errcodes else faults.always_errcode
        if forced is not None:
            return self._json(call, {"errcode": forced, "errmsg": "mock fault"})
        handler = self._endpoints().get(endpoint)
        if handler is None:
            call["status"] = 404
            return self._json(call, {"errcode": 48001, "errmsg": "api unauthorized"}, status=404)
        if body is None or not isinstance(body, dict):
            return self._json(call, {"errcode": 47001, "errmsg": "data format error"})
        if endpoint not in ("stable_token", "token"):
            bad = self._check_token(query.get("access_token", ""))
            if bad:
                return self._json(call, bad)
        result = await handler(body, query)
        if isinstance(result, web.StreamResponse):
            return result
        return self._json(call, result)

    @staticmethod
    def _json(call: dict[str, Any], payload: dict[str, Any], status: int = 200) -> web.Response:
        call["errcode"] = int(payload.get("errcode", 0) or 0)
        return web.Response(status=status, text=json.dumps(payload, ensure_ascii=False),
                            content_type="application/json", charset="utf-8")

    async def _messages(self, request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0") or 0)
        except ValueError:
            raise web.HTTPBadRequest(text="after must be an integer") from None
        return web.json_response({"messages": self.messages_to(request.query.get("touser") or None, after)},
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _calls(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": self.calls}, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _set_faults(self, request: web.Request) -> web.Response:
        """POST {"endpoint", "errcodes": [...], "http_statuses": [...], "delay": s, "always_errcode": n}."""
        try:
            spec = await request.json()
            endpoint = str(spec["endpoint"])
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(text='expected JSON with "endpoint"') from None
        self.fail(endpoint, *[int(c) for c in spec.get("errcodes", [])])
        self.fail_http(endpoint, *[int(s) for s in spec.get("http_statuses", [])])
        if "delay" in spec:
            self.delay(endpoint, float(spec["delay"]))
        if "always_errcode" in spec:
            self.fail_always(endpoint, None if spec["always_errcode"] is None else int(spec["always_errcode"]))
        if spec.get("expire_tokens"):
            self.expire_tokens()
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        """A fresh sub-application over this mock's state, to mount at ``MOCK_PREFIX``."""
        sub = web.Application()
        sub.router.add_route("*", "/cgi-bin/{endpoint:.+}", self._handle)
        sub.router.add_get("/_mock/messages", self._messages)
        sub.router.add_get("/_mock/calls", self._calls)
        sub.router.add_post("/_mock/reset", self._reset)
        sub.router.add_post("/_mock/faults", self._set_faults)
        return sub

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve standalone on a loopback port; returns the ``api_base_url`` to configure."""
        root = web.Application()
        root.add_subapp(MOCK_PREFIX, self.app())
        self._runner = web.AppRunner(root, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound}{MOCK_PREFIX}/cgi-bin/"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _redact(body: Any) -> Any:
    """Recorded calls are served at /_mock/calls: never keep an AppSecret there."""
    if isinstance(body, dict) and "secret" in body:
        return {**body, "secret": "***"}
    return body


MOCK_WECHAT = web.AppKey("mock_wechat", MockWeChat)


def setup_mock(app: web.Application, appid: str = "", secret: str = "") -> MockWeChat:
    """Mount the mock at ``MOCK_PREFIX`` (sandbox mode) and keep it at ``app[MOCK_WECHAT]``."""
    mock = MockWeChat(appid, secret)
    app.add_subapp(MOCK_PREFIX, mock.app())
    app[MOCK_WECHAT] = mock
    return mock
