"""Notice and announcement files: validation names file, line and field; ``notices add`` stores them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.services.announcements import AnnouncementFileError, load_announcement_file
from bot.services.notices import NoticeFileError, NoticeSettings, load_notice_file, parse_repeat
from tests.conftest import ROOT
from tests.test_notices_helpers import EVENT, local, notice_config, write_notice


@pytest.fixture
def settings(tmp_path: Path) -> NoticeSettings:
    return NoticeSettings.from_config(notice_config(f"sqlite+aiosqlite:///{tmp_path}/x.db"))


def problems_of(path: Path, settings: NoticeSettings) -> list[str]:
    with pytest.raises(NoticeFileError) as err:
        load_notice_file(path, settings)
    return [str(p) for p in err.value.problems]


def test_sample_notice_files_are_valid(settings: NoticeSettings) -> None:
    files = sorted((ROOT / "notices").glob("*.toml"))
    assert files
    for path in files:
        notice = load_notice_file(path, settings)
        assert notice.title and notice.category in settings.categories


def test_valid_file_becomes_definition_in_utc(tmp_path: Path, settings: NoticeSettings) -> None:
    notice = load_notice_file(write_notice(tmp_path, "yz-1", EVENT), settings)
    assert notice.id == "yz-1"
    assert notice.starts_at == local(2030, 6, 15, 9, 0)
    assert notice.push == ("publish", "evening_before", "hour_before")
    assert notice.audience == {"all": True} and notice.capacity == 3 and not notice.urgent


def test_errors_name_file_line_and_field(tmp_path: Path, settings: NoticeSettings) -> None:
    path = write_notice(tmp_path, "bad", """
        title = "义诊"
        category = "义珍"
        starts_at = "下周六"
        text = "x"
        capacity = 0
        colour = "red"

        [audience]
        grids = ["3"]
        tags = [1.5]

        [push]
        at = ["发布时", "明天早上"]
        repeat = "0 8 * * 6"
    """)
    found = problems_of(path, settings)
    text = "\n".join(found)
    assert f"{path}:2: [category] 未知的类别「义珍」" in text
    assert f"{path}:3: [starts_at]" in text
    assert f"{path}:5: [capacity]" in text
    assert f"{path}:6: [colour] 未知的字段" in text
    assert f"{path}:10: [audience.tags]" in text
    assert f"{path}:13: [push.at] 未知的推送时机「明天早上」" in text
    assert f"{path}:14: [push.repeat]" in text and "英文缩写" in text


def test_missing_required_fields_and_reminder_without_start(tmp_path: Path, settings: NoticeSettings) -> None:
    path = write_notice(tmp_path, "bad2", """
        category = "义诊"
        text = "x"
        [push]
        at = ["提前一小时"]
    """)
    text = "\n".join(problems_of(path, settings))
    assert "缺少必填字段「title」" in text
    assert f"{path}:4: [push.at] 「提前一小时」需要活动开始时间" in text


def test_syntax_error_has_a_line(tmp_path: Path, settings: NoticeSettings) -> None:
    path = write_notice(tmp_path, "broken", 'title = "a"\ncategory = \n')
    assert problems_of(path, settings)[0].startswith(f"{path}:2:")


@pytest.mark.parametrize("rule, cron", [
    ("每周六上午", "0 8 * * sat"),
    ("每周六 09:30", "30 9 * * sat"),
    ("每天 19:00", "0 19 * * *"),
    ("每周一、四下午3点", "0 15 * * mon,thu"),
    ("0 8 * * sat,sun", "0 8 * * sat,sun"),
])
def test_repeat_rules(rule: str, cron: str) -> None:
    assert parse_repeat(rule) == cron


@pytest.mark.parametrize("rule", ["每月", "0 8 * * 6", "61 8 * * *", "随便"])
def test_bad_repeat_rules(rule: str) -> None:
    with pytest.raises(ValueError):
        parse_repeat(rule)


def test_announcement_files(tmp_path: Path) -> None:
    for path in sorted((ROOT / "announcements").glob("*.toml")):
        assert load_announcement_file(path).kind
    bad = tmp_path / "a.toml"
    bad.write_text('kind = "开支"\ntitle = "x"\ndate = "昨天"\n', encoding="utf-8")
    with pytest.raises(AnnouncementFileError) as err:
        load_announcement_file(bad)
    text = "\n".join(str(p) for p in err.value.problems)
    assert f"{bad}:1: [kind]" in text and f"{bad}:3: [date]" in text


def test_cli_add_list_check(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESIDENT_BOT_DATABASE_URL", db_url)
    monkeypatch.setenv("RESIDENT_BOT_SANDBOX_ENABLED", "true")
    good = write_notice(tmp_path, "yz-2", EVENT)
    bad = write_notice(tmp_path, "bad", 'title = "x"\ncategory = "义诊"\n')
    assert main(["notices", "add", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}" in err and "text" in err and "没有保存" in err
    assert main(["notices", "list"]) == 0
    assert "yz-2" not in capsys.readouterr().out  # nothing stored when any file is bad
    assert main(["notices", "add", str(good)]) == 0
    out = capsys.readouterr().out
    assert "已保存 yz-2" in out and "evening_before" in out and "2030-06-14 19:00" in out
    assert "hour_before" in out and "2030-06-15 08:00" in out
    assert main(["notices", "list"]) == 0
    assert "yz-2" in capsys.readouterr().out
    assert main(["notices", "signups", "yz-2"]) == 0
    assert "名额 3" in capsys.readouterr().out
    assert main(["notices", "report", "nope"]) == 1
    ann = ROOT / "announcements" / "2025-05-kaizhi.toml"
    assert main(["announcements", "add", str(ann)]) == 0
    assert main(["announcements", "list"]) == 0
    assert "2025年5月社区公共开支公示" in capsys.readouterr().out
