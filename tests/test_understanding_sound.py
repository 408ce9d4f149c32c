"""The pinyin view compares syllables, not letters (round 15).

Before this round the fuzzy view (rapidfuzz over folded pinyin) compared the letters of the syllables,
spaces included: every pair of texts shared spaces and common letters (jin and yin, zheng and zhen),
so all items looked about half alike and the view told them apart weakly. Each syllable is now one
symbol: two texts are alike by the sounds they share. The questions below are from the readable sets
and are answered with a neighbour item by the letter-level view (session 10's code).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
from rapidfuzz import fuzz

from bot.understanding.grams import sound_units
from bot.understanding.knowledge import Knowledge
from tests.test_understanding_helpers import ROOT, assert_decided


def sound(knowledge: Knowledge, *segments: str) -> str:
    """A text as the pinyin view of the shipped index compares it."""
    return knowledge.matcher.index.sound(sound_units(segments))


def test_one_symbol_per_syllable(knowledge: Knowledge) -> None:
    assert len(sound(knowledge, "失业金", "咋个领")) == 6
    assert len(sound(knowledge, "12级")) == 3  # a digit is a unit of its own, as in the grams


def test_homophones_sound_the_same(knowledge: Knowledge) -> None:
    assert sound(knowledge, "失叶金") == sound(knowledge, "失业金")
    assert sound(knowledge, "身分证") == sound(knowledge, "身份证")


def test_different_syllables_share_nothing(knowledge: Knowledge) -> None:
    """金 (jin) and 银 (yin) share two letters of three; as sounds they share none."""
    assert fuzz.ratio(sound(knowledge, "金"), sound(knowledge, "银")) == 0
    assert fuzz.ratio(sound(knowledge, "低保金"), sound(knowledge, "低保银")) == pytest.approx(200 / 3)


def test_a_sound_no_item_uses_matches_nothing(knowledge: Knowledge) -> None:
    """Syllables outside the items' texts are one code that no phrase holds: nothing to keep per input."""
    coded = sound(knowledge, "鑫")  # xin: a sound of no item's name, alias or question? then \0
    index = knowledge.matcher.index
    if coded == "\0":
        assert all("\0" not in phrase for own in index.phrase_sounds for phrase in own)
    assert sound(knowledge, "zzqx") == "\0"  # a run of letters no item uses


def test_the_codes_are_the_same_in_every_process(knowledge: Knowledge) -> None:
    """The matcher is pure: a fresh interpreter (another hash seed) codes a text the same way."""
    code = ("from bot.understanding.loader import load_knowledge; from bot.understanding.grams import sound_units; "
            "k, _ = load_knowledge('faq', 'intents'); print(ascii(k.matcher.index.sound(sound_units(('养老保险', '12')))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip().splitlines()[-1] == ascii(sound(knowledge, "养老保险", "12"))


def test_the_commonest_sounds_are_one_byte(knowledge: Knowledge) -> None:
    """rapidfuzz compares one-byte strings fastest: the items' common syllables get codes below 256."""
    index = knowledge.matcher.index
    phrases = [phrase for own in index.phrase_sounds for phrase in own]
    assert sum(all(ord(c) < 256 for c in phrase) for phrase in phrases) >= 0.95 * len(phrases)


def test_the_lift_is_added_to_every_shortlisted_item(knowledge: Knowledge) -> None:
    """``fuzzy_lift`` keeps the scores where the thresholds were calibrated; it moves every item alike."""
    flat = Knowledge.build(list(knowledge.items.values()), knowledge.intents,
                           replace(knowledge.matcher.settings, fuzzy_lift=0.0))
    question = knowledge.normalize("失业金咋个领")
    lifted = {ident: f.fuzzy for f, ident in knowledge.matcher.features(question)}
    plain = {ident: f.fuzzy for f, ident in flat.matcher.features(question)}
    lift = knowledge.matcher.settings.fuzzy_lift
    assert lift > 0 and set(lifted) == set(plain)
    assert all(lifted[i] == pytest.approx(min(1.0, plain[i] + lift)) for i in plain)


#: Answered with the neighbour in brackets by the letter-level view.
BY_SOUND = [
    ("社区能不能把我们认定成收入低的家庭，娃娃读大学申请助学金要用", "civil.low-income-family"),  # fell back
    ("3组唐建，37岁，外省务工期间急诊住院未备案，费用全部自付，返乡后申请报销需要什么？",
     "medins.manual-reimbursement"),                                                # medical assistance
    ("原来单位交的职工医保，现在没工作了，要改成居民医保咋办", "medins.resident-enroll"),  # transfer
    ("喂 我是黄家坝村三组的 姓王 电话一三八九零零一二三四五 我们屋头四个人 一年收入不到八千块 "
     "那个政府兜底的生活费能不能申请 申请了要好久批", "civil.dibao"),                # asked back with 特困
    ("我在办残疾证的时候认识了一个医生 想要他的电话", None),                         # new disability card
    ("老人过生日想订个蛋糕", None),                                                  # elderly allowance
]


@pytest.mark.parametrize(("question", "expected"), BY_SOUND)
def test_sounds_shared_decide_not_letters(knowledge: Knowledge, question: str, expected: str | None) -> None:
    assert_decided(knowledge.match(question), expected)
