"""WeChat's emoticons in a text message (``bot.understanding.emoticons``): cut before anything reads the
message, and read by name when a message holds nothing else. The messages are written for these tests."""

from __future__ import annotations

import pytest

from bot.understanding.emoticons import FACES, read_emoticons
from bot.understanding.knowledge import Knowledge


@pytest.mark.parametrize(("text", "read"), [
    ("[抱拳]请问低保咋个申请", " 请问低保咋个申请"),
    ("/::)残疾证咋办", " 残疾证咋办"),
    ("低保/::B", "低保 "),           # a code's letter is no word of the question
    ("医保咋个交👍", "医保咋个交 "),
    ("[强]", "强"),
    ("/:strong", "强"),              # the code, read as the face's name
    ("👍", "强"),                    # the everyday emoji that says the same
    ("[强][强]", "强 强"),
    ("🙏 🙏！", "抱拳 抱拳"),
])
def test_emoticons_are_cut_or_read_by_name(text: str, read: str) -> None:
    assert read_emoticons(text) == read


@pytest.mark.parametrize("text", ["低保咋个申请", "[低保]咋个申请", "a/:b", "", "😂"])
def test_other_text_is_left_alone(text: str) -> None:
    assert read_emoticons(text) == text


def test_every_classic_code_is_read_whole() -> None:
    """Longest code first: /::-O is one face (哈欠), not /::- and a letter O."""
    for code, name in FACES:
        assert read_emoticons(code) == name, code


@pytest.mark.parametrize(("message", "item"), [
    ("[捂脸][捂脸]社保卡丢了咋办", "hrss.social-security-card-replace"),
    ("/::<老人80岁了有补贴没[疑问]", "civil.elderly-allowance"),
    ("/:share/:share 想问下残疾人护理补贴咋个领", "disability.nursing-subsidy"),
])
def test_a_question_with_emoticons_is_answered(knowledge: Knowledge, message: str, item: str) -> None:
    understood = knowledge.understand(message)
    assert (understood.intent, understood.match.item) == ("faq", item), understood
    assert "捂脸" not in understood.normalized and "share" not in understood.normalized


@pytest.mark.parametrize(("message", "intent"), [
    ("[强]", "thanks"), ("👍", "thanks"), ("[抱拳][抱拳]", "thanks"), ("/:rose", "thanks"),
    ("[玫瑰]谢谢", "thanks"), ("[微笑]", "greeting"),
])
def test_emoticons_alone_are_small_talk(knowledge: Knowledge, message: str, intent: str) -> None:
    assert knowledge.understand(message).intent == intent
