"""Residents' words that the shipped ``intents/`` must read right, checked on the real data.

Why on the real files: these are facts about the rewrite tables an admin edits (a synonym that reads
one item into another, spellings that must meet), not about the matcher's rules, which the tiny-tree
tests cover.
"""

from __future__ import annotations

import pytest

from bot.understanding.knowledge import Knowledge

DIVORCE = "civil.divorce-registration"
MARRIAGE = "civil.marriage-registration"



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


# -- a word said in the negative or as a yardstick is not the need (round 8h) -----------------------

LEGAL_AID = "justice.legal-aid"


@pytest.mark.parametrize("question", ["不想打官司，两口子商量着分开，要去哪里办", "想和老婆分开，不用打官司，手续咋个办",
                                      "我们不打官司，两个人商量好了分开，要带啥子", "两口子准备分开，不用打官司，手续在哪里办"])
def test_splitting_up_without_a_lawsuit_is_the_divorce_registration(knowledge: Knowledge, question: str) -> None:
    # 打官司 is legal aid's word; "不打官司" says the couple goes the agreed way, at the registry
    result = knowledge.match(question)
    assert (result.action, result.item) == ("answer", DIVORCE), result


@pytest.mark.parametrize("question", ["离婚要打官司，请不起律师咋办", "老公不同意离婚，想起诉，有没有免费律师"])
def test_a_divorce_lawsuit_is_still_legal_aid(knowledge: Knowledge, question: str) -> None:
    result = knowledge.match(question)
    assert (result.action, result.item) == ("answer", LEGAL_AID), result


def test_dibao_as_the_yardstick_is_the_low_income_family(knowledge: Knowledge) -> None:
    # "比吃低保的宽裕一点": 低保 is what the family is measured against, not what it asks for
    result = knowledge.match("我们屋头比吃低保的宽裕一点 日子还是紧 能认定个身份不")
    assert (result.action, result.item) == ("answer", "civil.low-income-family"), result
    result = knowledge.match("想申请吃低保，要准备啥材料")
    assert (result.action, result.item) == ("answer", "civil.dibao"), result
