"""Grids import (CSV and TOML, errors with row/column), grid membership, invites, and the admin CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.cli import main
from bot.services.grids import GridDirectory, GridsFileError, match_area, parse_csv, parse_grids_file, parse_toml, point_in_polygon
from bot.storage.db import create_engine
from tests.test_tickets_support import SAMPLE_GRIDS, ZHANG, Clock

ROOT = Path(__file__).resolve().parent.parent
HEADER = "网格编号,网格名称,小区楼栋,网格员,网格员电话,备岗,备岗电话,边界\n"


def test_sample_csv_and_toml_describe_the_same_grids() -> None:
    a = parse_grids_file(ROOT / "samples" / "grids.toml")
    b = parse_grids_file(ROOT / "samples" / "grids.csv")
    assert [(g.id, g.name, g.areas, g.worker_phone, g.backup_phone, g.polygon) for g in a.grids] == \
           [(g.id, g.name, g.areas, g.worker_phone, g.backup_phone, g.polygon) for g in b.grids]
    assert {p: (w.name, w.role) for p, w in a.workers.items()} == {p: (w.name, w.role) for p, w in b.workers.items()}


def test_csv_errors_name_row_and_column() -> None:
    text = HEADER + (
        "1,第一网格,阳光小区1栋,张三,13800000001,,,\n"
        "1,重复网格,阳光小区2栋,李四,13800000002,,,\n"
        "2,,阳光小区3栋,王五,1380,,,\n"
        "3,第三网格,,赵六,13800000006,钱七,,\n"
        "4,第四网格,河边,孙八,13800000008,,,\"32.1,106.2; 32.2\"\n"
        "5,第五网格,山上,李四改名,13800000002,,,\n"
    )
    with pytest.raises(GridsFileError) as err:
        parse_csv(text, "g.csv")
    problems = err.value.problems
    assert "g.csv 第3行 第1列（网格编号）: 网格编号“1”和第2行重复" in problems
    assert "g.csv 第4行 第2列（网格名称）: 不能为空" in problems
    assert "g.csv 第4行 第5列（网格员电话）: 电话号码格式不对：“1380”" in problems
    assert "g.csv 第5行 第3列（小区楼栋）: 至少写一个小区或楼栋" in problems
    assert "g.csv 第5行 第7列（备岗电话）: 写了备岗就要写备岗电话" in problems
    assert any(p.startswith("g.csv 第6行 第8列（边界）") for p in problems)
    assert any(p.startswith("g.csv 第7行 第5列（网格员电话）") and "李四" in p for p in problems)
    with pytest.raises(GridsFileError, match="第1行 第9列: 不认识的列名“备注”"):
        parse_csv(HEADER.strip() + ",备注\n", "g.csv")


def test_toml_errors_name_line_and_field() -> None:
    text = """[[workers]]
name = "张三"
phone = "13800000001"

[[workers]]
name = "李四"
phone = "12"
role = "boss"

[[grids]]
id = "1"
name = "第一网格"
areas = ["阳光小区"]
worker = "13800000009"
colour = "red"
"""
    with pytest.raises(GridsFileError) as err:
        parse_toml(text, "g.toml")
    problems = err.value.problems
    assert "g.toml 第7行 workers[2].phone: 电话号码格式不对：“12”" in problems
    assert any(p.startswith("g.toml 第8行 workers[2].role") for p in problems)
    assert "g.toml 第14行 grids[1].worker: [[workers]] 里没有电话为“13800000009”的人" in problems
    assert "g.toml 第15行 grids[1].colour: 不认识的字段" in problems


def test_point_in_polygon_and_area_names() -> None:
    square = [[32.23, 106.28], [32.23, 106.285], [32.235, 106.285], [32.235, 106.28]]
    assert point_in_polygon(32.232, 106.282, square)
    assert not point_in_polygon(32.240, 106.282, square)
    grids = [{"id": "1", "areas": ["阳光小区"]}, {"id": "2", "areas": ["阳光小区3栋"]}, {"id": "3", "areas": ["河边"]}]
    assert [g["id"] for g in match_area("我住阳光小区3号楼", grids)] == ["2"]
    assert [g["id"] for g in match_area("阳光小区1栋", grids)] == ["1"]
    assert match_area("不知道", grids) == []


async def test_import_is_an_upsert_that_keeps_bindings(db_url: str) -> None:
    engine = create_engine(db_url, 2)
    clock = Clock()
    grids = GridDirectory(engine, clock)
    try:
        assert await grids.import_file(parse_grids_file(SAMPLE_GRIDS)) == (3, 5)
        zhang = await grids.worker_by_phone(ZHANG)
        code = await grids.create_invite(zhang["id"], 1)
        assert await grids.bind(code, "oZhangWx") is not None
        assert await grids.bind(code, "oSomeoneElse") is None  # one-time
        expired = await grids.create_invite(zhang["id"], 1)
        clock.advance(hours=2)
        assert await grids.bind(expired, "oZhangWx2") is None
        await grids.import_file(parse_grids_file(ROOT / "samples" / "grids.csv"))
        again = await grids.worker_by_phone(ZHANG)
        assert again["id"] == zhang["id"] and again["openid"] == "oZhangWx"
        assert len(await grids.grids()) == 3
        grid = await grids.grid_at(32.2321, 106.2822)
        assert grid is not None and grid["id"] == "1"
        person, why = await grids.assignee("1")
        assert person["phone"] == ZHANG and why == "grid"
        await grids.set_leave(zhang["id"], True)
        person, why = await grids.assignee("1")
        assert person["name"] == "李建国" and why == "backup"
        person, why = await grids.assignee(None)
        assert person["role"] == "duty" and why == "duty"
    finally:
        await engine.dispose()


def test_cli_import_invite_and_report(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[wechat]\ntoken = "t"\n[sandbox]\nenabled = "true"\n'
                      f'[app]\nfaq_dir = "{ROOT / "faq"}"\n', encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "1,第一网格,阳光小区,张三,123,,,\n", encoding="utf-8")
    assert main(["-c", str(config), "grids", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "第2行 第5列（网格员电话）" in err and "数据库没有改动" in err
    assert main(["-c", str(config), "grids", "import", str(ROOT / "samples" / "grids.csv")]) == 0
    assert "已导入 3 个网格、5 位人员" in capsys.readouterr().out
    assert main(["-c", str(config), "workers", "invite", "--phone", ZHANG]) == 0
    out = capsys.readouterr().out
    code = re.search(r"绑定码：(\d{6})", out)
    assert code and "张秀英" in out
    assert main(["-c", str(config), "workers", "invite", "--phone", "13000000000"]) == 1
    assert main(["-c", str(config), "workers", "leave", "--phone", ZHANG, "on"]) == 0
    assert main(["-c", str(config), "report", "--month", "2025-06"]) == 0
    assert "本月没有工单" in capsys.readouterr().out
