"""The anchor rule: answer only when the question holds a name, alias or ``[cues]`` word of the item.

Why: an out-of-scope question ("想找个保姆") always shares a word or two with *some* item's questions,
and the score alone cannot tell that from a real, loosely worded question. Built on a tiny tree (see
tests/test_understanding_helpers.py) so each test fails for the reason it names.
"""

from __future__ import annotations

from pathlib import Path

from bot.understanding.loader import check_directories, load_knowledge
from tests.test_understanding_helpers import INTENTS, ITEMS, item_toml, write_tree

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

