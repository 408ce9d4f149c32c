"""Normalisation and homophone tolerance, on a tiny knowledge base so each test fails for one reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.understanding.knowledge import Knowledge
from bot.understanding.loader import load_knowledge
from bot.understanding.normalize import Normalizer, basic, chinese_number, convert_numbers, to_simplified
from bot.understanding.phonetic import syllable, syllables
from tests.test_understanding_helpers import write_tree


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> Knowledge:
    faq, intents, catalog = write_tree(tmp_path_factory.mktemp("kb"))
    loaded, holder = load_knowledge(faq, intents, catalog)
    assert not holder.problems, holder.problems
    return loaded


def test_traditional_to_simplified() -> None:
    assert to_simplified("請問申請低保需要什麼條件") == "请问申请低保需要什么条件"
    assert to_simplified("已经是简体") == "已经是简体"


def test_full_width_case_and_punctuation() -> None:
    assert basic("ＡＢＣ１２３，低保？！") == "abc123 低保  "


@pytest.mark.parametrize(("text", "expected"), [
    ("八十岁", "80岁"), ("十六岁", "16岁"), ("一百二十块", "120块"), ("两万三千元", "23000元"),
    ("第二个", "第2个"), ("一二级残疾", "12级残疾"), ("五保户", "五保户"), ("一二", "一二"), ("十", "10"),
])
def test_numbers(text: str, expected: str) -> None:
    assert convert_numbers(text) == expected


def test_chinese_number_rejects_digit_lists() -> None:
    assert chinese_number("九十九") == 99 and chinese_number("一二") is None


def test_rewrites_are_longest_first_and_chained() -> None:
    normalizer = Normalizer({"得行": "可以", "得行不": "可以吗", "社保咔": "社会保障卡", "社会保障卡": "社保卡"}, [])
    assert normalizer.normalize("得行不") == "可以吗"
    assert normalizer.normalize("社保咔丢了") == "社保卡丢了"


def test_fillers_and_dialect(knowledge: Knowledge) -> None:
    assert knowledge.normalize("你好，请问屋头低保咋个申请？") == "家里低保怎么申请"
    assert knowledge.normalize("麻烦问下 啥子时候") == "什么时候"


def test_rule_keys_are_normalised_too() -> None:
    assert Normalizer({"屋頭": "家里"}, ["麻煩問下"]).normalize("麻烦问下屋头") == "家里"


@pytest.mark.parametrize(("a", "b"), [("证", "正"), ("业", "叶"), ("份", "分"), ("生", "身"), ("老", "脑"), ("精", "金")])
def test_folded_pinyin_collides_for_homophones(a: str, b: str) -> None:
    assert syllable(a) == syllable(b)


def test_folded_pinyin_keeps_different_sounds_apart() -> None:
    assert syllables("低保") != syllables("医保")


@pytest.mark.parametrize(("question", "item"), [
    ("失叶金咋个领", "hrss.unemployment-benefit"),     # 叶 for 业: not in any rewrite table here
    ("优待正要带啥子", "civil.senior-card"),
    ("身分证丢了咋个补", "police.id-card"),
    ("低宝要啥子材料", "civil.dibao"),
    ("請問低保需要什麼材料", "civil.dibao"),
    ("ＤＩＢＡＯ低保", "civil.dibao"),
])
def test_homophones_and_variants_match_without_rewrite_rules(knowledge: Knowledge, question: str, item: str) -> None:
    result = knowledge.match(question)
    assert (result.action, result.item) == ("answer", item), result


def test_unrelated_question_falls_back(knowledge: Knowledge) -> None:
    assert knowledge.match("明天天气好不好").action == "fallback"
    assert knowledge.match("1").action == "fallback"
    assert knowledge.match("").action == "fallback"


def test_match_is_deterministic(knowledge: Knowledge, tmp_path: Path) -> None:
    faq, intents, catalog = write_tree(tmp_path)
    again, _ = load_knowledge(faq, intents, catalog)
    for question in ("低保", "老年证咋个办", "失业了", "身份证"):
        assert knowledge.match(question) == again.match(question)
