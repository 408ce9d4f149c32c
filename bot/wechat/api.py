"""Outbound WeChat API: wechatpy's client, pointed at a configurable base, behind an async facade.

Why wrap wechatpy instead of using it as is (1.8.18):
- its ``API_BASE_URL`` and token URL are hard-coded to api.weixin.qq.com, so the sandbox's mock could
  not stand in for WeChat — :class:`SharedTokenClient` takes the base from ``wechat.api_base_url``;
- it retries 40001/42001 forever and keeps the token per process — here the token comes from the
  shared :class:`~bot.wechat.tokens.AccessTokenManager`, a rejected token is refreshed once per burst
  (compare-and-refresh) and each call retries at most once after that;
- it is synchronous (requests) — :class:`WeChatApi` runs it on a small dedicated thread pool with a
  timeout, so a slow WeChat never blocks the event loop nor starves other ``to_thread`` users.

Every error comes out as :class:`WeChatApiError` with WeChat's ``errcode`` (None for transport
trouble: timeouts, connection errors, HTTP 5xx). Tokens and the AppSecret are never logged and never
part of an error message (requests' exception texts contain the URL, hence the access_token: we keep
only the exception's type name).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import requests
from requests.adapters import HTTPAdapter
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from bot.wechat.tokens import AccessTokenManager, DbTokenStore, RedisTokenStore, TokenStore

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com/cgi-bin/"

# The token is bad: refresh (once) and retry. 40001 invalid credential, 40014 invalid token, 42001 expired.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
# Retrying cannot help; record and stop. Each with the reason it is final.
PERMANENT_ERRCODES = frozenset({
    40003,  # invalid openid
    40008,  # invalid message type
    40037,  # invalid template_id
    43004,  # the resident does not follow the account (any more)
    43101,  # the resident has not accepted this subscription notice
    45015,  # outside the 48-hour customer-service window
    45047,  # too many customer-service messages without a reply from the resident
    47003,  # template/subscribe data does not match the template
    *range(40016, 40028),  # menu/create: invalid button count, type, name, key, url, sub-buttons …
    40054, 40055,  # menu/create: invalid (sub)button url domain
})
SYSTEM_BUSY = -1

R = TypeVar("R")


class WeChatApiError(Exception):
    """A failed WeChat call. ``errcode`` is WeChat's code, or None when the call never got an answer."""

    def __init__(self, errcode: int | None, errmsg: str, endpoint: str = "") -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.endpoint = endpoint
        super().__init__(f"{endpoint or 'wechat'}: {errcode if errcode is not None else 'no answer'} {errmsg}")

    @property
    def transient(self) -> bool:
        """Worth an immediate retry: no answer at all, or WeChat's 'system busy'."""
        return self.errcode is None or self.errcode == SYSTEM_BUSY

    @property
    def permanent(self) -> bool:
        """Never worth retrying (the outbox records it and moves on)."""
        return self.errcode in PERMANENT_ERRCODES


class AccessTokenRejected(WeChatApiError):
    """WeChat refused the access_token we sent; carries it for compare-and-refresh."""

    def __init__(self, errcode: int, errmsg: str, endpoint: str, token: str) -> None:
        super().__init__(errcode, errmsg, endpoint)
        self.token = token


class _HideAccessToken(logging.Filter):
    """urllib3 logs every request URL at DEBUG, and ours carry ``?access_token=``: mask it there."""

    _pattern = re.compile(r"(access_token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message:
            record.msg, record.args = self._pattern.sub(r"\1***", message), None
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_HideAccessToken())

_local = threading.local()


class NoTokenHere(AttributeError):
    """The client was used outside :class:`WeChatApi` (an AttributeError so ``inspect`` skips it)."""


def api_base(configured: str) -> str:
    """The configured base with a trailing slash, or WeChat's own."""
    base = configured.strip() or DEFAULT_API_BASE
    return base if base.endswith("/") else base + "/"


class SharedTokenClient(WeChatClient):
    """wechatpy's client with a configurable base, typed errors, no own token handling.

    The token is handed in per call by :class:`WeChatApi` (thread-local, set just around the call), so
    every wechatpy API (``message``, ``menu``, ``media``, ``user`` …) works unchanged.
    """

    def __init__(self, appid: str, secret: str, api_base_url: str = "", timeout: float = 5.0,
                 pool_size: int = 8) -> None:
        super().__init__(appid, secret, timeout=timeout, auto_retry=False)
        self.API_BASE_URL = api_base(api_base_url)
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)

    def __repr__(self) -> str:  # never show the secret
        return f"SharedTokenClient(appid={self.appid!r}, base={self.API_BASE_URL!r})"

    @property
    def access_token(self) -> str:  # type: ignore[override]
        token = getattr(_local, "token", None)
        if not token:
            raise NoTokenHere("SharedTokenClient gets its token from WeChatApi; call WeChat through the facade")
        return token

    def fetch_access_token(self) -> dict[str, Any]:
        return self.fetch_stable_token(force_refresh=False)

    def fetch_stable_token(self, force_refresh: bool) -> dict[str, Any]:
        """POST cgi-bin/stable_token: unlike cgi-bin/token it does not invalidate the token in use."""
        body = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret,
                "force_refresh": bool(force_refresh)}
        try:
            res = self._http.post(self.API_BASE_URL + "stable_token", json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise WeChatApiError(None, type(exc).__name__, "stable_token") from None
        if res.status_code >= 400:
            raise WeChatApiError(None, f"HTTP {res.status_code}", "stable_token")
        try:
            result = res.json()
        except ValueError:
            raise WeChatApiError(None, "not JSON", "stable_token") from None
        errcode = int(result.get("errcode") or 0)
        if errcode or not result.get("access_token"):
            raise WeChatApiError(errcode or None, str(result.get("errmsg", "no access_token")), "stable_token")
        return result

    def _endpoint(self, url: str | None) -> str:
        url = (url or "").split("?", 1)[0]
        return url[len(self.API_BASE_URL):] if url.startswith(self.API_BASE_URL) else url.rsplit("/cgi-bin/", 1)[-1]

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        endpoint = self._endpoint(url_or_endpoint) if "://" in url_or_endpoint else url_or_endpoint
        try:
            return super()._request(method, url_or_endpoint, **kwargs)
        except WeChatClientException as exc:
            if exc.errcode is not None:
                raise WeChatApiError(int(exc.errcode), str(exc.errmsg), endpoint) from None
            status = getattr(exc.response, "status_code", None)
            raise WeChatApiError(None, f"HTTP {status}", endpoint) from None
        except requests.RequestException as exc:
            raise WeChatApiError(None, type(exc).__name__, endpoint) from None

    def _handle_result(self, res: Any, method: str | None = None, url: str | None = None,
                       result_processor: Callable[[Any], Any] | None = None, **kwargs: Any) -> Any:
        result = res if isinstance(res, dict) else self._decode_result(res)
        if not isinstance(result, dict):
            return result
        errcode = int(result.get("errcode") or 0)
        if errcode:
            errmsg = str(result.get("errmsg", ""))
            if errcode in TOKEN_ERRCODES:
                used = (kwargs.get("params") or {}).get("access_token", "")
                raise AccessTokenRejected(errcode, errmsg, self._endpoint(url), used)
            raise WeChatApiError(errcode, errmsg, self._endpoint(url))
        return result_processor(result) if result_processor else result


class WeChatApi:
    """The async face of the WeChat API used by the outbox sender, the menu command and handlers.

    Retries are bounded: a rejected token is refreshed once per call; transport errors are retried
    ``transient_retries`` times only for idempotent calls (menu, media, user info). Sends are not
    retried here — a timed-out send may have been delivered, and the outbox owns their retries.
    """

    def __init__(self, client: SharedTokenClient, tokens: AccessTokenManager, *, timeout: float = 5.0,
                 max_workers: int = 8, transient_retries: int = 2, retry_delay: float = 0.2) -> None:
        self.client = client
        self.tokens = tokens
        self._deadline = timeout * 2 + 1.0  # requests' timeout is per socket operation; this caps the whole
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="wechat-api")
        self._transient_retries = transient_retries
        self._retry_delay = retry_delay

    async def send_custom(self, openid: str, payload: dict[str, Any]) -> dict[str, Any]:
        """客服消息: ``payload`` is the body without ``touser`` (``{"msgtype": "text", "text": {...}}``)."""
        body = {"touser": openid, **payload}
        return await self._call(lambda: self.client.post("message/custom/send", data=body), idempotent=False)

    async def send_template(self, openid: str, template_id: str, data: dict[str, Any],
                            url: str | None = None) -> dict[str, Any]:
        """模板消息; the answer carries ``msgid`` (matched later by TEMPLATESENDJOBFINISH)."""
        return await self._call(lambda: self.client.message.send_template(openid, template_id, data, url=url),
                                idempotent=False)

    async def send_subscribe(self, openid: str, template_id: str, data: dict[str, Any],
                             page: str | None = None) -> dict[str, Any]:
        """订阅通知 (message/subscribe/bizsend)."""
        return await self._call(
            lambda: self.client.message.send_subscribe_message(openid, template_id, data, page=page),
            idempotent=False)

    async def create_menu(self, menu: dict[str, Any]) -> dict[str, Any]:
        """自定义菜单 (menu/create): replaces the whole menu, so repeating it is harmless."""
        return await self._call(lambda: self.client.menu.create(menu), idempotent=True)

    async def download_media(self, media_id: str) -> bytes:
        """临时素材 (media/get): the file's bytes (for a video, WeChat's JSON with ``video_url``)."""
        result = await self._call(lambda: self.client.media.download(media_id), idempotent=True)
        if isinstance(result, dict):
            return json.dumps(result, ensure_ascii=False).encode("utf-8")
        return bytes(result.content)

    async def user_info(self, openid: str) -> dict[str, Any]:
        """用户基本信息 (user/info)."""
        return await self._call(lambda: self.client.user.get(openid), idempotent=True)

    async def fetch_token(self, force_refresh: bool) -> tuple[str, float]:
        """The fetcher handed to :class:`AccessTokenManager`: stable_token in the pool, with the deadline."""
        result = await self._in_thread(None, lambda: self.client.fetch_stable_token(force_refresh), "stable_token")
        return str(result["access_token"]), float(result.get("expires_in", 7200))

    async def close(self) -> None:
        await self.tokens.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.client._http.close()

    async def _call(self, fn: Callable[[], R], *, idempotent: bool) -> R:
        token_refreshed = False
        transient_left = self._transient_retries if idempotent else 0
        while True:
            token = await self.tokens.get()
            try:
                return await self._in_thread(token, fn)
            except AccessTokenRejected as exc:
                if token_refreshed:
                    raise
                token_refreshed = True
                await self.tokens.refresh_after_rejection(exc.token)
            except WeChatApiError as exc:
                if not exc.transient or transient_left <= 0:
                    raise
                transient_left -= 1
                log.info("wechat %s failed (%s), retrying", exc.endpoint, exc.errmsg)
                await asyncio.sleep(self._retry_delay)

    async def _in_thread(self, token: str | None, fn: Callable[[], R], what: str = "") -> R:
        def run() -> R:
            _local.token = token
            try:
                return fn()
            finally:
                _local.token = None

        future = asyncio.get_running_loop().run_in_executor(self._executor, run)
        try:
            return await asyncio.wait_for(future, self._deadline)
        except asyncio.TimeoutError:
            raise WeChatApiError(None, "timeout", what) from None


def token_store(config: Any, engine: Any) -> TokenStore:
    """Redis when ``redis.url`` is set (fast, shared by every process), else the database row."""
    appid = config.wechat.app_id or "sandbox"
    if config.redis.url:
        return RedisTokenStore.from_url(config.redis.url, appid)
    return DbTokenStore(engine, appid)


def build_wechat_api(config: Any, engine: Any, *, store: TokenStore | None = None,
                     clock: Callable[[], float] = time.time, **token_options: Any) -> WeChatApi:
    """The WeChat API as configured (``wechat.api_base_url``, ``wechat.api_timeout``, ``redis.url``)."""
    wc = config.wechat
    client = SharedTokenClient(wc.app_id or "sandbox", wc.app_secret, wc.api_base_url, wc.api_timeout)
    holder: list[WeChatApi] = []

    async def fetch(force: bool) -> tuple[str, float]:
        return await holder[0].fetch_token(force)

    options = {"lease_ttl": wc.api_timeout * 3 + 5.0, **token_options}
    tokens = AccessTokenManager(store or token_store(config, engine), fetch, clock=clock, **options)
    api = WeChatApi(client, tokens, timeout=wc.api_timeout)
    holder.append(api)
    return api
