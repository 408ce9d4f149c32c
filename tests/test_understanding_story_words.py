"""Words of the resident's story that must not decide against the need (round 9b), on the real data.

Two kinds, each failing on the matcher before this round:

* an out-of-scope place that is where the resident works or trades (在火锅店打工, 在饭店做事, 开个网吧):
  the situation of the wage, the injury or the loan asked about, not a matter of that place; the
  place's own matters (超市几点关门, 火锅店好吃不) must still fall back;
* a ``[cues]`` word written with a particle (离了, 裁了): a question keeps its particles for
  anchoring, so such a cue anchors as written instead of being cut to one character.

The questions are written for this test (not taken from ``tests/data``).
"""

from __future__ import annotations

import pytest

from bot.understanding.knowledge import Knowledge
from tests.test_understanding_helpers import assert_decided

#: (question, expected as in the question sets): a workplace or trade in the story, then the need.
WORKPLACE = [
    ("在火锅店打工 老板拖了三个月工资", "hrss.wage-arrears"),
    ("在饭店做事 切菜把手切了 算不算工伤", "hrss.work-injury"),
]

#: The same places asked about for themselves: still out of scope.
PLACE_ITSELF = ["超市几点关门", "附近的火锅店好吃不"]

#: (question, item): the need named only by a cue written with a particle.
CUE_WITH_PARTICLE = [
    ("两口子商量好了 想去民政局离了 要带啥子", "civil.divorce-registration"),
    ("我们准备去民政局离了 要预约不", "civil.divorce-registration"),
    ("厂里把我裁了 能领钱不", "hrss.unemployment-benefit"),
]



@pytest.mark.parametrize(("question", "expected"), WORKPLACE, ids=[q for q, _ in WORKPLACE])
def test_a_workplace_in_the_story_is_no_out_of_scope_topic(knowledge: Knowledge, question: str,
                                                           expected: str) -> None:
    assert_decided(knowledge.match(question), expected)


@pytest.mark.parametrize("question", PLACE_ITSELF)
def test_the_place_asked_about_for_itself_still_falls_back(knowledge: Knowledge, question: str) -> None:
    assert_decided(knowledge.match(question), None)


@pytest.mark.parametrize(("question", "item"), CUE_WITH_PARTICLE, ids=[q for q, _ in CUE_WITH_PARTICLE])
def test_a_cue_written_with_a_particle_anchors_its_item(knowledge: Knowledge, question: str, item: str) -> None:
    assert_decided(knowledge.match(question), item)
