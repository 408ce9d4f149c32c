"""Round 10E (batch Q's misses that are not about ambiguity), on the real data.

Each case failed before this round:

* knowledge: a smartphone the resident lacks while paying the insurance, a household register moved back
  before enrolling, a new social-security card applied for and awaited (申请了), a car's annual check, a lost
  household register, trade-in subsidies for appliances, aid for poor students, an old person nobody looks
  after (没人照顾: the home-care service is offered too);
* a paper taken along to do the need (拿死亡证明到哪里办: ``scope._brought``) is no matter asked for;
* an age alone, or a person described by a service they had (领养老金的人去世了), is who the need is for,
  not a need of its own (``clauses._CONTEXT``);
* a generic word's clarify also offers an item the rest of the question names by a word of its own alone
  (砸伤 beside 外地住院: ``GenericWords._named_by_rest``).

The questions are written for this test (not taken from ``tests/data``).
"""

from __future__ import annotations

import pytest

from bot.understanding.clauses import split_clauses
from bot.understanding.knowledge import Knowledge
from tests.test_understanding_helpers import assert_decided

CASES = [
    # knowledge data
    ("老人没有智能手机 合作医疗咋个交", "medins.resident-payment"),
    ("户口刚迁回来 想参加医保", "medins.resident-enroll"),
    ("社保卡申请了好久能到手", "hrss.social-security-card"),
    ("我的车该年审了", None),
    ("户口簿掉了 补一个要啥子", None),
    ("困难学生有啥子补助", None),
    ("家里老人没人照顾 屋头又困难 政府养老这块有啥帮扶", "civil.elderly-care-subsidy|civil.home-care-service"),
    # a paper taken along (_brought)
    ("我爸上个月走了 听说火化有补贴 要拿死亡证明到哪里办", "civil.funeral-subsidy"),
    # an age, a person described by a service they had (clauses._CONTEXT)
    ("我奶奶90多了 我们都在外地打工 想给她请上门照护的人 咋个弄", "civil.home-care-service"),
    ("交养老保险的人去世了 家属咋个领丧葬补助", "hrss.death-benefit"),
    # the rest names another item by a word of its own (GenericWords._named_by_rest)
    ("在外地住院 砸伤了 有啥能报", "medins.offsite-filing|medins.manual-reimbursement|hrss.work-injury"),
]



@pytest.mark.parametrize(("question", "expected"), CASES, ids=[q for q, _ in CASES])
def test_round_10e_kinds(knowledge: Knowledge, question: str, expected: str | None) -> None:
    assert_decided(knowledge.match(question), expected)


@pytest.mark.parametrize("clause", ["我爸85岁了", "他都78了", "吃低保的老人走了", "领养老金的人去世了"])
def test_age_or_described_person_is_context(clause: str) -> None:
    first = split_clauses(f"{clause} 想申请上门服务 怎么办")[0]
    assert first.context and not first.asks


@pytest.mark.parametrize("clause", ["领养老金的人要认证吗", "吃低保的人能申请不"])
def test_described_person_who_asks_still_asks(clause: str) -> None:
    assert split_clauses(clause)[0].asks


def test_paper_taken_along_is_not_asked_for(knowledge: Knowledge) -> None:
    """Without the paper brought along, asking where to get it is still out of scope."""
    assert_decided(knowledge.match("死亡证明去哪里办"), None)
