"""Items offered after an answer (``MatchResult.related``), on the real data.

When a sibling of the answered item (one ``[ambiguous]`` word may mean either) scores close behind and
the question holds a word of the answer's own, the matcher answers (see ``Matcher._close_sibling``) but
carries the sibling along, so the reply can offer it: independent writers call about half of such
questions ambiguous. Any other item the question anchors that scores within ``runner_up_window`` of the
answer is carried the same way (``Matcher._runners_up``): a close call is where answers are most often
wrong. The questions are written for this test.
"""

from __future__ import annotations

import pytest

from bot.understanding.knowledge import Knowledge
from bot.understanding.matcher import MatcherSettings



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


@pytest.mark.parametrize(("question", "answered", "offered"), [
    ("看病钱不够屋头困难能救助不", "civil.temporary-assistance", "medins.medical-assistance"),
    ("残疾证到期了护理补贴还能领不", "disability.nursing-subsidy", "disability.card-renew"),
])
def test_an_anchored_runner_up_goes_with_the_answer(knowledge: Knowledge, question: str, answered: str,
                                                     offered: str) -> None:
    result = knowledge.match(question)
    assert (result.action, result.item) == ("answer", answered), result
    assert result.related[:1] == (offered,), result
    assert result.candidates == (answered,)  # the decision, and what `match --jsonl` reports, is unchanged


def test_the_runner_up_window_is_what_offers_it(knowledge: Knowledge) -> None:
    """The same question with the window closed: the answer stands and nothing is offered."""
    closed = Knowledge.build(list(knowledge.items.values()), knowledge.intents,
                             MatcherSettings(runner_up_window=0.0))
    result = closed.match("看病钱不够屋头困难能救助不")
    assert (result.action, result.item, result.related) == ("answer", "civil.temporary-assistance", ())
