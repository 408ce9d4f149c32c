"""Pinyin typed without choosing characters, read back into the knowledge's characters
(``bot.understanding.typed_pinyin``): the decoder on small corpora of its own, then the shipped
knowledge end to end. The questions are written for these tests."""

from __future__ import annotations

import random

import pytest

from bot.understanding.knowledge import Knowledge
from bot.understanding.typed_pinyin import MAX_RUN, MAX_RUNS, PinyinDecoder

CORPUS = ["结婚证在哪里办", "低保怎么申请", "地址在哪里", "低保要带什么材料", "残疾证怎么办"]


@pytest.fixture(scope="module")
def decoder() -> PinyinDecoder:
    return PinyinDecoder(CORPUS)


@pytest.mark.parametrize(("typed", "read"), [
    ("jie hun zheng", "结婚证"),
    ("jiehunzheng", "结婚证"),          # no spaces: split into syllables
    ("jie hun zen", "结婚证"),          # as said in Sichuan: zh typed as z
    ("di bao", "低保"),
    ("di zhi", "地址"),                 # the same di, told apart by what follows
    ("can ji zheng zen me ban", "残疾证怎么办"),
])
def test_a_run_is_read_into_the_corpus_characters(decoder: PinyinDecoder, typed: str, read: str) -> None:
    assert decoder.decode(typed) == read


def test_only_the_letters_change(decoder: PinyinDecoder) -> None:
    assert decoder.decode("jie hun zheng在哪里办 带啥子") == "结婚证在哪里办 带啥子"
    assert decoder.decode("我的di bao 2个月没到") == "我的低保 2个月没到"


def test_the_neighbouring_character_is_context() -> None:
    """特福 is the commoner reading of te fu here, but before 金 the knowledge writes 特扶."""
    decoder = PinyinDecoder(["特扶金", "特福", "特福", "特福"])
    assert decoder.decode("te fu") == "特福"
    assert decoder.decode("te fu金") == "特扶金"


@pytest.mark.parametrize("typed", ["app", "hpv疫苗", "xdm", "ok", "man", "a", "hello", "ATM取款机".lower()])
def test_words_that_are_no_pinyin_stay_as_typed(decoder: PinyinDecoder, typed: str) -> None:
    """Letters that do not split into syllables, or a single syllable, are as likely English or a sigh."""
    assert decoder.decode(typed) == typed


def test_runs_are_bounded(decoder: PinyinDecoder) -> None:
    too_long = "di bao " * (MAX_RUN // 7 + 1)
    assert decoder.decode(too_long.strip()) == too_long.strip()
    many = "1".join(["dibao"] * (MAX_RUNS + 2))
    assert decoder.decode(many) == "1".join(["低保"] * MAX_RUNS + ["dibao"] * 2)


def test_an_empty_knowledge_reads_nothing() -> None:
    assert PinyinDecoder([]).decode("jie hun zheng") == "jie hun zheng"


@pytest.mark.parametrize(("question", "item"), [
    ("jie hun zheng yao dai sha zi", "civil.marriage-registration"),
    ("te kun ren yuan咋个申请", "civil.extreme-poverty"),
    ("gao ling bu tie zen me ling", "civil.elderly-allowance"),
    ("ju zhu zheng在哪里办", "police.residence-permit"),
    ("我爸的can ji zheng到期了", "disability.card-renew"),
])
def test_typed_pinyin_is_answered(knowledge: Knowledge, question: str, item: str) -> None:
    result = knowledge.match(question)
    assert (result.action, result.item) == ("answer", item), (knowledge.normalize(question), result)


def test_typed_pinyin_greets_and_asks_aspects(knowledge: Knowledge) -> None:
    assert knowledge.understand("ni hao").intent == "greeting"
    understood = knowledge.understand("di bao yao duo jiu")
    assert (understood.match.item, understood.aspect) == ("civil.dibao", "time")


def test_typed_pinyin_about_an_out_of_scope_matter_falls_back(knowledge: Knowledge) -> None:
    """The out-of-scope topics are part of the dictionary: 驾照 is read as such, and told apart."""
    understood = knowledge.understand("jia zhao dao qi le zen me huan")
    assert "驾照" in understood.normalized and understood.match.action == "fallback", understood


def test_what_typed_pinyin_reads_is_rewritten_in_turn(knowledge: Knowledge) -> None:
    """you sha → 有啥, which the dialect rewrites make 有什么, as if it had been typed in characters."""
    understood = knowledge.understand("wo ma 82 sui le you sha bu tie")
    assert "有什么" in understood.normalized, understood.normalized
    assert understood.match.item == "civil.elderly-allowance", understood


def test_arbitrary_letters_never_break_the_normaliser(decoder: PinyinDecoder) -> None:
    """Every mix of letters, spaces and characters decodes to something without raising; what is not
    pinyin is kept (a resident always gets a reply)."""
    rng = random.Random(7)
    alphabet = "aeiouvngzhcsxjqlrbpmfdtkwy  低保证"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
        out = decoder.decode(text)
        assert isinstance(out, str) and len(out) <= len(text)
