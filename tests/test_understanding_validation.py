"""Every validation error names file, line and field; ``faq check`` lists them all and exits non-zero."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.understanding.loader import check_directories
from bot.understanding.model import Problem
from tests.test_understanding_helpers import ITEMS, PYTHON, ROOT, line_of, write_tree

DIBAO = ITEMS["civil.dibao"]


def problems_for(tmp_path: Path, text: str | bytes, ident: str = "civil.dibao",
                 intents: str | None = None) -> list[Problem]:
    faq, intents_dir, catalog = write_tree(tmp_path)
    target = faq / f"{ident}.toml"
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text, encoding="utf-8")
    if intents is not None:
        (intents_dir / "base.toml").write_text(intents, encoding="utf-8")
    problems, _, _ = check_directories(faq, intents_dir, catalog)
    return problems


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def test_the_valid_tree_has_no_problems(tmp_path: Path) -> None:
    faq, intents_dir, catalog = write_tree(tmp_path)
    problems, warnings, count = check_directories(faq, intents_dir, catalog)
    assert (problems, warnings, count) == ([], [], 4)


def test_unknown_field_is_located(tmp_path: Path) -> None:
    text = DIBAO.replace('fee = "免费"', 'fee = "免费"\nmaterial = "身份证"')
    problem = only(problems_for(tmp_path, text))
    assert problem.file.endswith("civil.dibao.toml")
    assert (problem.line, problem.field) == (line_of(text, "material ="), "material")
    assert "未知字段" in problem.message


def test_unknown_field_inside_a_material_table(tmp_path: Path) -> None:
    text = DIBAO.replace('form = "原件及复印件"', 'form = "原件及复印件"\ncopies = 2')
    problem = only(problems_for(tmp_path, text))
    assert (problem.line, problem.field) == (line_of(text, "copies"), "materials[2].copies")


def test_missing_checklist_is_reported(tmp_path: Path) -> None:
    text = DIBAO[: DIBAO.index("[[materials]]")]
    problem = only(problems_for(tmp_path, text))
    assert problem.field == "materials" and "缺少必填字段" in problem.message
    assert problem.line == line_of(text, "[where]")  # where it belongs: after the field before it


def test_missing_key_in_where_points_at_the_table(tmp_path: Path) -> None:
    text = DIBAO.replace('hours = "工作日 9:00-17:30"\n', "")
    problem = only(problems_for(tmp_path, text))
    assert (problem.line, problem.field) == (line_of(text, "[where]"), "where.hours")


def test_wrong_type_is_located(tmp_path: Path) -> None:
    text = DIBAO.replace("proxy = true", 'proxy = "可以"')
    problem = only(problems_for(tmp_path, text))
    assert (problem.line, problem.field) == (line_of(text, "proxy ="), "proxy")
    assert "类型错误" in problem.message


def test_bad_material_form_in_second_table(tmp_path: Path) -> None:
    text = DIBAO.replace('form = "原件及复印件"', 'form = "影印件"')
    problem = only(problems_for(tmp_path, text))
    assert (problem.line, problem.field) == (line_of(text, "影印件"), "materials[2].form")


def test_count_must_be_positive_integer(tmp_path: Path) -> None:
    text = DIBAO.replace("count = 1", "count = 0")
    problem = only(problems_for(tmp_path, text))
    assert (problem.line, problem.field) == (line_of(text, "count = 0"), "materials[1].count")


def test_toml_syntax_error_has_its_line(tmp_path: Path) -> None:
    text = DIBAO.replace('fee = "免费"', 'fee = "免费')
    problem = only(problems_for(tmp_path, text))
    assert problem.line == line_of(text, 'fee = "免费')
    assert "语法错误" in problem.message


def test_an_intents_section_declared_twice_names_both_lines(tmp_path: Path) -> None:
    """Appending a second [dialect] under the first refuses the file: say which section, where."""
    from tests.test_understanding_helpers import INTENTS
    intents = INTENTS + '\n[dialect]\n"整起" = "办"\n'
    problem = only(problems_for(tmp_path, DIBAO, intents=intents))
    assert problem.file.endswith("base.toml") and problem.field == "dialect"
    assert problem.line == len(intents.splitlines()) - 1  # the second [dialect], not the first
    first = line_of(intents, "[dialect]")
    assert first < problem.line
    assert f"[dialect] 写了两次：第 {first} 行已经有 [dialect]" in problem.message
    assert "Cannot declare" not in problem.message  # the parser's words, not the admin's


def test_a_faq_section_declared_twice_is_reported_the_same_way(tmp_path: Path) -> None:
    text = DIBAO + '\n[where]\nplace = "社区办公室"\nhours = "全天"\n'
    problem = only(problems_for(tmp_path, text))
    assert problem.file.endswith("civil.dibao.toml") and problem.field == "where"
    assert problem.line == len(text.splitlines()) - 2
    assert f"第 {line_of(DIBAO, '[where]')} 行已经有 [where]" in problem.message


def test_a_key_written_twice_in_one_section_names_both_lines(tmp_path: Path) -> None:
    from tests.test_understanding_helpers import INTENTS
    intents = INTENTS.replace('"好久" = "多久"', '"好久" = "多久"\n"屋头" = "家"')
    problem = only(problems_for(tmp_path, DIBAO, intents=intents))
    assert (problem.line, problem.field) == (line_of(intents, '"屋头" = "家"'), "dialect.屋头")
    assert f"第 {line_of(intents, '屋头')} 行已经有" in problem.message


def test_bad_encoding_is_reported_with_line(tmp_path: Path) -> None:
    problem = only(problems_for(tmp_path, DIBAO.encode("gbk")))
    assert "UTF-8" in problem.message and problem.line == line_of(DIBAO, "# 最低生活保障申请")


def test_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    assert problems_for(tmp_path, b"\xef\xbb\xbf" + DIBAO.encode("utf-8")) == []


def test_id_must_match_the_file_name(tmp_path: Path) -> None:
    text = DIBAO.replace('id = "civil.dibao"', 'id = "civil.di-bao"')
    problem = only(problems_for(tmp_path, text))
    assert (problem.line, problem.field) == (line_of(text, "id ="), "id")


def test_id_not_in_catalogue(tmp_path: Path) -> None:
    text = DIBAO.replace("civil.dibao", "civil.unknown")
    faq, intents_dir, catalog = write_tree(tmp_path)
    (faq / "civil.dibao.toml").rename(faq / "civil.unknown.toml")
    (faq / "civil.unknown.toml").write_text(text, encoding="utf-8")
    problem = only(check_directories(faq, intents_dir, catalog)[0])
    assert problem.file.endswith("civil.unknown.toml") and problem.field == "id"
    assert "目录" in problem.message and problem.line == line_of(text, "id =")


def test_missing_catalogue_only_warns(tmp_path: Path) -> None:
    faq, intents_dir, _ = write_tree(tmp_path, catalog=None)
    problems, warnings, _ = check_directories(faq, intents_dir, tmp_path / "nowhere.tsv")
    assert problems == [] and warnings and "not found" in warnings[0]


def test_duplicate_alias_across_items_names_both_files(tmp_path: Path) -> None:
    text = ITEMS["police.id-card"].replace('"补办身份证"', '"补办身份证", "低保"')
    problem = only(problems_for(tmp_path, text, ident="police.id-card"))
    assert problem.file.endswith("police.id-card.toml") and problem.field == "aliases"
    assert problem.line == line_of(text, '"低保"')
    assert "civil.dibao.toml:" + str(line_of(DIBAO, '"低保"')) in problem.message


def test_duplicate_alias_ignores_width_and_punctuation(tmp_path: Path) -> None:
    text = ITEMS["police.id-card"].replace('"补办身份证"', '"补办身份证", "吃 低保！"')
    assert only(problems_for(tmp_path, text, ident="police.id-card")).field == "aliases"


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    text = DIBAO.replace("proxy = true", "proxy = 1").replace('fee = "免费"', 'fee = ""\nextra = 1')
    fields = {p.field for p in problems_for(tmp_path, text)}
    assert fields == {"proxy", "fee", "extra"}


def test_intents_unknown_section_and_aspect_are_located(tmp_path: Path) -> None:
    intents = '[fillers]\nphrases = ["你好"]\n\n[aspcet.time]\nphrases = ["多久"]\n\n[aspect.price]\nphrases = ["钱"]\n'
    problems = problems_for(tmp_path, DIBAO, intents=intents)
    assert [(p.line, p.field) for p in problems] == [(4, "aspcet")]
    intents = '[aspect.price]\nphrases = ["钱"]\n'
    problem = only(problems_for(tmp_path, DIBAO, intents=intents))
    assert (problem.line, problem.field) == (1, "aspect.price")


def test_intents_rewrite_must_be_a_string(tmp_path: Path) -> None:
    intents = '[dialect]\n"咋个" = "怎么"\n"啥子" = 1\n'
    problem = only(problems_for(tmp_path, DIBAO, intents=intents))
    assert (problem.line, problem.field) == (3, "dialect.啥子")


def test_problem_text_has_file_line_and_field(tmp_path: Path) -> None:
    problem = Problem("faq/a.toml", 7, "materials[1].form", "bad")
    assert str(problem) == "faq/a.toml:7: [materials[1].form] bad"


@pytest.mark.parametrize("broken", [False, True])
def test_faq_check_command(tmp_path: Path, broken: bool) -> None:
    faq, intents_dir, catalog = write_tree(tmp_path)
    if broken:
        (faq / "civil.dibao.toml").write_text(DIBAO.replace("proxy = true", 'proxy = "yes"'), encoding="utf-8")
    result = subprocess.run(
        [str(PYTHON), "-m", "bot", "faq", "check", "--faq-dir", str(faq), "--intents-dir", str(intents_dir),
         "--catalog", str(catalog)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    if broken:
        assert result.returncode == 1
        assert f"civil.dibao.toml:{line_of(DIBAO, 'proxy')}: [proxy]" in result.stdout
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "4 faq file(s) valid" in result.stdout


def test_the_real_data_is_valid() -> None:
    """The shipped knowledge is what admins copy from: no problems and no warnings either (a warned
    cue, e.g. one character or a word shared by many items, is a word that does nothing)."""
    problems, warnings, count = check_directories(ROOT / "faq", ROOT / "intents", None)
    assert count >= 1 and problems == [], "\n".join(map(str, problems))
    assert warnings == [], "\n".join(map(str, warnings))


def test_ambiguous_ids_must_exist(tmp_path: Path) -> None:
    from tests.test_understanding_helpers import INTENTS
    intents = INTENTS + '\n[ambiguous]\n"证" = ["civil.senior-card", "civil.nothing"]\n'
    problem = only(problems_for(tmp_path, DIBAO, intents=intents))
    assert problem.field == "ambiguous.证" and "civil.nothing" in problem.message
    assert problem.line == len(intents.rstrip("\n").splitlines())


def test_a_rewrite_defined_differently_in_two_files(tmp_path: Path) -> None:
    faq, intents_dir, catalog = write_tree(tmp_path)
    (intents_dir / "zz-local.toml").write_text('# 本地\n[dialect]\n"咋个" = "如何"\n', encoding="utf-8")
    problem = only(check_directories(faq, intents_dir, catalog)[0])
    assert problem.file.endswith("zz-local.toml") and (problem.line, problem.field) == (3, "dialect.咋个")
    assert "base.toml:" in problem.message
