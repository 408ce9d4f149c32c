"""The evaluation interface, through a real process: ``match --jsonl`` and ``eval``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.test_understanding_helpers import PYTHON, ROOT, write_tree


def run(args: list[str], stdin: str = "", cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PYTHON), "-m", "bot", *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_match_jsonl_on_the_real_data() -> None:
    questions = ["低保要带啥子材料", "明天天气咋样", "社保卡", "", "請問失業金怎麼申請"]
    result = run(["match", "--jsonl"], "\n".join(questions) + "\n")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["question"] for line in lines] == [q for q in questions if q]
    for line in lines:
        assert set(line) == {"question", "action", "item", "candidates", "score"}
        assert line["action"] in ("answer", "clarify", "fallback")
        assert isinstance(line["score"], (int, float)) and len(line["candidates"]) <= 5
        if line["action"] == "answer":
            assert line["item"] and line["candidates"] == [line["item"]]
        else:
            assert line["item"] is None
    dibao, weather, card, benefit = lines
    assert (dibao["action"], dibao["item"]) == ("answer", "civil.dibao")
    assert (weather["action"], weather["candidates"]) == ("fallback", [])
    assert card["action"] == "clarify"
    assert {"hrss.social-security-card", "hrss.social-security-card-replace"} <= set(card["candidates"])
    assert benefit["item"] == "hrss.unemployment-benefit"


def test_match_jsonl_with_explicit_dirs_and_no_catalogue(tmp_path: Path) -> None:
    faq, intents, _ = write_tree(tmp_path, catalog=None)
    result = run(["match", "--jsonl", "--faq-dir", str(faq), "--intents-dir", str(intents),
                  "--catalog", str(tmp_path / "missing.tsv")], "老年证咋个办\n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: catalogue not found" in result.stderr
    assert json.loads(result.stdout)["item"] == "civil.senior-card"


def test_match_uses_the_current_directory_by_default(tmp_path: Path) -> None:
    write_tree(tmp_path)
    result = run(["match", "低保"], cwd=tmp_path)
    assert json.loads(result.stdout)["item"] == "civil.dibao"


def test_eval_prints_figures_and_misses(tmp_path: Path) -> None:
    faq, intents, catalog = write_tree(tmp_path)
    cases = tmp_path / "cases.tsv"
    cases.write_text("question\texpected\n低保\tcivil.dibao\n天气\tnone\n低保\tpolice.id-card\n", encoding="utf-8")
    result = run(["eval", str(cases), "--faq-dir", str(faq), "--intents-dir", str(intents), "--catalog", str(catalog)],
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "accuracy             66.7%" in result.stdout
    assert "fallback precision  100.0%" in result.stdout and "fallback recall     100.0%" in result.stdout
    assert "line 4: '低保' expected police.id-card; got answer civil.dibao" in result.stdout
    assert "wrong item answered                    1" in result.stdout


def test_miss_kinds_tell_the_fixes_apart() -> None:
    """Each kind of miss needs a different fix, so the counts per kind must not blur them."""
    from bot.understanding.evaluate import MISS_KINDS, miss_kind
    from bot.understanding.model import MatchResult

    fell = MatchResult("fallback", None, (), 10.0)
    assert miss_kind(("a",), fell) == MISS_KINDS[0]
    assert miss_kind((), MatchResult("answer", "a", ("a",), 80.0)) == MISS_KINDS[1]
    assert miss_kind(("a",), MatchResult("answer", "b", ("b",), 80.0)) == MISS_KINDS[2]
    assert miss_kind(("a",), MatchResult("clarify", None, ("b", "a"), 60.0)) == MISS_KINDS[3]
    assert miss_kind(("a",), MatchResult("clarify", None, ("b", "c"), 60.0)) == MISS_KINDS[4]
    assert miss_kind(("a", "b"), MatchResult("answer", "b", ("b",), 80.0)) == MISS_KINDS[5]
    assert miss_kind(("a", "b"), MatchResult("answer", "c", ("c",), 80.0)) == MISS_KINDS[2]
    assert miss_kind(("a", "b"), MatchResult("clarify", None, ("a", "c"), 60.0)) == MISS_KINDS[6]


def test_output_piped_into_a_reader_that_stops_early_is_not_an_error() -> None:
    """`resident-bot match --jsonl … | head -1`: the closed pipe must not print a traceback (the
    output is far larger than a pipe buffer, so the writer does meet the closed pipe)."""
    result = subprocess.run(f"yes 低保咋个办 | head -20000 | '{PYTHON}' -m bot match --jsonl | head -1", shell=True,
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert json.loads(result.stdout)["item"] == "civil.dibao", result.stdout
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr
