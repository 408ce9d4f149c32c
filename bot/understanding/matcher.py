"""Match a normalised question to service items: answer, clarify or fall back.

How, and why this way:

* **Index, not a loop.** Every FAQ phrase (name, aliases, questions) is cut into grams: characters,
  character bigrams and folded-pinyin bigrams (so 失叶 meets 失业). An inverted index maps each gram to
  the items using it; a question touches only the postings of its own grams, which keeps a
  province-sized catalogue (thousands of items) within a few milliseconds.
* **IDF weights.** A gram found in one item (低保, 残疾) says much more than one found everywhere
  (办, 证), so every sum below is IDF-weighted; grams no item uses (护照, 天气) still count in the
  question's total, which is what makes an out-of-scope question score low and fall back.
* **Three views of fit**, combined into one 0–100 score:
  ``coverage``: how much of the question the item's vocabulary explains;
  ``phrase``: how completely the best single phrase of the item (an alias, say) appears in the
  question; and ``fuzzy``: rapidfuzz similarity of folded-pinyin strings of the question and the best
  phrase, which rewards questions worded like a FAQ question despite typos and homophones.
* **Calibrated decision.** ``answer`` when the top score is high and clearly ahead; ``clarify``
  with the close runners-up when several are near the top; ``fallback`` when the top is low.

The matcher is pure: no I/O, no clock, no randomness; the same snapshot always gives the same result.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from rapidfuzz import fuzz, process

from bot.understanding.model import MatchResult, ServiceItem
from bot.understanding.phonetic import syllable

#: A question's core: the segments left after stop words and aspect phrases are removed.
CoreFn = Callable[[str], tuple[str, ...]]

_UNIT = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


@dataclass(frozen=True)
class MatcherSettings:
    """Weights and thresholds; tuned on ``tests/data/dev.tsv`` (never on the hold-out set)."""

    unigram_weight: float = 0.6
    bigram_weight: float = 1.0
    pinyin_weight: float = 0.7
    oov_factor: float = 0.8          # weight of a gram no item uses, relative to the rarest gram
    coverage_weight: float = 0.40
    phrase_weight: float = 0.35
    fuzzy_weight: float = 0.25
    answer_min: float = 55.0         # below: never answer outright
    answer_margin: float = 8.0       # lead over the runner-up needed to answer
    clarify_min: float = 38.0        # below: fall back
    clarify_window: float = 10.0     # runners-up within this of the top are offered
    shortlist: int = 40
    max_candidates: int = 5


@dataclass(frozen=True)
class Phrase:
    """One indexed phrase: its owner, grams with weights, and its pinyin string for rapidfuzz."""

    item: int
    text: str
    grams: frozenset[str]
    total: float
    pinyin: str


def units(segment: str) -> list[str]:
    """A segment as matching units: one CJK character, or one run of ASCII letters/digits."""
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


def pinyin_string(segments: Iterable[str]) -> str:
    """Folded pinyin of the segments, one token per unit (input for rapidfuzz)."""
    return " ".join(syllable(u) if len(u) == 1 else u for s in segments for u in units(s))


class Matcher:
    """An index over items, built once per knowledge snapshot."""

    def __init__(self, items: Sequence[ServiceItem], core: CoreFn, settings: MatcherSettings | None = None) -> None:
        self.settings = settings or MatcherSettings()
        self._core = core
        self.ids: tuple[str, ...] = tuple(item.id for item in items)
        self._position = {ident: index for index, ident in enumerate(self.ids)}
        raw = [(index, text) for index, item in enumerate(items) for text in phrase_texts(item)]
        cores = [(index, text, core(text)) for index, text in raw]
        item_grams: list[set[str]] = [set() for _ in items]
        for index, _, segments in cores:
            item_grams[index] |= grams_of(segments)
        self._weights = self._idf(item_grams)
        self._postings: dict[str, tuple[int, ...]] = _postings(item_grams)
        self._exact: dict[str, set[int]] = defaultdict(set)
        self._phrases: list[list[Phrase]] = [[] for _ in items]
        for index, text, segments in cores:
            grams = frozenset(grams_of(segments))
            if not grams:
                continue
            self._exact["".join(segments)].add(index)
            phrase = Phrase(index, text, grams, sum(self._weights[g] for g in grams), pinyin_string(segments))
            self._phrases[index].append(phrase)

    def _idf(self, item_grams: list[set[str]]) -> dict[str, float]:
        """IDF per gram, scaled by the gram type's weight."""
        count = max(len(item_grams), 1)
        df: dict[str, int] = defaultdict(int)
        for grams in item_grams:
            for gram in grams:
                df[gram] += 1
        return {g: self._type_weight(g) * math.log(1 + count / n) for g, n in df.items()}

    def _type_weight(self, gram: str) -> float:
        s = self.settings
        return {"u": s.unigram_weight, "b": s.bigram_weight, "p": s.pinyin_weight}[gram[0]]

    def _gram_weight(self, gram: str) -> float:
        known = self._weights.get(gram)
        if known is not None:
            return known
        rarest = math.log(1 + max(len(self.ids), 1))
        return self._type_weight(gram) * rarest * self.settings.oov_factor

    def scores(self, normalized: str, only: Iterable[str] | None = None) -> list[tuple[float, str]]:
        """(score, id) best first, over the shortlist (or over ``only`` when given)."""
        segments = self._core(normalized)
        grams = grams_of(segments)
        if not grams:
            return []
        weights = {g: self._gram_weight(g) for g in grams}
        total = sum(weights.values())
        exact = self._exact.get("".join(segments), set())
        if only is not None:
            shortlist = [self._position[i] for i in only if i in self._position]
            overlap = {i: sum(weights[g] for g in grams if g in self._item_gram_set(i)) for i in shortlist}
        else:
            overlap = self._accumulate(weights)
            shortlist = heapq.nlargest(self.settings.shortlist, overlap, key=overlap.__getitem__)
            shortlist.extend(i for i in exact if i not in shortlist)
        query_pinyin = pinyin_string(segments)
        scored = [(self._score(i, grams, weights, total, overlap.get(i, 0.0), query_pinyin, i in exact), self.ids[i])
                  for i in shortlist]
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return scored

    def _item_gram_set(self, index: int) -> frozenset[str]:
        return frozenset().union(*(p.grams for p in self._phrases[index]))

    def _accumulate(self, weights: Mapping[str, float]) -> dict[int, float]:
        """Sum of matched gram weights per item, touching only the postings of the question's grams."""
        overlap: dict[int, float] = defaultdict(float)
        for gram, weight in weights.items():
            for index in self._postings.get(gram, ()):
                overlap[index] += weight
        return overlap

    def _score(self, index: int, grams: set[str], weights: Mapping[str, float], total: float,
               overlap: float, query_pinyin: str, exact: bool) -> float:
        """Combine coverage, best-phrase completeness and rapidfuzz similarity into 0–100."""
        if exact:
            return 100.0
        s = self.settings
        phrases = self._phrases[index]
        best_phrase = 0.0
        for phrase in phrases:
            shared = sum(weights[g] for g in grams & phrase.grams)
            completeness = shared / phrase.total if phrase.total else 0.0
            best_phrase = max(best_phrase, completeness * min(1.0, shared / total * 2))
        fuzzy = 0.0
        if phrases and query_pinyin:
            best = process.extractOne(query_pinyin, [p.pinyin for p in phrases], scorer=fuzz.ratio)
            fuzzy = best[1] / 100 if best else 0.0
        coverage = overlap / total if total else 0.0
        return 100 * (s.coverage_weight * coverage + s.phrase_weight * best_phrase + s.fuzzy_weight * fuzzy)

    def match(self, normalized: str) -> MatchResult:
        """Decide answer / clarify / fallback for one normalised question."""
        return decide(self.scores(normalized), self.settings)


def decide(scored: Sequence[tuple[float, str]], s: MatcherSettings) -> MatchResult:
    """The calibrated three-way decision on a best-first score list."""
    if not scored or scored[0][0] < s.clarify_min:
        top = scored[0][0] if scored else 0.0
        return MatchResult("fallback", None, (), round(top, 2))
    top, best = scored[0]
    runner_up = scored[1][0] if len(scored) > 1 else 0.0
    if top >= s.answer_min and top - runner_up >= s.answer_margin:
        return MatchResult("answer", best, (best,), round(top, 2))
    close = [ident for score, ident in scored if score >= top - s.clarify_window and score >= s.clarify_min]
    close = close[: s.max_candidates]
    if len(close) == 1:
        if top >= s.answer_min:
            return MatchResult("answer", best, (best,), round(top, 2))
        close = [ident for _, ident in scored[:2]]
    return MatchResult("clarify", None, tuple(close), round(top, 2))


def phrase_texts(item: ServiceItem) -> list[str]:
    """The texts of an item that residents' questions are compared with."""
    return [item.name, *item.aliases, *item.questions]


def _postings(item_grams: list[set[str]]) -> dict[str, tuple[int, ...]]:
    postings: dict[str, list[int]] = defaultdict(list)
    for index, grams in enumerate(item_grams):
        for gram in grams:
            postings[gram].append(index)
    return {g: tuple(v) for g, v in postings.items()}
