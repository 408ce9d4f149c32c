"""Text to matching units and grams: characters, character bigrams and folded-pinyin bigrams.

Pure functions of text, shared by the item index (scoring), the anchors and the decision rules, so
that every reader cuts a question the same way: units (one CJK character, digit or run of ASCII
letters), grams (``u``/``b``/``p``, never across segments), the anchor grams a question offers (also
across one particle), pinyin keys for homophones, a loose substring search (a word with a
character or two inside it) and a scan for the words of a long list (:class:`WordScan`).
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from bot.understanding.phonetic import syllable, toneless

_UNIT = re.compile(r"[a-z]+|[^\sa-z]")


def units(segment: str) -> list[str]:
    """A segment as matching units: one CJK character or digit, or one run of ASCII letters.

    Digits are single units so that 2级 (from 二级) still shares a bigram with 12级 (from 一二级)."""
    return _UNIT.findall(segment)


def grams_of(segments: Iterable[str]) -> set[str]:
    """Unigrams (``u``), bigrams (``b``) and folded-pinyin bigrams (``p``); never across segments."""
    out: set[str] = set()
    for segment in segments:
        parts = units(segment)
        keys = [syllable(u) if len(u) == 1 else u for u in parts]
        for index, unit in enumerate(parts):
            out.add("u" + unit)
            if index:
                out.add("b" + parts[index - 1] + unit)
                out.add("p" + keys[index - 1] + "|" + keys[index])
    return out


def anchor_grams(core: Iterable[str], normalized: str, grams: set[str] | None = None) -> set[str]:
    """Bigrams a question offers as anchors: the core's character and folded-pinyin bigrams, plus
    character bigrams of the normalised text before stop words are cut out, also skipping one character.
    ``grams``: the core's :func:`grams_of`, when the caller has them already (they are scored too).

    Why: residents put particles inside words — 离了婚, 参过战 — and cutting 了/的 out splits the word
    in two, so its bigram (离婚, 参战) never forms in the core. Only exact characters count across the
    cut: folded pinyin there collides too easily (补贴什么 would meet 津贴申领)."""
    out = {g for g in (grams_of(core) if grams is None else grams) if g[0] != "u"}
    for segment in normalized.split(" "):
        parts = units(segment)
        for index in range(1, len(parts)):
            out.add("b" + parts[index - 1] + parts[index])
            if index >= 2:
                out.add("b" + parts[index - 2] + parts[index])
    return out


def pinyin_key(text: str) -> str:
    """Toneless syllables (not folded: 那种交 must not read as 宗教) of a text without spaces, joined
    by ``|``, one per character."""
    return "|".join(map(toneless, text))


def sound_units(segments: Iterable[str]) -> tuple[str, ...]:
    """The folded toneless syllable of every unit of the segments (a digit or a run of letters as it
    is): what the pinyin view compares, one symbol per syllable (see ``ItemIndex.sound``)."""
    return tuple(syllable(u) if len(u) == 1 else u for s in segments for u in units(s))


def remove_loosely(text: str, term: str, slack: int = 2) -> str | None:
    """``text`` with ``term`` cut out (a space left in its place), allowing up to ``slack`` other
    characters inside it (残疾人有补贴 contains 残疾人补贴, leaving 有); ``None`` when absent."""
    if term in text:
        return text.replace(term, " ")
    start = text.find(term[0])
    while start >= 0:
        positions, position = [start], start
        for ch in term[1:]:
            position = text.find(ch, position + 1)
            if position < 0 or position - start >= len(term) + slack:
                break
            positions.append(position)
        if len(positions) == len(term):
            inner = "".join(text[i] for i in range(start, positions[-1] + 1) if i not in positions)
            return text[:start] + " " + inner + " " + text[positions[-1] + 1:]
        start = text.find(term[0], start + 1)
    return None


class WordScan:
    """Where the words of a list occur in a text: left to right, without overlap, and where several
    start at the same place the one listed first — exactly what
    ``re.compile("|".join(map(re.escape, words))).finditer`` finds.

    Why not that regular expression: ``re`` builds no trie from an alternation; it tries every word in
    turn wherever one could start, so a list of a thousand words (``[out_of_scope]``) cost about a
    microsecond per character, several scans per question. Here only the words starting with the
    character at hand are tried."""

    def __init__(self, words: Sequence[str]) -> None:
        by_first: dict[str, list[str]] = {}
        for word in words:
            if word:
                by_first.setdefault(word[0], []).append(word)
        self._by_first = {first: tuple(group) for first, group in by_first.items()}

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, word) of every occurrence, in order."""
        found: list[tuple[int, int, str]] = []
        by_first, starts = self._by_first, text.startswith
        position, size = 0, len(text)
        while position < size:
            for word in by_first.get(text[position], ()):
                if starts(word, position):
                    found.append((position, position + len(word), word))
                    position += len(word)
                    break
            else:
                position += 1
        return found

    def sub(self, replacement: str, text: str) -> str:
        """``text`` with every occurrence replaced (like ``re.sub`` with the alternation)."""
        pieces: list[str] = []
        last = 0
        for start, end, _ in self.find(text):
            pieces += (text[last:start], replacement)
            last = end
        pieces.append(text[last:])
        return "".join(pieces)


def occurring(term: str, text: str) -> list[tuple[int, int]]:
    """(start, end) of each occurrence of ``term`` in ``text``, left to right and not overlapping (what
    ``re.finditer(re.escape(term), text)`` finds, without escaping and compiling the term each time);
    none for an empty term."""
    spans: list[tuple[int, int]] = []
    start = text.find(term) if term else -1
    while start >= 0:
        spans.append((start, start + len(term)))
        start = text.find(term, start + len(term))
    return spans
