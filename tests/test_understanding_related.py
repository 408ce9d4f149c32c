"""Close siblings offered after an answer (``MatchResult.related``), on the real data.

When a sibling of the answered item (one ``[ambiguous]`` word may mean either) scores close behind and
the question holds a word of the answer's own, the matcher answers (see ``Matcher._close_sibling``) but
carries the sibling along, so the reply can offer it: independent writers call about half of such
questions ambiguous. The questions are written for this test.
"""

from __future__ import annotations

import pytest

from bot.understanding.knowledge import Knowledge



def test_a_close_sibling_goes_with_the_answer(knowledge: Knowledge) -> None:
    result = knowledge.match("我外公前天去世了 后事办完了 有啥子钱可以领不")
    assert (result.action, result.item) == ("answer", "civil.funeral-subsidy"), result
    assert result.related == ("hrss.death-benefit",)
    assert result.candidates == ("civil.funeral-subsidy",)  # what `match --jsonl` reports is unchanged


@pytest.mark.parametrize("question", ["低保要带啥子材料", "身份证丢了咋个补", "失业金咋个领"])
def test_a_clear_question_offers_nothing_else(knowledge: Knowledge, question: str) -> None:
    result = knowledge.match(question)
    assert result.action == "answer" and result.related == () and result.also == (), result


def test_a_vague_question_still_asks_back(knowledge: Knowledge) -> None:
    """No word of either sibling's own: the close sibling is asked about, not merely offered."""
    result = knowledge.match("人死了有丧葬补助吗")
    assert result.action == "clarify"
    assert {"civil.funeral-subsidy", "hrss.death-benefit"} <= set(result.candidates), result
