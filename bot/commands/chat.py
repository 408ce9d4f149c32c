"""``resident-bot chat``: talk to the bot from a terminal as a resident would from WeChat.

Each line is sent as a real signed (and, in compatible/safe mode, encrypted) WeChat message to the
webhook over HTTP, so the terminal sees exactly what a phone would: the passive reply, and later the
customer-service messages the bot sent through the (mock) WeChat API. By default a sandbox copy of the
app runs in-process on a free loopback port with the configured database (migrated first); ``--url``
talks to a bot that is already running.

Input may be a TTY or a pipe, so tests and scripts can drive it: ``printf '你好\\n/quit\\n' | resident-bot chat``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import threading
import unicodedata
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, TextIO
from urllib.parse import urlsplit

import aiohttp

from bot.cli import config_from_args
from bot.config import Config, replace
from bot.sandbox.launcher import MOCK_PREFIX
from bot.sandbox.wechat_server import WeChatServerEmulator
from bot.web.chatkit import (
    MENU,
    SAMPLE_LOCATION,
    SAMPLE_RESIDENTS,
    BadSend,
    MockInbox,
    emulator_for,
    mock_root,
    new_openid,
    parse_send,
    send,
)

WEBHOOK_PATH = "/wechat"

HELP = """命令：
  直接输入文字        发送文字消息
  /voice 文字         发送语音（文字当作语音识别结果）；/voice 不带文字 = 没听清的语音
  /loc [地点]         发送位置（普子岭社区示例坐标）
  /click 菜单         点菜单，如 /click GUIDE 或 /click 办事指南
  /menu               列出菜单
  /follow [场景]      关注公众号，如 /follow grid:3
  /unfollow           取消关注
  /as 居民            换一个居民：张大爷 / 李阿姨 / 王师傅 / new / 任意 openid
  /help               显示本说明
  /quit               退出"""

_QUIT = object()


# --- turning a typed line into a send request ----------------------------------------------------


def _menu_key(word: str) -> str:
    """Accept the key (GUIDE) or the label on the phone (办事指南)."""
    for key, label in MENU:
        if word.upper() == key or word == label:
            return key
    return word


def resolve_openid(who: str) -> str:
    """A sample resident's name, ``new`` for a fresh follower, or an openid as is."""
    if who.lower() == "new":
        return new_openid()
    for r in SAMPLE_RESIDENTS:
        if who in (r["name"], r["openid"]):
            return r["openid"]
    return who


def line_to_request(line: str) -> dict[str, Any] | str | object:
    """A send-request body for ``line``; a string to print (help, errors); or ``_QUIT``.

    ``/as`` returns ``{"as": openid}`` so the caller can switch residents.
    """
    if not line.startswith("/") or line.startswith("/:"):  # /:strong, /::) are WeChat faces, sent as text
        return {"kind": "text", "text": line}
    command, _, rest = line[1:].partition(" ")
    rest = rest.strip()
    command = command.lower()
    if command in ("quit", "exit", "q"):
        return _QUIT
    if command in ("help", "h", "?"):
        return HELP
    if command == "menu":
        return "菜单：" + "  ".join(f"{label}({key})" for key, label in MENU)
    if command == "voice":
        return {"kind": "voice", "text": rest}
    if command in ("loc", "location"):
        return {"kind": "location", "label": rest or SAMPLE_LOCATION["label"]}
    if command == "click":
        return {"kind": "click", "key": _menu_key(rest)} if rest else "用法：/click GUIDE 或 /click 办事指南"
    if command == "follow":
        return {"kind": "subscribe", "scene": rest}
    if command == "unfollow":
        return {"kind": "unsubscribe"}
    if command == "as":
        return {"as": resolve_openid(rest)} if rest else "用法：/as 张大爷 或 /as new 或 /as 某个openid"
    return f"不认识的命令 /{command}，输入 /help 查看说明。"


# --- showing replies ----------------------------------------------------------------------------


def _block(prefix: str, text: str) -> str:
    """Prefix the first line, indent the rest, so multi-line answers stay readable."""
    lines = text.splitlines() or [""]
    pad = " " * sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in prefix)
    return "\n".join([prefix + lines[0], *(pad + line for line in lines[1:])])


def format_result(result: dict[str, Any]) -> str:
    """The passive reply as the terminal shows it."""
    if result["status"] != 200:
        return f"系统> 公众号服务器返回 HTTP {result['status']}，居民收不到回复"
    reply = result.get("reply")
    if result.get("success") or not reply:
        return "系统> 服务器回复 success：没有被动回复，答复稍后以客服消息送达"
    if reply.get("msgtype") == "news":
        body = "\n".join(x for x in (reply.get("title", ""), reply.get("description", ""), reply.get("url", "")) if x)
        return _block("回复> [图文] ", body)
    return _block("回复> ", reply.get("text", ""))


def format_message(message: dict[str, Any]) -> str:
    """A customer-service / template / subscription message from the mock's record."""
    prefix = {"template": "模板> ", "subscribe": "订阅> "}.get(message.get("kind", ""), "客服> ")
    return _block(prefix, message.get("text") or f"[{message.get('msgtype') or '消息'}]")


# --- the session ---------------------------------------------------------------------------------


@dataclass
class ChatSession:
    """One terminal conversation: who we are, where we send, and what we have already shown."""

    emulator: WeChatServerEmulator
    config: Config
    inbox: MockInbox
    openid: str
    out: TextIO = sys.stdout
    interactive: bool = False
    cursor: int = 0
    _print_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def skip_history(self) -> bool:
        """Start after the newest message already recorded, so old conversations are not replayed.

        Returns whether the mock's record is reachable at all (not when talking to a real account).
        """
        data = await self.inbox.fetch(self.openid, 0)
        self.cursor = max((m["id"] for m in data["messages"]), default=0)
        return bool(data["available"])

    async def pull_messages(self) -> int:
        """Print customer-service messages that arrived since the last look; how many there were."""
        async with self._print_lock:
            data = await self.inbox.fetch(self.openid, self.cursor)
            fresh = [m for m in data["messages"] if m["id"] > self.cursor]
            for message in fresh:
                self.cursor = max(self.cursor, message["id"])
                self.say(format_message(message))
            return len(fresh)

    async def handle_line(self, line: str) -> bool:
        """Act on one typed line; False when the person asked to quit."""
        if not self.interactive:
            self.say(f"你> {line}")
        action = line_to_request(line)
        if action is _QUIT:
            return False
        if isinstance(action, str):
            self.say(action)
        elif isinstance(action, dict) and "as" in action:
            self.openid = str(action["as"])
            await self.skip_history()
            self.say(f"系统> 现在以 {self.openid} 的身份聊天")
        elif isinstance(action, dict):
            await self._send(action)
        return True

    async def _send(self, body: dict[str, Any]) -> None:
        try:
            req = parse_send({"openid": self.openid, **body})
        except BadSend as exc:
            self.say(f"系统> 无法发送：{exc}")
            return
        try:
            result = await send(self.emulator, self.config.wechat, req)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.say(f"系统> 发送失败：{type(exc).__name__} {exc}")
            return
        async with self._print_lock:
            self.say(format_result(result))
        await self.pull_messages()


def _stdin_lines(loop: asyncio.AbstractEventLoop, stream: TextIO) -> asyncio.Queue[str | None]:
    """Lines from stdin via a daemon thread, so a blocked read never holds up shutdown."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def reader() -> None:
        for raw in stream:
            loop.call_soon_threadsafe(queue.put_nowait, raw.rstrip("\r\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader, name="chat-stdin", daemon=True).start()
    return queue


async def _poll_forever(session: ChatSession, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        if await session.pull_messages() and session.interactive:
            print("你> ", end="", file=session.out, flush=True)


async def converse(session: ChatSession, stdin: TextIO, poll: float, linger: float) -> None:
    """The read–send–print loop; afterwards wait ``linger`` seconds for late customer-service messages."""
    if not await session.skip_history():
        print("chat: 看不到客服消息（没有模拟微信接口），只显示被动回复。", file=sys.stderr, flush=True)
    lines = _stdin_lines(asyncio.get_running_loop(), stdin)
    poller = asyncio.create_task(_poll_forever(session, poll))
    try:
        while True:
            if session.interactive:
                print("你> ", end="", file=session.out, flush=True)
            line = await lines.get()
            if line is None:
                break
            if not line.strip():
                continue
            if not await session.handle_line(line.strip()):
                break
        await asyncio.sleep(linger)
        await session.pull_messages()
    finally:
        poller.cancel()
        try:
            await poller
        except asyncio.CancelledError:
            pass


# --- where the bot is ----------------------------------------------------------------------------


def _split_url(url: str) -> tuple[str, str]:
    """(origin, webhook URL) for ``--url``, which may be the bot's root or its webhook."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SystemExit(f"chat: --url must look like http://127.0.0.1:8080, got {url!r}")
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    base = path[: -len(WEBHOOK_PATH)] if path.endswith(WEBHOOK_PATH) else path
    return origin + base, origin + base + WEBHOOK_PATH


@asynccontextmanager
async def local_bot(config: Config, sock: socket.socket) -> AsyncIterator[str]:
    """Run the whole app on an already-bound loopback socket; yield its base URL."""
    from aiohttp import web

    from bot.app import build_app

    runner = web.AppRunner(build_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


def local_config(config: Config, port: int) -> Config:
    """The configured (sandbox) app on a loopback port, with the mock WeChat API mounted inside it.

    The API base is cleared on purpose: whatever the file says, a terminal chat never reaches the
    real WeChat API.
    """
    from bot.sandbox.launcher import sandbox_config

    forced = replace(config, sandbox={"enabled": "true"}, server={"host": "127.0.0.1", "port": port, "workers": 1},
                     wechat={"api_base_url": ""})
    return sandbox_config(forced)


async def _run(config: Config, base_url: str, webhook_url: str, args: argparse.Namespace,
               stdin: TextIO, out: TextIO) -> None:
    root = mock_root(config.wechat.api_base_url) if config.wechat.api_base_url else base_url + MOCK_PREFIX
    timeout = aiohttp.ClientTimeout(total=config.wechat.reply_deadline + 10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        session = ChatSession(emulator=emulator_for(config.wechat, webhook_url, http), config=config,
                              inbox=MockInbox(root, http), openid=resolve_openid(args.openid), out=out,
                              interactive=stdin.isatty())
        print(f"resident-bot chat → {webhook_url}（{config.wechat.mode} 模式），居民 {session.openid}。"
              "输入 /help 查看命令，/quit 退出。", file=sys.stderr, flush=True)
        await converse(session, stdin, poll=args.poll, linger=args.linger)


async def _run_local(config: Config, sock: socket.socket, args: argparse.Namespace) -> None:
    async with local_bot(config, sock) as base:
        await _run(config, base, base + WEBHOOK_PATH, args, sys.stdin, sys.stdout)


def _quiet_logging(config: Config) -> None:
    """Only warnings, as text on stderr: stdout is the conversation."""
    from bot.logs import setup_logging

    setup_logging("WARNING", "text", config.secrets())


def _cmd(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    _quiet_logging(config)
    if args.url:
        base, webhook = _split_url(args.url)
        asyncio.run(_run(config, base, webhook, args, sys.stdin, sys.stdout))
        return 0
    if not config.sandbox_mode:
        # The in-process app runs an outbox sender pointed at the mock: on a production database it
        # would "deliver" residents' real pending messages to the mock. Talk to the real server instead.
        print("chat: 当前配置不是沙箱，不能在本进程启动机器人（会占用正式库的待发消息）。"
              "请用 --url 连接正在运行的服务，或用沙箱配置。", file=sys.stderr)
        return 2
    from bot.storage.migrate import upgrade

    upgrade(config.database.url)
    _quiet_logging(config)  # Alembic's env may have reconfigured logging
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    asyncio.run(_run_local(local_config(config, sock.getsockname()[1]), sock, args))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("chat", help="终端聊天模拟器 (talk to the bot like a resident)")
    p.add_argument("--url", help="a running bot, e.g. http://127.0.0.1:8080 (default: start one in-process)")
    p.add_argument("--openid", default=SAMPLE_RESIDENTS[0]["openid"],
                   help="who is talking: an openid, 张大爷/李阿姨/王师傅, or new (default: 张大爷)")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between customer-service message checks")
    p.add_argument("--linger", type=float, default=1.0,
                   help="seconds to wait for late customer-service messages before exiting")
    p.set_defaults(func=_cmd)

