"""Round 9D (batch O and P's misses that are not about ambiguity), on the real data.

Three kinds, each failing on the data before this round:

* a channel or place that belongs to the item (支付宝 to pay or apply, 信用社 where the pension is paid,
  签注 of the residence permit, an old car in a 低保 question, old comrades setting up a team, 逾期 of a
  payment, 农村医保 named in the asking clause), an abbreviation or paraphrase (康训, 失业险, 看病报销的保险):
  the question is in scope and is answered;
* out-of-scope lookalikes by class (户口迁移证, 陪护床, produce that does not sell, 物业 and 业主, the
  employer's 残保金, student aid): they fall back instead of being answered by an item sharing a word;
* a ``[cues]`` word whose everyday part (问题 of 吃饭都成问题) anchored its item in any sentence.

The questions are written for this test (not taken from ``tests/data``).
"""

from __future__ import annotations

import pytest

from bot.understanding.knowledge import Knowledge
from tests.test_understanding_helpers import assert_decided

CASES = [
    ("我的失业金想在支付宝上领 咋个弄", "hrss.unemployment-benefit"),
    ("支付宝交城乡医保在哪里点", "medins.resident-payment"),
    ("信用社说我的养老金没认证 取不出来", "hrss.pension-certification"),
    ("签注在哪里办 我是办了居住证的", "police.residence-permit"),
    ("有辆二手货车 会不会取消低保", "civil.dibao"),
    ("老战友搞了个合唱团 要去哪里登记", "civil.community-org-filing"),
    ("在外地做的康训能报不", "disability.child-rehab"),
    ("外地交的失业险回来能领不", "hrss.unemployment-benefit"),
    ("城乡医保逾期没缴还能补不", "medins.resident-payment"),  # 逾期 alone is no loan matter
    ("给刚出生的娃娃办看病报销的保险 在哪办", "medins.resident-enroll"),
    ("户口迁回老家了 农村医保咋个入", "medins.resident-enroll"),
    ("户口迁出去要开迁移证 在哪开", None),
    ("住院能不能报陪护床的钱", None),
    ("家里的柑子滞销了 社区帮不帮忙卖", None),
    ("物业乱收费 业主找哪个投诉", None),
    ("公司招残疾人能少交残保金不", None),
    ("贫困生补助咋个申请", None),
    ("好的 问题解决了", None),
]



@pytest.mark.parametrize(("question", "expected"), CASES, ids=[q for q, _ in CASES])
def test_round_9d_kinds(knowledge: Knowledge, question: str, expected: str | None) -> None:
    assert_decided(knowledge.match(question), expected)
