"""Fuzzy pinyin keys, so homophones typed by pinyin keyboards or heard by voice input still match.

Why fold: residents of 旺苍 speak Sichuanese, where zh/z, ch/c, sh/s, n/l and -ng/-n finals are not
distinguished, and voice input transcribes what it hears (失业 → 失叶, 身份证 → 身分证, 优待证 →
优待正). Comparing toneless, folded syllables makes those collide on purpose. One reading per
character (the most common) is enough because both sides of a comparison use the same reading.
"""

from __future__ import annotations

from functools import lru_cache

from pypinyin import Style, lazy_pinyin

_INITIAL_FOLDS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"))
_FINAL_FOLDS = (("ing", "in"), ("eng", "en"))


@lru_cache(maxsize=65536)
def syllable(ch: str) -> str:
    """Folded toneless syllable of one character; the character itself when it has none."""
    if not ("\u3400" <= ch <= "\u9fff"):
        return ch
    reading = lazy_pinyin(ch, style=Style.NORMAL, errors="default")[0]
    if not reading or reading == ch:
        return ch
    return fold(reading)


@lru_cache(maxsize=65536)
def toneless(ch: str) -> str:
    """Toneless syllable of one character, not folded (吴 and 五 meet, 种 and 宗 do not); the
    character itself when it has none. For short key words, where folding collides too often."""
    if not ("\u3400" <= ch <= "\u9fff"):
        return ch
    reading = lazy_pinyin(ch, style=Style.NORMAL, errors="default")[0]
    return reading if reading else ch


def fold(reading: str) -> str:
    """Apply the Sichuan/voice folds to a toneless syllable (``zheng`` → ``zen``)."""
    for source, target in _INITIAL_FOLDS:
        if reading.startswith(source):
            reading = target + reading[len(source):]
            break
    for source, target in _FINAL_FOLDS:
        if reading.endswith(source):
            reading = reading[: -len(source)] + target
            break
    return reading


def syllables(text: str) -> tuple[str, ...]:
    """Per-character keys of ``text`` (spaces dropped)."""
    return tuple(syllable(ch) for ch in text if not ch.isspace())
