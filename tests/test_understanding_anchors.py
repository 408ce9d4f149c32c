"""The anchor rule: answer only when the question holds a name, alias or ``[cues]`` word of the item.

Why: an out-of-scope question ("想找个保姆") always shares a word or two with *some* item's questions,
and the score alone cannot tell that from a real, loosely worded question. Built on a tiny tree (see
tests/test_understanding_helpers.py) so each test fails for the reason it names.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bot.understanding.loader import check_directories, load_knowledge
from tests.test_understanding_helpers import INTENTS, ITEMS, PYTHON, ROOT, item_toml, line_of, write_tree

#: A question that shares 家里 / 困难 / 补贴 with the dibao item's questions but names nothing of it.
UNANCHORED = "家里困难有啥补贴"


def knowledge_with(tmp_path: Path, intents: str):
    items = dict(ITEMS)
    items["civil.dibao"] = item_toml("civil.dibao", "最低生活保障申请", "民政", ["低保", "吃低保"],
                                     ["家里困难怎么申请低保", "家里困难有什么补贴给", "低保要准备什么材料"])
    # the same everyday words in a second item's questions: no word of the question is the dibao
    # item's alone, so only a name, alias or cue can anchor it (words only one item's questions use
    # anchor a confident match too: tests/test_understanding_decisions.py)
    items["hrss.unemployment-benefit"] = item_toml(
        "hrss.unemployment-benefit", "失业保险金申领", "人社", ["失业金", "领失业金"],
        ["失业了能领失业金不", "失业了家里困难有什么补贴给"])
    faq, intents_dir, catalog = write_tree(tmp_path, items=items, intents=intents)
    knowledge, holder = load_knowledge(faq, intents_dir, catalog)
    assert not holder.problems, holder.problems
    return knowledge


def test_an_unanchored_question_falls_back(tmp_path: Path) -> None:
    knowledge = knowledge_with(tmp_path, INTENTS)
    features = knowledge.matcher.features(knowledge.normalize(UNANCHORED))
    assert features and features[0][1] == "civil.dibao" and features[0][0].score >= 35  # would answer
    assert knowledge.match(UNANCHORED).action == "fallback"


def test_a_cue_word_anchors_the_item(tmp_path: Path) -> None:
    knowledge = knowledge_with(tmp_path, INTENTS + '\n[cues]\n"civil.dibao" = ["家里困难"]\n')
    result = knowledge.match(UNANCHORED)
    assert result.action == "answer" and result.item == "civil.dibao"


def test_an_alias_anchors_even_with_a_typo(tmp_path: Path) -> None:
    knowledge = knowledge_with(tmp_path, INTENTS)
    assert knowledge.match("家里困难有啥低保").item == "civil.dibao"
    assert knowledge.match("家里困难有啥低宝").item == "civil.dibao"  # same pinyin bigram as 低保


def test_cues_must_name_known_items_and_hold_words(tmp_path: Path) -> None:
    faq, intents_dir, catalog = write_tree(tmp_path)
    (intents_dir / "cues.toml").write_text('[cues]\n"civil.nothing" = ["兜底"]\n"civil.dibao" = []\n',
                                           encoding="utf-8")
    problems, _, _ = check_directories(faq, intents_dir, catalog)
    assert any(p.field == "cues.civil.dibao" for p in problems), problems
    (intents_dir / "cues.toml").write_text('[cues]\n"civil.nothing" = ["兜底"]\n', encoding="utf-8")
    problems, _, _ = check_directories(faq, intents_dir, catalog)
    assert [p.field for p in problems] == ["cues.civil.nothing"] and "civil.nothing" in problems[0].message



# -- cues that anchor nothing: a warning of ``faq check`` ------------------------------------------

def _tree_with_generic_piece(tmp_path: Path, cues: str) -> tuple[Path, Path, Path]:
    """The tiny tree plus nine items whose names all hold 补贴: the piece is then in more items than
    ``anchor_max_items`` (8) and anchors none of them."""
    from tests.test_understanding_helpers import CATALOG
    items = dict(ITEMS)
    catalog = CATALOG
    for number in range(1, 10):
        ident = f"civil.subsidy-{number}"
        name = f"第{number}类生活补贴申领"
        items[ident] = item_toml(ident, name, "民政", [f"{number}类补贴"], [f"第{number}类补贴咋个领"])
        catalog += f"{ident}\t民政\t{name}\t{number}类补贴\n"
    return write_tree(tmp_path, items=items, intents=INTENTS + cues, catalog=catalog)


def test_the_matcher_tells_which_cue_words_anchor_nothing(tmp_path: Path) -> None:
    faq, intents_dir, catalog = _tree_with_generic_piece(
        tmp_path, '\n[cues]\n"civil.dibao" = ["兜底", "补贴", "丢了", "傻"]\n')
    knowledge, holder = load_knowledge(faq, intents_dir, catalog)
    assert not holder.problems, holder.problems
    matcher = knowledge.matcher
    assert matcher.cue_sharing("civil.dibao", "兜底") is None
    assert matcher.cue_sharing("civil.dibao", "补贴") == (10, ("补贴",))  # nine names and this cue
    assert matcher.cue_sharing("civil.dibao", "傻") == (0, ("傻",))       # one character
    # 了 is a stop word, but a question keeps it for anchoring: the cue anchors as written (round 9b)
    assert matcher.cue_sharing("civil.dibao", "丢了") is None
    assert matcher.anchored(knowledge.normalize("钱包丢了"), ["civil.dibao"])
    # what the warning is about: the word really anchors nothing, the specific one does
    assert not matcher.anchored(knowledge.normalize("补贴"), ["civil.dibao"])
    assert matcher.anchored(knowledge.normalize("兜底"), ["civil.dibao"])


def test_faq_check_warns_of_a_cue_that_anchors_nothing_and_still_passes(tmp_path: Path) -> None:
    cues = '\n[cues]\n"civil.dibao" = [\n  "兜底",\n  "补贴",\n]\n'
    faq, intents_dir, catalog = _tree_with_generic_piece(tmp_path, cues)
    text = (intents_dir / "base.toml").read_text(encoding="utf-8")
    problems, warnings, _ = check_directories(faq, intents_dir, catalog)
    assert problems == []
    assert len(warnings) == 1, warnings
    line = line_of(text, '"补贴"')
    assert f"base.toml:{line}: [cues.civil.dibao] " in warnings[0]  # the line of the word, not of [cues]
    assert "“补贴” 太笼统" in warnings[0] and "10 个事项" in warnings[0]
    result = subprocess.run(
        [str(PYTHON), "-m", "bot", "faq", "check", "--faq-dir", str(faq), "--intents-dir", str(intents_dir),
         "--catalog", str(catalog)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: " in result.stderr and "[cues.civil.dibao]" in result.stderr and "补贴" in result.stderr
    assert "13 faq file(s) valid, 1 warning(s)" in result.stdout
