"""Out-of-scope words mentioned as context must not veto the need they surround (round 10a), on the
real data.

Each kind failed on the matcher before this round:

* a word framed as a place, a channel or a paper to bring (掉在超市, 打到农商行存折上, 菜市场门口,
  要带户口本不) while something else in the question names the item;
* a workplace named by its worker or its station (快递员, 快递点老板);
* a word the cut of particles makes across the start of a question (不是他们的责任 怎么申请认定 →
  责任认定).

The out-of-scope matter itself, asked or described (户口本上的名字, 去柜台改密码, 超市的菜坏了), must
still fall back. The questions are written for this test (not taken from ``tests/data``).
"""

from __future__ import annotations

import pytest

from bot.understanding.knowledge import Knowledge
from tests.test_understanding_helpers import assert_decided

#: (question, item): the out-of-scope word is where, through what, or with what paper.
FRAMED = [
    ("我爸的身份证落在超市了 他腿脚不方便 能上门办不", "police.id-card"),
    ("低保的钱是打到农商行存折上吗", "civil.dibao"),
    ("我们几个在菜市场门口跳坝坝舞 想成立个舞蹈队 要去备案不", "civil.community-org-filing"),
    ("给娃娃办出生证明 要带户口本不", "health.birth-certificate"),
    # named elsewhere by a whole word of the item (社保卡), though its bigrams are too common to be specific
    ("我还没有社保卡 可以在农商行办不", "hrss.social-security-card"),
]

#: (question, item): the resident's workplace, named by its worker or its station.
WORKPLACE = [
    ("我们几个快递员的工资拖了两个月了 找哪个", "hrss.wage-arrears"),
    ("快递点老板欠我两个月工资 找哪个", "hrss.wage-arrears"),
]

#: (question, item): an out-of-scope word exists only across the start of the question.
ACROSS_A_QUESTION = [
    ("单位说不是我们的责任 怎么申请认定是工作中受的伤", "hrss.work-injury"),
    ("搬砖砸到脚了 老板说不关他的事 不是他们的责任 怎么申请认定", "hrss.work-injury"),
]

#: The out-of-scope thing is the matter: still a fallback.
STILL_OUT = [
    "在农商行开个户咋个弄",
    "户口本上的名字写错了咋个改",
    "银行卡密码忘了 要去柜台改不",
    "在超市买的菜坏了 找哪个投诉",
    "想给屋头老人买个保险 有没有推荐的",  # a word made across a plain clause break still counts
    "营业执照在哪里办",
]



@pytest.mark.parametrize(("question", "expected"), FRAMED, ids=[q for q, _ in FRAMED])
def test_a_place_channel_or_paper_does_not_veto_the_named_item(knowledge: Knowledge, question: str,
                                                                expected: str) -> None:
    assert_decided(knowledge.match(question), expected)


@pytest.mark.parametrize(("question", "expected"), WORKPLACE, ids=[q for q, _ in WORKPLACE])
def test_a_worker_or_station_is_a_workplace(knowledge: Knowledge, question: str, expected: str) -> None:
    assert_decided(knowledge.match(question), expected)


@pytest.mark.parametrize(("question", "expected"), ACROSS_A_QUESTION, ids=[q for q, _ in ACROSS_A_QUESTION])
def test_no_topic_is_made_across_the_start_of_a_question(knowledge: Knowledge, question: str,
                                                         expected: str) -> None:
    assert_decided(knowledge.match(question), expected)


@pytest.mark.parametrize("question", STILL_OUT)
def test_the_out_of_scope_matter_itself_still_falls_back(knowledge: Knowledge, question: str) -> None:
    assert_decided(knowledge.match(question), None)


@pytest.mark.parametrize(("question", "expected"), [
    ("屋头在装修 想顺便给坐轮椅的老汉儿把厕所改一下 残联补不补", "disability.home-accessibility"),
    ("装修房子能申请补贴不", None),      # no disabled person, no adaptation: 装修 is the matter
    ("楼上装修太吵了找哪个", None),
])
def test_a_word_the_item_owns_vetoes_only_without_the_item(knowledge: Knowledge, question: str,
                                                          expected: str | None) -> None:
    """装修 is out of scope, but the adaptation item's questions speak of it (residents call the
    adaptation 装修): it counts against that item only when nothing else in the question names it."""
    assert_decided(knowledge.match(question), expected)
