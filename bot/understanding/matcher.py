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
    oov_factor: float = 0.3          # weight of a gram no item uses, relative to the rarest gram
    alias_field: float = 1.0         # field weights: name and aliases ...
    question_field: float = 0.9      # ... residents' questions ...
    body_field: float = 0.5          # ... conditions and steps (vocabulary residents use to describe)
    coverage_weight: float = 0.50
    evidence_weight: float = 0.0
    evidence_scale: float = 10.0     # matched weight at which evidence reaches 63% (1 - 1/e)
    phrase_weight: float = 0.17
    fuzzy_weight: float = 0.33
    fuzzy_floor: float = 0.0         # rapidfuzz ratio of unrelated strings; similarity above it counts
    answer_min: float = 55.0         # below: never answer outright
    answer_margin: float = 8.0       # lead over the runner-up needed to answer
    clarify_min: float = 38.0        # below: fall back
    clarify_window: float = 10.0     # runners-up within this of the top are offered
    shortlist: int = 40
    max_candidates: int = 5


@dataclass(frozen=True)
class Phrase:
    """One short phrase (name or alias): grams with their total weight, for completeness."""

    grams: frozenset[str]
    total: float


@dataclass(frozen=True)
class Features:
    """Per-item evidence, kept separate so the decision (and tuning) can look at each."""

    overlap: float      # weighted share of the question explained by the item (0–1)
    evidence: float     # matched weight itself, saturated to 0–1: long questions carry more of it
    phrase: float       # completeness of the best name/alias found in the question (0–1)
    fuzzy: float        # rapidfuzz similarity of pinyin to the closest phrase (0–1)
    score: float        # combined, 0–100


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


def item_fields(item: ServiceItem) -> dict[str, list[str]]:
    """The texts of an item that questions are compared with, by field."""
    return {"alias": [item.name, *item.aliases], "question": list(item.questions),
            "body": [*item.conditions, *item.steps]}


class Matcher:
    """An index over items, built once per knowledge snapshot."""

    def __init__(self, items: Sequence[ServiceItem], core: CoreFn, settings: MatcherSettings | None = None) -> None:
        self.settings = settings or MatcherSettings()
        self._core = core
        self.ids: tuple[str, ...] = tuple(item.id for item in items)
        self._position = {ident: index for index, ident in enumerate(self.ids)}
        field_weight = {"alias": self.settings.alias_field, "question": self.settings.question_field,
                        "body": self.settings.body_field}
        item_grams: list[dict[str, float]] = []   # gram -> best field weight, per item
        self._exact: dict[str, set[int]] = defaultdict(set)
        cores: list[tuple[int, str, tuple[str, ...]]] = []
        self._pinyin: list[list[str]] = []
        for index, item in enumerate(items):
            grams: dict[str, float] = {}
            pinyins: list[str] = []
            for name, texts in item_fields(item).items():
                for text in texts:
                    segments = core(text)
                    for gram in grams_of(segments):
                        grams[gram] = max(grams.get(gram, 0.0), field_weight[name])
                    if name != "body" and segments:
                        pinyins.append(pinyin_string(segments))
                        self._exact["".join(segments)].add(index)
                    if name == "alias":
                        cores.append((index, text, segments))
            item_grams.append(grams)
            self._pinyin.append(pinyins)
        self._weights = self._idf([set(g) for g in item_grams])
        self._item_grams = item_grams
        self._postings = _postings(item_grams)
        self._phrases: list[list[Phrase]] = [[] for _ in items]
        for index, _, segments in cores:
            grams = frozenset(grams_of(segments))
            if grams:
                self._phrases[index].append(Phrase(grams, sum(self._weights[g] for g in grams)))

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

    def features(self, normalized: str, only: Iterable[str] | None = None) -> list[tuple[Features, str]]:
        """(features, id) best first, over the shortlist (or over ``only`` when given)."""
        segments = self._core(normalized)
        grams = grams_of(segments)
        if not grams:
            return []
        weights = {g: self._gram_weight(g) for g in grams}
        total = sum(weights.values())
        exact = self._exact.get("".join(segments), set())
        if only is not None:
            shortlist = [self._position[i] for i in only if i in self._position]
            overlap = {i: sum(w * self._item_grams[i].get(g, 0.0) for g, w in weights.items()) for i in shortlist}
        else:
            overlap = self._accumulate(weights)
            shortlist = heapq.nlargest(self.settings.shortlist, overlap, key=overlap.__getitem__)
            shortlist.extend(i for i in exact if i not in shortlist)
        query_pinyin = pinyin_string(segments)
        scored = [(self._features(i, grams, weights, total, overlap.get(i, 0.0), query_pinyin, i in exact),
                   self.ids[i]) for i in shortlist]
        scored.sort(key=lambda pair: (-pair[0].score, pair[1]))
        return scored

    def scores(self, normalized: str, only: Iterable[str] | None = None) -> list[tuple[float, str]]:
        """(score, id) best first."""
        return [(f.score, ident) for f, ident in self.features(normalized, only)]

    def _accumulate(self, weights: Mapping[str, float]) -> dict[int, float]:
        """Field-weighted sum of matched gram weights per item, touching only the question's postings."""
        overlap: dict[int, float] = defaultdict(float)
        for gram, weight in weights.items():
            for index, field_weight in self._postings.get(gram, ()):
                overlap[index] += weight * field_weight
        return overlap

    def _features(self, index: int, grams: set[str], weights: Mapping[str, float], total: float,
                  overlap: float, query_pinyin: str, exact: bool) -> Features:
        """Combine coverage, best-alias completeness and rapidfuzz similarity into 0–100."""
        s = self.settings
        best_phrase = 0.0
        for phrase in self._phrases[index]:
            shared = sum(weights[g] for g in grams & phrase.grams)
            if phrase.total:
                best_phrase = max(best_phrase, shared / phrase.total)
        fuzzy = 0.0
        if self._pinyin[index] and query_pinyin:
            best = process.extractOne(query_pinyin, self._pinyin[index], scorer=fuzz.ratio)
            fuzzy = best[1] / 100 if best else 0.0
        coverage = overlap / total if total else 0.0
        evidence = 1 - math.exp(-overlap / s.evidence_scale)
        fuzzy = max(0.0, fuzzy - s.fuzzy_floor) / (1 - s.fuzzy_floor)
        score = 100.0 if exact else 100 * (s.coverage_weight * coverage + s.evidence_weight * evidence
                                           + s.phrase_weight * best_phrase + s.fuzzy_weight * fuzzy)
        return Features(coverage, evidence, best_phrase, fuzzy, score)

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


def _postings(item_grams: list[dict[str, float]]) -> dict[str, tuple[tuple[int, float], ...]]:
    """gram -> ((item, field weight), ...)."""
    postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for index, grams in enumerate(item_grams):
        for gram, field_weight in grams.items():
            postings[gram].append((index, field_weight))
    return {g: tuple(v) for g, v in postings.items()}
