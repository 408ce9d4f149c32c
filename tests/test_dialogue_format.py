"""Reply wording and size for every item and aspect of the real faq/ (pure: no database, no HTTP)."""

from __future__ import annotations

from bot.handlers.faq import (
    GUIDE_QUESTIONS,
    MAX_OPTIONS,
    MAX_REPLY_CHARS,
    NEXT_PROXY,
    format_answer,
    format_clarify,
    format_guide,
    format_offer,
)
from bot.understanding.knowledge import Knowledge
from bot.understanding.model import ASPECTS

WECHAT_TEXT_BYTES = 2048



def test_every_answer_fits_a_phone_screen(knowledge: Knowledge) -> None:
    sizes = []
    for item in knowledge.items.values():
        for aspect in ASPECTS:
            text = format_answer(item, aspect)
            sizes.append(len(text))
            assert len(text) <= MAX_REPLY_CHARS and len(text.encode()) < WECHAT_TEXT_BYTES, (item.id, aspect)
            lines = text.splitlines()
            assert lines[0] == f"【{item.name}】"
            assert (lines[-1] == NEXT_PROXY) if item.proxy else ("了解更多" in lines[-1]), (item.id, aspect, lines[-1])
    assert max(sizes) < MAX_REPLY_CHARS


def test_materials_are_a_numbered_checklist_from_the_file(knowledge: Knowledge) -> None:
    for item in knowledge.items.values():
        lines = format_answer(item, "materials").splitlines()
        for number, material in enumerate(item.materials, 1):
            line = next(line for line in lines if line.startswith(f"{number}. "))
            assert material.name in line and material.form in line, (item.id, line)
            if material.count:
                assert f" {material.count}" in line
        assert any(item.where.place in line and item.where.hours in line for line in lines)


def test_pension_checklist_reads_as_on_the_counter(knowledge: Knowledge) -> None:
    text = format_answer(knowledge.items["hrss.resident-pension-enroll"])
    assert "1. 一寸白底照片 3张（原件）" in text


def test_each_aspect_answers_what_was_asked(knowledge: Knowledge) -> None:
    item = knowledge.items["civil.dibao"]
    assert item.time_limit in format_answer(item, "time")
    assert item.fee in format_answer(item, "fee")
    assert all(c in format_answer(item, "conditions") for c in item.conditions)
    assert all(s in format_answer(item, "steps") for s in item.steps)
    assert item.phone in format_answer(item, "where")
    assert item.materials[0].name not in format_answer(item, "where")


def test_long_answers_are_shortened_not_cut_mid_line(knowledge: Knowledge) -> None:
    item = knowledge.items["civil.dibao"]
    short = format_answer(item, "materials", limit=200)
    assert len(short) <= 200 and short.splitlines()[0] == f"【{item.name}】"
    assert short.splitlines()[-1] == NEXT_PROXY


def test_clarify_lists_at_most_four(knowledge: Knowledge) -> None:
    items = list(knowledge.items.values())[:6]
    lines = format_clarify(items).splitlines()
    assert lines[-1] == "回复数字选择"
    assert [line[:2] for line in lines[1:-1]] == [f"{n}." for n in range(1, MAX_OPTIONS + 1)]


def test_guide_examples_are_answered_by_the_current_faq(knowledge: Knowledge) -> None:
    """The 办事指南 menu suggests these questions; none may end in "didn't understand"."""
    guide = format_guide(knowledge)
    for question in GUIDE_QUESTIONS:
        assert question in guide
        understood = knowledge.understand(question)
        assert understood.intent == "faq" and understood.match.action in ("answer", "clarify"), (
            question, understood.match)
    for department in {item.department for item in knowledge.items.values()}:
        assert department in guide


def test_an_offer_numbers_other_needs_then_siblings_in_one_run(knowledge: Knowledge) -> None:
    """"1" and "2" must mean what the resident reads: the other needs first, then the close siblings."""
    items = knowledge.items
    need, sibling = items["hrss.wage-arrears"], items["hrss.death-benefit"]
    assert format_offer([need], [sibling]).split("\n") == [
        "您还问到：", f"1. {need.name}", "您可能还想问：", f"2. {sibling.name}", "回复数字查看"]
    assert format_offer([], [sibling]).split("\n") == ["您可能还想问：", f"1. {sibling.name}", "回复数字查看"]
