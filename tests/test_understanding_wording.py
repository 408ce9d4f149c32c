"""Residents' words that the shipped ``intents/`` must read right, checked on the real data.

Why on the real files: these are facts about the rewrite tables an admin edits (a synonym that reads
one item into another, spellings that must meet), not about the matcher's rules, which the tiny-tree
tests cover.
"""

from __future__ import annotations

import pytest

from bot.understanding.knowledge import Knowledge
from tests.test_understanding_helpers import shipped_knowledge

DIVORCE = "civil.divorce-registration"
MARRIAGE = "civil.marriage-registration"


@pytest.fixture(scope="module")
def knowledge() -> Knowledge:
    return shipped_knowledge()


# -- 领证: the marriage registration, unless the question is about a divorce ---------------------

@pytest.mark.parametrize("question", ["离婚了要领证吗", "离婚证在哪里领", "离婚了去哪里领证", "离婚领证",
                                      "离了婚领证", "协议离婚领证要带什么"])
def test_a_divorce_question_with_ling_zheng_is_the_divorce(knowledge: Knowledge, question: str) -> None:
    assert "结婚" not in knowledge.normalize(question)  # no rewrite reads a marriage into it
    result = knowledge.match(question)
    assert (result.action, result.item) == ("answer", DIVORCE), result


@pytest.mark.parametrize("question", ["领证要带什么", "我们想去领证", "领证需要户口本吗", "明天去领证",
                                      "领证在哪里办", "领证要多少钱", "结婚领证要啥子",
                                      "二婚去领证要带离婚证不", "再婚的领证要离婚证不"])
def test_ling_zheng_alone_or_remarrying_is_the_marriage(knowledge: Knowledge, question: str) -> None:
    result = knowledge.match(question)
    assert (result.action, result.item) == ("answer", MARRIAGE), result


# -- 户口本 / 户口簿 / 户口薄 (a typo): one word ---------------------------------------------------

@pytest.mark.parametrize(("template", "expected"), [
    ("办低保要{}不", ("answer", "civil.dibao")),
    ("身份证丢了咋个补，要带{}不", ("answer", "police.id-card")),
    ("从来没办过社保卡，要带{}不", ("answer", "hrss.social-security-card")),
    ("{}丢了咋个补", ("fallback", None)),   # the household register itself is not the community's
    ("换个新的{}", ("fallback", None)),
])
def test_the_three_spellings_of_the_household_register_match_alike(
        knowledge: Knowledge, template: str, expected: tuple[str, str | None]) -> None:
    spellings = [template.format(word) for word in ("户口本", "户口簿", "户口薄")]
    assert len({knowledge.normalize(text) for text in spellings}) == 1, spellings
    for text in spellings:
        result = knowledge.match(text)
        assert (result.action, result.item) == expected, (text, result)
