"""``resident-bot menu check|push``: the official account's custom menu, from ``menu.toml``.

Why a file and a command: the menu is part of the bot's behaviour (each click key is handled by a
feature), so it lives in the repository next to the handlers and is validated before WeChat sees it —
WeChat's own answer to a bad menu is a bare errcode. ``push`` goes through the outbox like every other
outbound call, so it is recorded; it is then sent at once and the result printed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from bot.understanding.model import Problem
from bot.understanding.tomlfile import Path_, TomlDocument, read_toml

# Click keys the bot answers (bot/handlers); a key outside this list is almost surely a typo.
KNOWN_KEYS = ("GUIDE", "PROXY", "REPORT", "ACTIVITIES", "MY_TICKETS")

# WeChat's limits (自定义菜单创建接口).
MAX_BUTTONS, MAX_SUB_BUTTONS = 3, 5
MAX_NAME_BYTES, MAX_SUB_NAME_BYTES = 16, 60
MAX_KEY_BYTES, MAX_URL_BYTES = 128, 1024

# type -> fields it needs besides name and type.
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "click": ("key",),
    "view": ("url",),
    "miniprogram": ("url", "appid", "pagepath"),
    "scancode_push": ("key",),
    "scancode_waitmsg": ("key",),
    "pic_sysphoto": ("key",),
    "pic_photo_or_album": ("key",),
    "pic_weixin": ("key",),
    "location_select": ("key",),
    "media_id": ("media_id",),
    "article_id": ("article_id",),
    "article_view_limited": ("article_id",),
}
ALLOWED_FIELDS = {"name", "type", "key", "url", "appid", "pagepath", "media_id", "article_id", "sub_button"}


class MenuError(Exception):
    """The menu file is not a valid menu; ``problems`` say where and why (in Chinese, for admins)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_menu(path: str | Path) -> dict[str, Any]:
    """Read and validate a menu file; the body of ``menu/create``, or :class:`MenuError`."""
    doc = read_toml(Path(path), str(path))
    if isinstance(doc, Problem):
        raise MenuError([doc])
    problems = validate_menu(doc)
    if problems:
        raise MenuError(problems)
    return to_wechat(doc.data)


def validate_menu(doc: TomlDocument) -> list[Problem]:
    """Every problem in the file, each located at its line."""
    problems: list[Problem] = []
    for key in doc.data:
        if key != "button":
            problems.append(doc.problem((key,), f"未知的字段「{key}」；菜单文件只包含 [[button]]"))
    buttons = doc.data.get("button")
    if not isinstance(buttons, list) or not buttons:
        return problems + [doc.problem(("button",), "至少需要一个 [[button]] 菜单")]
    if len(buttons) > MAX_BUTTONS:
        problems.append(doc.problem(("button",), f"一级菜单最多 {MAX_BUTTONS} 个，现在有 {len(buttons)} 个"))
    keys: dict[str, str] = {}
    for i, button in enumerate(buttons):
        problems += _check_button(doc, ("button", i), button, top=True, keys=keys)
    return problems


def _check_button(doc: TomlDocument, path: Path_, button: Any, top: bool, keys: dict[str, str]) -> list[Problem]:
    if not isinstance(button, dict):
        return [doc.problem(path, "菜单项必须是一个表（[[button]]）")]
    problems = [doc.problem(path + (k,), f"未知的字段「{k}」") for k in button if k not in ALLOWED_FIELDS]
    problems += _check_name(doc, path, button.get("name"), MAX_NAME_BYTES if top else MAX_SUB_NAME_BYTES, top)
    if "sub_button" in button:
        if not top:
            return problems + [doc.problem(path + ("sub_button",), "二级菜单不能再有子菜单")]
        return problems + _check_parent(doc, path, button, keys)
    return problems + _check_action(doc, path, button, keys)


def _check_name(doc: TomlDocument, path: Path_, name: Any, limit: int, top: bool) -> list[Problem]:
    if not isinstance(name, str) or not name.strip():
        return [doc.problem(path + ("name",), "缺少菜单名称 name")]
    size = len(name.encode("utf-8"))
    if size > limit:
        level = "一级菜单" if top else "二级菜单"
        return [doc.problem(path + ("name",), f"{level}名称「{name}」太长：{size} 字节，最多 {limit} 字节"
                                             f"（约 {limit // 4 if top else 8} 个汉字）")]
    return []


def _check_parent(doc: TomlDocument, path: Path_, button: dict[str, Any], keys: dict[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    extra = [k for k in button if k not in ("name", "sub_button")]
    if extra:
        problems.append(doc.problem(path + (extra[0],), f"有子菜单的一级菜单只需要 name，不能有「{extra[0]}」"))
    subs = button["sub_button"]
    if not isinstance(subs, list) or not subs:
        return problems + [doc.problem(path + ("sub_button",), "sub_button 至少需要一个子菜单")]
    if len(subs) > MAX_SUB_BUTTONS:
        problems.append(doc.problem(path + ("sub_button",), f"子菜单最多 {MAX_SUB_BUTTONS} 个，现在有 {len(subs)} 个"))
    for j, sub in enumerate(subs):
        problems += _check_button(doc, path + ("sub_button", j), sub, top=False, keys=keys)
    return problems


def _check_action(doc: TomlDocument, path: Path_, button: dict[str, Any], keys: dict[str, str]) -> list[Problem]:
    kind = button.get("type")
    label = button.get("name", "")
    if kind not in TYPE_FIELDS:
        choices = "、".join(TYPE_FIELDS)
        return [doc.problem(path + ("type",), f"菜单「{label}」的 type 无效（{kind!r}）；可选：{choices}")]
    problems: list[Problem] = []
    for field in TYPE_FIELDS[kind]:
        value = button.get(field)
        if not isinstance(value, str) or not value.strip():
            problems.append(doc.problem(path + (field,), f"{kind} 类型的菜单「{label}」必须填写 {field}"))
    problems += [doc.problem(path + (f,), f"{kind} 类型的菜单「{label}」不需要「{f}」")
                 for f in button if f not in ("name", "type", *TYPE_FIELDS[kind])]
    key, url = button.get("key"), button.get("url")
    if isinstance(key, str) and key:
        problems += _check_key(doc, path, kind, key, str(label), keys)
    if isinstance(url, str) and url:
        if not url.startswith(("http://", "https://")):
            problems.append(doc.problem(path + ("url",), f"菜单「{label}」的 url 必须以 http:// 或 https:// 开头"))
        elif len(url.encode("utf-8")) > MAX_URL_BYTES:
            problems.append(doc.problem(path + ("url",), f"菜单「{label}」的 url 超过 {MAX_URL_BYTES} 字节"))
    return problems


def _check_key(doc: TomlDocument, path: Path_, kind: str, key: str, label: str, keys: dict[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        problems.append(doc.problem(path + ("key",), f"菜单「{label}」的 key 超过 {MAX_KEY_BYTES} 字节"))
    if key in keys:
        problems.append(doc.problem(path + ("key",), f"key「{key}」重复：菜单「{keys[key]}」已经在用"))
    keys.setdefault(key, label)
    if kind == "click" and key not in KNOWN_KEYS:
        problems.append(doc.problem(path + ("key",),
                                    f"未知的 key「{key}」；机器人只处理：{', '.join(KNOWN_KEYS)}"))
    return problems


def to_wechat(data: dict[str, Any]) -> dict[str, Any]:
    """The validated file as WeChat's ``menu/create`` body (fields in WeChat's order)."""
    def item(b: dict[str, Any]) -> dict[str, Any]:
        if "sub_button" in b:
            return {"name": b["name"], "sub_button": [item(s) for s in b["sub_button"]]}
        return {"type": b["type"], "name": b["name"], **{k: b[k] for k in TYPE_FIELDS[b["type"]]}}

    return {"button": [item(b) for b in data["button"]]}


def menu_key(menu: dict[str, Any]) -> str:
    """Outbox idempotency key: the menu's hash plus the time (pushing the same menu again is allowed)."""
    digest = hashlib.sha256(json.dumps(menu, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
    return f"menu:{digest}:{time.time_ns()}"


async def push_menu(config: Any, menu: dict[str, Any]) -> dict[str, Any]:
    """Queue ``menu/create`` in the outbox, send it now, return the outbox row (status, errcode, error)."""
    from bot.services.outbox import Outbox
    from bot.services.sender import OutboxSender
    from bot.storage import outbox as queries
    from bot.storage.db import create_engine
    from bot.wechat.api import build_wechat_api

    engine = create_engine(config.database.url, 2)
    api = build_wechat_api(config, engine)
    try:
        key = menu_key(menu)
        await Outbox(engine).enqueue(key, "menu", menu, source="cli:menu")
        async with engine.connect() as conn:
            row_id = await queries.id_by_key(conn, key)
        await OutboxSender(engine, api, config.outbox, rate_per_second=0).run_once(ids=[row_id])
        async with engine.connect() as conn:
            row = await queries.get(conn, row_id)
        assert row is not None
        return row
    finally:
        await api.close()
        await engine.dispose()


def _menu_path(args: argparse.Namespace) -> str:
    if args.file:
        return str(args.file)
    from bot.cli import config_from_args

    return config_from_args(args).wechat.menu_file


def _check(args: argparse.Namespace) -> int:
    try:
        menu = load_menu(_menu_path(args))
    except MenuError as exc:
        print(f"菜单文件有误：\n{exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(menu, ensure_ascii=False, indent=2))
    else:
        print(f"菜单文件正确：{len(menu['button'])} 个一级菜单")
    return 0


def _push(args: argparse.Namespace) -> int:
    from bot.cli import config_from_args
    from bot.sandbox.launcher import sandbox_config
    from bot.storage.migrate import upgrade

    config = sandbox_config(config_from_args(args))
    path = args.file or config.wechat.menu_file
    try:
        menu = load_menu(path)
    except MenuError as exc:
        print(f"菜单文件有误，未发布：\n{exc}", file=sys.stderr)
        return 1
    upgrade(config.database.url)
    row = asyncio.run(push_menu(config, menu))
    if row["status"] == "sent":
        print(f"菜单已发布（{len(menu['button'])} 个一级菜单）")
        return 0
    detail = f"errcode={row['errcode']} {row['error'] or ''}".strip()
    if row["status"] == "pending":
        print(f"微信接口暂时失败（{detail}），已留在发送队列，服务运行时会自动重试", file=sys.stderr)
    else:
        print(f"菜单发布失败（{detail}）", file=sys.stderr)
    return 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    menu = sub.add_parser("menu", help="自定义菜单 (custom menu from menu.toml)")
    actions = menu.add_subparsers(dest="menu_command", required=True)
    check = actions.add_parser("check", help="validate the menu file")
    check.add_argument("--file", "-f", help="menu file (default: wechat.menu_file)")
    check.add_argument("--json", action="store_true", help="print the body sent to WeChat")
    check.set_defaults(func=_check)
    push = actions.add_parser("push", help="validate and publish the menu to WeChat (menu/create)")
    push.add_argument("--file", "-f", help="menu file (default: wechat.menu_file)")
    push.set_defaults(func=_push)
