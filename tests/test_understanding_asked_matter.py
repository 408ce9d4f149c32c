"""Out-of-scope matters asked about beside an item (round 8i): the item is the situation, the
out-of-scope thing is what is asked — its opening hours, booking it, cancelling it — and neither the
item's high score (``out_of_scope_override``) nor its owning the word may answer the item.

Data-driven on the real ``faq/`` and ``intents/``; the questions are written for this test (not taken
from ``tests/data``). ``ASKED_APART`` and ``MATTER_ASKED`` fail on the matcher before this round (it
answered the death benefit or the vaccination certificate); the guards pass either way and keep the
rules from reaching in-scope questions that use the same words.
"""

from __future__ import annotations

import pytest

from bot.understanding.knowledge import Knowledge
from tests.test_understanding_helpers import assert_decided

#: The item is named only in a clause that asks nothing; the asking clause is about an out-of-scope
#: matter (户口注销 is a word the death benefit's own questions use: owned, yet not what is asked).
ASKED_APART = [
    "我奶奶上个月过世了，她的户口怎么注销",
    "外公前两天走了，户口咋个注销嘛",
]

#: An out-of-scope place or thing, then a matter of that thing itself (hours), scoring above the
#: override because the rest reads like an item (打疫苗 ↔ the vaccination certificate).
MATTER_ASKED = [
    "乡镇卫生院打疫苗啥时候开门",
    "我家娃娃的接种证早就办好了，想问社区医院几点开门",
    # whether the place gives the shot itself (round 15: above the override since the syllable view)
    "乡镇卫生院周末打不打疫苗嘛",
    "卫生院可以打针吗",
]

#: In scope although they use the same words: materials (户口本), the item's own loss and booking, its
#: own money after a death, its own fee.
GUARDS = [
    ("准备去领结婚证，要带户口本不", "civil.marriage-registration"),
    ("预防接种证丢了咋个补", "health.vaccination-certificate"),
    ("接种证补办要预约不", "health.vaccination-certificate"),
    # 丧葬补助 is the civil funeral subsidy's and the pension fund's death grant alike (asked back)
    ("老人去世了，丧葬补助咋个领", "civil.funeral-subsidy|hrss.death-benefit"),
    ("想学个手艺，学费政府能补不", "hrss.skills-training-subsidy"),
    ("社保卡丢了，要去哪里补", "hrss.social-security-card-replace"),
    ("我们外地户口在旺苍打工，娃儿能在这边办接种证打疫苗不", "health.vaccination-certificate"),
]



@pytest.mark.parametrize("question", ASKED_APART)
def test_out_of_scope_matter_asked_after_the_item_as_situation_falls_back(knowledge: Knowledge,
                                                                         question: str) -> None:
    assert knowledge.match(question).action == "fallback"


@pytest.mark.parametrize("question", MATTER_ASKED)
def test_hours_of_an_out_of_scope_place_fall_back_whatever_the_score(knowledge: Knowledge, question: str) -> None:
    result = knowledge.match(question)
    assert result.action == "fallback", result


def test_matter_asked_is_decided_above_the_override(knowledge: Knowledge) -> None:
    """The rule must hold where the old override let the item win: the score stays above it."""
    settings = knowledge.matcher.settings
    normalized = knowledge.normalize(MATTER_ASKED[0])
    assert knowledge.matcher.scores(normalized)[0][0] >= settings.out_of_scope_override
    assert knowledge.match(MATTER_ASKED[0]).action == "fallback"


@pytest.mark.parametrize(("question", "item"), GUARDS, ids=[q for q, _ in GUARDS])
def test_in_scope_questions_with_those_words_still_answer(knowledge: Knowledge, question: str, item: str) -> None:
    assert_decided(knowledge.match(question), item)
