"""Round 16 (session 12), on the real data: which of two, and a child's disability card.

* "是居住证还是居住证明" asks which of the two: the list is the question, not who someone is. Until this
  round 是 before a list always read as a status ("我是低保户和残疾人"), so the alternative was answered
  with one side. 但是, 还是, 就是 … are other words and open no alternative.
* A bigram that holds the joining word (金和, an anchor because one item's question says 丧葬补助金和抚恤金)
  is the joint itself, not a word the joint cuts: "养老金和老年证" lists two things.
* A child whose development is slow (发育迟缓, 自闭症) is the rehabilitation item's story; asking to have
  the child assessed (评残, 办残疾证, 鉴定) without a word of rehabilitation (康复, 训练) asks for the
  card (``[contrast.child-disability]``).

The questions are written for this test (not taken from ``tests/data``). The cases marked as guards
pass on the code before the round too: they keep the rules from reaching further.
"""

from __future__ import annotations

import pytest

from bot.understanding.knowledge import Knowledge
from tests.test_understanding_helpers import assert_decided

#: (question, the items a clarify must offer): 是 X 还是 Y.
WHICH_OF_TWO = [
    ("娃娃读书学校要材料 我也不晓得是居住证还是居住证明", {"police.residence-permit", "civil.residence-proof"}),
    ("到底是办居住证还是开居住证明哦 娃娃要上幼儿园", {"police.residence-permit", "civil.residence-proof"}),
    ("我妈每个月那个钱 搞不清是低保还是特困供养", {"civil.dibao", "civil.extreme-poverty"}),
    ("残疾证上的钱不知道是护理补贴还是生活补贴", {"disability.nursing-subsidy", "disability.living-subsidy"}),
    # 金和 is an anchor bigram of the death benefit (丧葬补助金和抚恤金): it held the joint, so the list
    # read as a word cut in two
    ("刚满六十岁 养老金和老年证能一起办不", {"hrss.resident-pension-claim", "civil.senior-card"}),
]

#: (question, the item to answer): no alternative, whatever 是 and 还是 are there.
NOT_WHICH_OF = [
    # guards: 但是 … 还是 is "but … still"; 是 before 和 tells who the resident is
    ("我们家以前吃低保 但是现在还是困难 有没得边缘户可以评", "civil.low-income-family"),
    ("我是低保户和残疾人 能领啥", "disability.living-subsidy"),
    ("老人走了 丧葬费和抚恤金都找哪个", "hrss.death-benefit"),  # both the insured's death benefits
]

#: (question, the item to answer): a child's condition told, then what is asked for.
CHILD_DISABILITY = [
    ("娃娃四岁了说话不清楚 医院诊断发育迟缓 想给他评个残 找哪个", "disability.card-new"),
    # guards: rehabilitation asked for, with or without the card mentioned
    ("娃娃自闭症 想做康复训练 有补助不", "disability.child-rehab"),
    ("还没办残疾证 娃娃发育迟缓 康复训练能申请不", "disability.child-rehab"),
    ("娃娃脑瘫 办了残疾证了 康复的钱咋个报", "disability.child-rehab"),
]


@pytest.mark.parametrize(("question", "items"), WHICH_OF_TWO, ids=[q for q, _ in WHICH_OF_TWO])
def test_which_of_two_is_asked_back_with_both(knowledge: Knowledge, question: str, items: set[str]) -> None:
    result = knowledge.match(question)
    assert result.action == "clarify" and items <= set(result.candidates), result


@pytest.mark.parametrize(("question", "item"), NOT_WHICH_OF + CHILD_DISABILITY,
                         ids=[q for q, _ in NOT_WHICH_OF + CHILD_DISABILITY])
def test_the_item_asked_for_is_answered(knowledge: Knowledge, question: str, item: str) -> None:
    assert_decided(knowledge.match(question), item)
