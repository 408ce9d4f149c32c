"""Pinyin typed without choosing characters ("jie hun zheng在哪里办", "gao ling bu tie zen me ling"),
read back into the characters the knowledge itself uses.

Why: some residents, older ones above all, type on a pinyin keyboard and send the letters without
picking the characters, or cannot find them. The letters share no character gram with any item, so
such a question fell back however plainly it named the item. Admins can list pinyin words in
``intents/`` (``"dibao" = "低保"``), but a list never covers "te kun ren yuan" or "can ji zheng".

How: like a pinyin keyboard, with the knowledge's own texts (items' names, aliases, questions,
conditions and steps; the intents' phrases) as its dictionary.

* **Syllables.** A run of letters is read as pinyin only when it splits wholly into syllables that
  some character of the knowledge is read as (spaces, where typed, are syllable boundaries); "app",
  "hpv" or "xdm" do not split and stay as typed. A run of fewer than two syllables stays too: "man" or
  "a" alone is as likely English or a sigh as pinyin.
* **Characters.** Each syllable may be any character read the same once the Sichuan folds are applied
  (zh/z, ch/c, sh/s, n/l, -ng/-n: a resident types what they say, "zen" for 证), and the sequence of
  characters most likely under a character bigram model of the knowledge's texts is chosen (a
  Viterbi search over the lattice of splits and characters), starting from the character before the
  run and ending at the one after it when there are: "te fu金" ends at 金.

The decoder only reads characters the knowledge uses, so what it writes can meet an item's grams; a
character it chose wrongly still shares the item's folded pinyin, which the index scores too.
Pure and deterministic; built once per knowledge snapshot (a few ms), the decoding of one run is
bounded by ``MAX_RUN`` letters and ``MAX_RUNS`` runs.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from typing import Iterable

from bot.understanding.phonetic import fold, toneless

#: A syllable is at most six letters (zhuang, shuang).
MAX_SYLLABLE = 6
#: Longer runs of letters are left as typed (no resident types a paragraph of pinyin; a hostile message
#: must not cost a long search).
MAX_RUN = 60
#: Runs read per text; the rest stay as typed (a question holds one or two; this bounds a hostile one).
MAX_RUNS = 8
#: Ways kept of splitting one token into syllables (pinyin is nearly prefix-free: xian, xi an).
MAX_WAYS = 4
#: Characters considered per syllable: the most frequent in the knowledge's texts.
MAX_CANDIDATES = 12
#: Bigram counts are mixed with the unigram model as count / (count + BACKOFF): a character seen
#: rarely before another says little about what follows it.
BACKOFF = 2.0

_LETTERS = re.compile(r"[a-z]+(?: +[a-z]+)*")
_HAN = re.compile(r"[\u3400-\u9fff]")
_VOWEL = re.compile("[aeiouv]")


class PinyinDecoder:
    """Reads runs of typed pinyin back into characters (see the module docstring)."""

    def __init__(self, texts: Iterable[str]) -> None:
        """``texts``: the knowledge's texts, lower-cased and simplified (see ``normalize.basic``)."""
        unigrams: Counter[str] = Counter()
        bigrams: dict[str, Counter[str]] = defaultdict(Counter)
        for text in texts:
            for piece in re.findall(r"[\u3400-\u9fff]+", text):
                unigrams.update(piece)
                for before, after in zip(piece, piece[1:]):
                    bigrams[before][after] += 1
        self._unigrams = unigrams
        self._bigrams = bigrams
        self._following = {ch: sum(after.values()) for ch, after in bigrams.items()}
        self._total = sum(unigrams.values())
        by_sound: dict[str, list[str]] = defaultdict(list)
        spellings: set[str] = set()
        for ch, _ in sorted(unigrams.items(), key=lambda pair: (-pair[1], pair[0])):
            reading = toneless(ch)
            if reading == ch or not reading.isascii() or not _VOWEL.search(reading):
                continue  # (嗯 read as "n" would make every n a syllable)
            spellings.update((reading, fold(reading)))
            by_sound[fold(reading)].append(ch)
        self._candidates = {sound: tuple(chars[:MAX_CANDIDATES]) for sound, chars in by_sound.items()}
        self._spellings = frozenset(spellings)

    def decode(self, text: str) -> str:
        """``text`` with every run of typed pinyin replaced by characters; the rest as it was."""
        if not self._total:
            return text
        out: list[str] = []
        last = 0
        for number, match in enumerate(_LETTERS.finditer(text)):  # (no letters, the usual case: one C scan)
            if number == MAX_RUNS:
                break
            chars = self._decode_run(match.group(0), text[:match.start()], text[match.end():])
            if chars is not None:
                out += [text[last:match.start()], chars]
                last = match.end()
        return "".join(out) + text[last:] if out else text

    def _decode_run(self, run: str, before: str, after: str) -> str | None:
        """The characters for one run of letters, or ``None`` when it is not pinyin (see the module)."""
        if len(run) > MAX_RUN:
            return None
        splits = [self._splits(token) for token in run.split()]
        if not all(splits) or sum(min(map(len, ways)) for ways in splits) < 2:
            return None
        left, right = before[-1:], after[:1]  # context only when the run touches a character
        return self._best(splits, left if _HAN.fullmatch(left) else "", right if _HAN.fullmatch(right) else "")

    def _splits(self, token: str) -> list[tuple[str, ...]]:
        """The ways ``token`` splits wholly into known syllables, fewest syllables first, at most
        ``MAX_WAYS`` (pinyin is nearly prefix-free: xian or xi an, fangan or fang an)."""
        ways: list[list[tuple[str, ...]]] = [[] for _ in range(len(token) + 1)]
        ways[0] = [()]
        for end in range(1, len(token) + 1):
            for start in range(max(0, end - MAX_SYLLABLE), end):
                if ways[start] and token[start:end] in self._spellings:
                    ways[end] += [way + (token[start:end],) for way in ways[start]]
            ways[end] = sorted(ways[end], key=len)[:MAX_WAYS]
        return ways[len(token)]

    def _best(self, splits: list[list[tuple[str, ...]]], left: str, right: str) -> str | None:
        """The likeliest characters over every split of every token (``splits``, per token: its ways
        into syllables; Viterbi, the states being the last character chosen)."""
        states: dict[str, tuple[float, str]] = {left: (0.0, "")}
        for ways in splits:
            merged: dict[str, tuple[float, str]] = {}
            for way in ways:
                current = states
                for syllable in way:
                    current = self._step(current, self._candidates.get(fold(syllable), ()))
                for ch, value in current.items():
                    if ch not in merged or value[0] > merged[ch][0]:
                        merged[ch] = value
            states = merged
            if not states:
                return None
        if right:
            states = {ch: (score + self._log_p(ch, right), text) for ch, (score, text) in states.items()}
        return max(states.values(), key=lambda value: (value[0], value[1]))[1] if states else None

    def _step(self, states: dict[str, tuple[float, str]], candidates: tuple[str, ...]
              ) -> dict[str, tuple[float, str]]:
        """Extend every state by one syllable's candidate characters, keeping the best path to each
        (none when there is no state or no candidate: the run is then left as typed)."""
        out: dict[str, tuple[float, str]] = {}
        if not states:
            return out
        for ch in candidates:
            out[ch] = max(((score + self._log_p(previous, ch), text + ch)
                           for previous, (score, text) in states.items()), key=lambda value: (value[0], value[1]))
        return out

    def _log_p(self, previous: str, ch: str) -> float:
        """log P(ch | previous): the bigram estimate mixed with the unigram one (add-one smoothed)."""
        unigram = (self._unigrams[ch] + 1) / (self._total + len(self._unigrams) + 1)
        following = self._bigrams.get(previous)
        if not following:
            return math.log(unigram)
        seen = self._following[previous]
        weight = seen / (seen + BACKOFF)
        return math.log(weight * following[ch] / seen + (1 - weight) * unigram)
