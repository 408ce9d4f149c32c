"""Text helpers of :mod:`bot.understanding.grams` that stand in for slower standard ones.

Why these tests: :class:`WordScan` replaces a regular expression (an alternation of a thousand escaped
words) for speed, and the matcher's decisions rely on it finding exactly what that expression finds —
the same occurrences, and where several words start at one place the one listed first.
"""

from __future__ import annotations

import random
import re

import pytest

from bot.understanding.grams import WordScan


def _alternation(words: list[str], text: str) -> list[tuple[int, int, str]]:
    pattern = re.compile("|".join(map(re.escape, words)))
    return [(m.start(), m.end(), m.group(0)) for m in pattern.finditer(text)]


@pytest.mark.parametrize(("words", "text"), [
    (["户口", "户口迁移"], "户口迁移咋个办"),          # the shorter listed first wins, as in the alternation
    (["户口迁移", "户口"], "户口迁移咋个办"),          # ... and the longer when it is listed first
    (["领养", "养老金"], "领养老金要带啥"),            # no overlap: 养老金 starts inside 领养
    (["保姆", "姆"], "请保姆保姆"),                    # adjacent occurrences
    (["a.b", "(c)"], "xa.b(c)axb"),                   # literal, not pattern, characters
    (["驾照"], "低保咋个申请"),                        # none
    (["驾照"], ""),
])
def test_word_scan_finds_what_the_alternation_finds(words: list[str], text: str) -> None:
    assert WordScan(words).find(text) == _alternation(words, text)
    assert WordScan(words).sub(" ", text) == re.sub("|".join(map(re.escape, words)), " ", text)


def test_word_scan_agrees_with_the_alternation_on_random_lists() -> None:
    rng = random.Random(7)
    for _ in range(500):
        alphabet = "ab低保卡"
        words = list({"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 4)))
                      for _ in range(rng.randrange(1, 10))})
        rng.shuffle(words)
        scan = WordScan(words)
        for _ in range(10):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 25)))
            assert scan.find(text) == _alternation(words, text), (words, text)
