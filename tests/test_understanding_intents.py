"""Intent, aspect and pick: what the conversation handler gets from ``understand`` and ``pick``."""

from __future__ import annotations

import pytest

from bot.understanding.knowledge import Knowledge, parse_pick
from bot.understanding.loader import load_knowledge
from tests.test_understanding_helpers import shipped_knowledge, write_tree


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> Knowledge:
    faq, intents, catalog = write_tree(tmp_path_factory.mktemp("kb"))
    return load_knowledge(faq, intents, catalog)[0]


@pytest.mark.parametrize(("text", "intent"), [
    ("你好", "greeting"), ("在吗？", "greeting"), ("Hello", "greeting"), ("早上好", "greeting"),
    ("谢谢", "thanks"), ("好的谢谢了", "thanks"), ("菜单", "help"), ("帮助", "help"),
    ("转人工", "handoff"), ("我要人工客服", "handoff"),
    ("低保要带什么材料", "faq"), ("在哪里办", "aspect"), ("要好久", "aspect"),
    ("明天天气好不好", "unknown"), ("asdf", "unknown"),
])
def test_intents(knowledge: Knowledge, text: str, intent: str) -> None:
    assert knowledge.understand(text).intent == intent


@pytest.mark.parametrize(("text", "intent"), [
    # a bare acknowledgement: 确认 alone was answered as the pension certification (认证), 嗯 fell back
    ("确认", "thanks"), ("嗯", "thanks"), ("对的", "thanks"), ("可以", "thanks"), ("好的", "thanks"),
    ("确认一下低保咋个办", "faq"), ("可以办低保不", "faq"),
    # the last answer missed: 不是这个, 不对, 答错了; but a correction that names the item is a question
    ("不是这个", "wrong"), ("不对", "wrong"), ("答错了", "wrong"), ("不是低保是低收入", "faq"),
    # anything else about the answer
    ("还有呢", "more"), ("还有别的吗", "more"), ("还有呢 在哪里办", "aspect"),
])
def test_shipped_acknowledgements_and_corrections(text: str, intent: str) -> None:
    assert shipped_knowledge().understand(text).intent == intent


def test_thanks_followed_by_a_question_is_a_question(knowledge: Knowledge) -> None:
    understood = knowledge.understand("谢谢，那低保在哪里办")
    assert (understood.intent, understood.aspect, understood.match.item) == ("faq", "where", "civil.dibao")


def test_handoff_still_says_what_it_is_about(knowledge: Knowledge) -> None:
    understood = knowledge.understand("转人工问低保")
    assert understood.intent == "handoff" and understood.match.item == "civil.dibao"


@pytest.mark.parametrize(("text", "aspect", "explicit"), [
    ("低保", "materials", False), ("低保要带什么", "materials", True), ("低保咋个办", "steps", True),
    ("低保在哪里", "where", True), ("低保要几天", "time", True), ("低保收费不", "fee", True),
    ("低保有什么条件", "conditions", True), ("低保能代办不", "proxy", True),
])
def test_aspects(knowledge: Knowledge, text: str, aspect: str, explicit: bool) -> None:
    understood = knowledge.understand(text)
    assert (understood.aspect, understood.aspect_explicit, understood.match.item) == (aspect, explicit, "civil.dibao")


@pytest.mark.parametrize(("text", "pick"), [
    ("2", 2), ("第二个", 2), ("第2个", 2), ("二", 2), ("选3", 3), ("第三个吧", 3), ("２", 2), ("1号", 1),
])
def test_bare_picks(knowledge: Knowledge, text: str, pick: int) -> None:
    understood = knowledge.understand(text)
    assert (understood.intent, understood.pick) == ("pick", pick)


@pytest.mark.parametrize("text", ["2个人", "第二个低保", "0", "低保"])
def test_not_picks(knowledge: Knowledge, text: str) -> None:
    assert knowledge.understand(text).pick is None


def test_parse_pick_last() -> None:
    assert parse_pick("最后1个", 3) == 3 and parse_pick("最后1个") is None


CHOICES = ["civil.senior-card", "police.id-card", "civil.dibao"]


@pytest.mark.parametrize(("text", "picked"), [
    ("2", "police.id-card"), ("第三个", "civil.dibao"), ("最后一个", "civil.dibao"), ("第四个", None),
    ("身份证那个", "police.id-card"), ("老年证", "civil.senior-card"), ("低保吧", "civil.dibao"),
    ("失业金", None), ("随便", None),
])
def test_pick_against_a_clarify_list(knowledge: Knowledge, text: str, picked: str | None) -> None:
    assert knowledge.pick(text, CHOICES) == picked


def test_pick_with_no_candidates(knowledge: Knowledge) -> None:
    assert knowledge.pick("1", []) is None


@pytest.mark.parametrize(("text", "intent", "item"), [
    ("听力障碍的小孩装人工耳蜗有救助不", "faq", "disability.child-rehab"),  # 人工 inside a cue word
    ("人工", "handoff", None), ("我要找人工", "handoff", None),
    ("人工耳蜗的事转人工", "handoff", "disability.child-rehab"),
])
def test_a_handoff_phrase_inside_a_knowledge_word_is_that_word(text: str, intent: str, item: str | None) -> None:
    """``contains`` phrases (人工) fire anywhere except inside the knowledge's own words (the cue 人工耳蜗)."""
    understood = shipped_knowledge().understand(text)
    assert understood.intent == intent and understood.match.item == item, understood


def test_a_handoff_message_is_matched_as_if_the_handoff_words_were_not_there() -> None:
    """Cutting 转人工 must not cut the 人工 of 人工耳蜗: the topic is matched on the whole word."""
    knowledge = shipped_knowledge()
    understood = knowledge.understand("人工耳蜗的事转人工")
    alone = knowledge.matcher.match(knowledge.normalize("人工耳蜗的事"))
    assert understood.intent == "handoff"
    assert (understood.match.item, understood.match.score) == (alone.item, alone.score)
