"""Emoticons in a message (``bot.understanding.emoticons``): cut before anything reads the message, and
read by name when a message holds nothing else. WeChat's codes for the classic faces are named at the
edge (``tests/test_wechat_faces.py``). The messages are written for these tests."""

from __future__ import annotations

import pytest

from bot.understanding.emoticons import CLASSIC_NAMES, NEWER_NAMES, read_emoticons
from bot.understanding.knowledge import Knowledge


@pytest.mark.parametrize(("text", "read"), [
    ("[抱拳]请问低保咋个申请", " 请问低保咋个申请"),
    ("医保咋个交👍", "医保咋个交 "),
    ("[强]", "强"),
    ("[OK]", "OK"),
    ("👍", "强"),                    # the everyday emoji that says the same
    ("[强][强]", "强 强"),
    ("🙏 🙏！", "抱拳 抱拳"),
])
def test_emoticons_are_cut_or_read_by_name(text: str, read: str) -> None:
    assert read_emoticons(text) == read


@pytest.mark.parametrize("text", ["低保咋个申请", "[低保]咋个申请", "/::)", "", "😂"])
def test_other_text_is_left_alone(text: str) -> None:
    assert read_emoticons(text) == text


def test_every_face_by_name_is_read() -> None:
    for name in (*CLASSIC_NAMES, *NEWER_NAMES):
        assert read_emoticons(f"[{name}]") == name, name


@pytest.mark.parametrize(("message", "item"), [
    ("[捂脸][捂脸]社保卡丢了咋办", "hrss.social-security-card-replace"),
    ("[难过]老人80岁了有补贴没[疑问]", "civil.elderly-allowance"),
    ("[握手][握手] 想问下残疾人护理补贴咋个领", "disability.nursing-subsidy"),
])
def test_a_question_with_emoticons_is_answered(knowledge: Knowledge, message: str, item: str) -> None:
    understood = knowledge.understand(message)
    assert (understood.intent, understood.match.item) == ("faq", item), understood
    assert not any(face in understood.normalized for face in ("捂脸", "难过", "疑问", "握手"))


@pytest.mark.parametrize(("message", "intent"), [
    ("[强]", "thanks"), ("👍", "thanks"), ("[抱拳][抱拳]", "thanks"), ("[玫瑰]", "thanks"),
    ("[玫瑰]谢谢", "thanks"), ("[微笑]", "greeting"),
])
def test_emoticons_alone_are_small_talk(knowledge: Knowledge, message: str, intent: str) -> None:
    assert knowledge.understand(message).intent == intent
