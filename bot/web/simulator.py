"""The phone-like chat simulator at ``/simulator`` (sandbox only).

Why it posts to our own webhook over HTTP instead of calling the dialogue directly: the page must show
what a resident's phone would show, so every action goes through signature checks, encryption (in
compatible/safe mode), dedup, the 5-second deadline and the passive-reply codec, exactly like WeChat.
Customer-service messages are read back from the mock WeChat API's record, i.e. what the bot really
sent out through the outbox.

Outside sandbox mode (or with ``sandbox.simulator = false``) nothing is mounted, so every path is 404.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from bot.config import Config, replace
from bot.sandbox.launcher import MOCK_PREFIX, sandbox_config
from bot.web.chatkit import BadSend, MockInbox, emulator_for, mock_root, page_config, parse_send, send

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
PREFIX = "/simulator"
# The page loads only its own files; message text is never HTML, but this is the second fence.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class _State:
    """Per-app simulator state: the HTTP client used to talk to our own webhook and the mock."""

    def __init__(self, config: Config, webhook_path: str) -> None:
        self.config = config
        self.webhook_path = webhook_path
        self.fixed_mock_root = _configured_mock_root(config)
        self.session: aiohttp.ClientSession | None = None


STATE = web.AppKey("simulator_state", _State)


def enabled(config: Config) -> bool:
    """Only a sandbox serves the simulator; a production account must never expose it."""
    return config.sandbox_mode and config.sandbox.simulator


def _configured_mock_root(config: Config) -> str | None:
    """The mock's root when it lives elsewhere; None when it is mounted inside this app.

    An in-app mock is reached through the socket the request came in on, because the configured
    ``server.port`` is not always the real one (tests and ``resident-bot chat`` bind a free port).
    """
    base = config.wechat.api_base_url
    in_app = sandbox_config(replace(config, wechat={"api_base_url": ""})).wechat.api_base_url
    if not base or base == in_app:
        return None
    return mock_root(base)


def _own_origin(request: web.Request) -> str:
    """``http://host:port`` of the socket this request arrived on (loopback in practice)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname or not isinstance(sockname, tuple):
        return f"{request.scheme}://{request.host}"
    host, port = sockname[0], sockname[1]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _session(request: web.Request) -> aiohttp.ClientSession:
    session = request.app[STATE].session
    assert session is not None, "simulator session is created on startup"
    return session


async def page(request: web.Request) -> web.FileResponse:
    """The single page; everything else it needs comes from ``/simulator/static`` and the JSON API."""
    return web.FileResponse(STATIC / "simulator.html", headers={
        "Content-Security-Policy": CSP, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer"})


async def api_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({**page_config(), "mode": state.config.wechat.mode})


async def api_send(request: web.Request) -> web.Response:
    """Build the typed event, post it signed to our own webhook, return the decoded passive reply."""
    try:
        req = parse_send(await request.json())
    except json.JSONDecodeError:
        return web.json_response({"error": "body is not JSON"}, status=400)
    except BadSend as exc:
        return web.json_response({"error": str(exc)}, status=400)
    state = request.app[STATE]
    url = _own_origin(request) + state.webhook_path
    emulator = emulator_for(state.config.wechat, url, _session(request))
    try:
        result = await send(emulator, state.config.wechat, req)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("simulator: webhook unreachable: %s", type(exc).__name__)
        return web.json_response({"error": f"webhook unreachable: {type(exc).__name__}"}, status=502)
    return web.json_response(result)


async def api_messages(request: web.Request) -> web.Response:
    """Customer-service and template messages the bot sent to one resident, after a cursor id."""
    openid = request.query.get("openid", "")
    try:
        after = max(0, int(request.query.get("after", "0")))
    except ValueError:
        return web.json_response({"error": "after must be an integer"}, status=400)
    try:
        parse_send({"openid": openid, "kind": "text"})
    except BadSend as exc:
        return web.json_response({"error": str(exc)}, status=400)
    state = request.app[STATE]
    root = state.fixed_mock_root or (_own_origin(request) + MOCK_PREFIX)
    result = await MockInbox(root, _session(request)).fetch(openid, after)
    return web.json_response(result)


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound(PREFIX)


def setup_simulator(app: web.Application, config: Config, webhook_path: str = "/wechat") -> None:
    """Mount the simulator (page, static files, JSON API) when the config allows it; otherwise nothing."""
    if not enabled(config):
        return
    state = _State(config, webhook_path)
    app[STATE] = state

    async def client_ctx(app: web.Application) -> AsyncIterator[None]:
        state.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=config.wechat.reply_deadline + 10))
        yield
        await state.session.close()

    app.cleanup_ctx.append(client_ctx)
    app.router.add_get(PREFIX, page)
    app.router.add_get(PREFIX + "/", _redirect)
    app.router.add_get(PREFIX + "/api/config", api_config)
    app.router.add_post(PREFIX + "/api/send", api_send)
    app.router.add_get(PREFIX + "/api/messages", api_messages)
    app.router.add_static(PREFIX + "/static", STATIC, append_version=False)
