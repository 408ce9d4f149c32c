"""``resident-bot menu push``: the repository's menu.toml reaches menu/create; a broken file never does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.commands.menu import KNOWN_KEYS, MenuError, load_menu
from bot.sandbox.mock_wechat import MockWeChat
from bot.storage.db import create_engine
from bot.storage.models import OutboxAttempt, OutboxMessage
from tests.conftest import ROOT, TEST_APPID
from tests.test_outbound_helpers import SECRET, mock  # noqa: F401 - fixture

MENU = ROOT / "menu.toml"


def write_config(tmp_path: Path, db_url: str, mock: MockWeChat) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[wechat]\napp_id = "{TEST_APPID}"\napp_secret = "{SECRET}"\napi_base_url = "{mock.base_url}"\n'
        f'api_timeout = 2.0\n\n[database]\nurl = "{db_url}"\n\n[sandbox]\nenabled = "false"\n',
        encoding="utf-8")
    return path


async def run_cli(*argv: str) -> int:
    """The CLI runs its own event loop; keep ours (and the mock server on it) free meanwhile."""
    return await asyncio.to_thread(main, list(argv))


def click_keys(menu: dict) -> list[str]:
    out = []
    for button in menu["button"]:
        for item in button.get("sub_button", [button]):
            out.append(item["key"])
    return out


def test_the_repository_menu_is_valid_and_has_every_feature() -> None:
    menu = load_menu(MENU)
    assert sorted(click_keys(menu)) == sorted(KNOWN_KEYS)
    names = {i["name"] for b in menu["button"] for i in b.get("sub_button", [b])}
    assert names == {"办事指南", "我要代办", "报事报修", "社区活动", "我的工单"}


async def test_menu_push_sends_the_file_and_records_it(tmp_path: Path, db_url: str, mock: MockWeChat,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, db_url, mock)
    assert await run_cli("--config", str(config), "menu", "push", "--file", str(MENU)) == 0
    assert "菜单已发布" in capsys.readouterr().out
    assert mock.count("menu/create") == 1
    assert mock.calls_to("menu/create")[0]["body"] == load_menu(MENU)
    assert mock.menu == load_menu(MENU)
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        row = (await conn.execute(select(OutboxMessage))).one()
        tries = (await conn.execute(select(OutboxAttempt))).all()
    await engine.dispose()
    assert (row.kind, row.status, row.source, row.errcode) == ("menu", "sent", "cli:menu", 0)
    assert len(tries) == 1


async def test_a_broken_menu_file_gives_a_clear_error_and_sends_nothing(
        tmp_path: Path, db_url: str, mock: MockWeChat, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "menu.toml"
    broken.write_text(
        '[[button]]\nname = "办事指南和政策解读"\ntype = "click"\nkey = "GUIDE"\n\n'
        '[[button]]\nname = "报修"\ntype = "click"\nkey = "REPAIR"\n\n'
        '[[button]]\nname = "官网"\ntype = "view"\n',
        encoding="utf-8")
    config = write_config(tmp_path, db_url, mock)
    assert await run_cli("--config", str(config), "menu", "push", "--file", str(broken)) == 1
    err = capsys.readouterr().err
    assert "未发布" in err
    assert f"{broken}:2: [button[1].name] 一级菜单名称「办事指南和政策解读」太长" in err
    assert f"{broken}:9: [button[2].key] 未知的 key「REPAIR」" in err
    assert "view 类型的菜单「官网」必须填写 url" in err
    assert mock.count("menu/create") == 0 and mock.count("stable_token") == 0


def test_syntax_errors_and_structure_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "menu.toml"
    bad.write_text('[[button]\nname = "x"\n', encoding="utf-8")
    with pytest.raises(MenuError, match=r"menu.toml:1: TOML 语法错误"):
        load_menu(bad)
    bad.write_text("".join(f'[[button]]\nname = "b{i}"\ntype = "click"\nkey = "GUIDE"\n' for i in range(4)),
                   encoding="utf-8")
    with pytest.raises(MenuError) as err:
        load_menu(bad)
    text = str(err.value)
    assert "一级菜单最多 3 个，现在有 4 个" in text and "key「GUIDE」重复" in text


async def test_wechat_refusing_the_menu_is_reported(tmp_path: Path, db_url: str, mock: MockWeChat,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    mock.fail("menu/create", 40018)
    config = write_config(tmp_path, db_url, mock)
    assert await run_cli("--config", str(config), "menu", "push", "--file", str(MENU)) == 1
    assert "菜单发布失败（errcode=40018" in capsys.readouterr().err
    assert mock.count("menu/create") == 1
