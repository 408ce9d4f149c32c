"""Match a normalised question to service items: answer, clarify or fall back.

How, and why this way:

* **Index, not a loop.** Every FAQ text (name and aliases, questions, and — weighted lower —
  conditions and steps) is cut into grams: characters, character bigrams and folded-pinyin bigrams (so
  失叶 meets 失业). An inverted index maps each gram to the items using it; a question walks only the
  postings of its own *rarer* grams to shortlist items, which keeps a province-sized catalogue
  (thousands of items) within a few milliseconds; only the shortlist is scored in full.
* **IDF weights.** A gram found in one item (低保, 残疾) says much more than one found everywhere
  (办, 证), so every sum below is IDF-weighted; grams no item uses (护照, 天气) still count in the
  question's total, which keeps out-of-scope questions low.
* **Four views of fit**, combined into one 0–100 score: ``coverage`` (how much of the question the
  item's vocabulary explains), ``evidence`` (how much matched at all, saturating: long colloquial
  questions carry a lot of it), ``phrase`` (how completely the item's best name or alias appears in
  the question) and ``fuzzy`` (rapidfuzz ratio between the folded-pinyin syllables of the question and
  the item's closest name/alias/question, forgiving typos and homophones).
* **Decision.** ``fallback`` below a calibrated score, on too little specific evidence, or on an
  out-of-scope topic (``[out_of_scope]`` in intents/) with no item named outright; ``clarify`` when
  the question names two items joined by 和/或者, when it uses a generic word that names several items
  (``[ambiguous]``) and nothing else tells them apart, or when the top two tie; else ``answer``.
* **Anchors.** Whatever the score, an item is answered or offered only when the question holds an
  anchor of it: a character or folded-pinyin bigram of its name, an alias or a ``[cues]`` word that
  at most ``anchor_max_items`` items share. Out-of-scope questions ("想找个保姆", "孩子发烧了去哪家
  医院") always share some words with some item's *questions*; they rarely contain a piece of its
  name, an alias or a cue. Clarifies from ``[ambiguous]`` words and "A和B" are anchored by definition.

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

_UNIT = re.compile(r"[a-z]+|[^\sa-z]")


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
    coverage_weight: float = 0.40
    evidence_weight: float = 0.20
    evidence_scale: float = 20.0     # matched weight at which evidence reaches 63% (1 - 1/e)
    phrase_weight: float = 0.20
    fuzzy_weight: float = 0.40
    ambiguity_lead: float = 1.5      # a generic word (优待证) asks which item unless the rest of the
                                     # question gives one item this much more matched weight
    answer_min: float = 35.0         # below: never answer outright
    answer_margin: float = 0.5       # lead over the runner-up needed to answer (a tie asks instead)
    clarify_min: float = 35.0        # below: fall back
    clarify_window: float = 5.0      # runners-up within this of the top are offered
    out_of_scope_override: float = 70.0   # score at which an item wins despite an out-of-scope word
    min_evidence: float = 2.0        # matched weight (≈ IDF of one specific word) needed to answer at all
    min_units: int = 2               # a question of fewer characters answers only on an exact alias
    shortlist: int = 30
    shortlist_max_share: float = 0.05  # grams in more items than this share only score, never shortlist
    max_candidates: int = 5
    anchor_max_items: int = 8        # an anchor gram shared by more items than this is too generic
                                     # to anchor anything (社区, 孩子); it still scores


@dataclass(frozen=True)
class Phrase:
    """A name or alias as grams with their total weight, to measure how much of it a question has."""

    grams: frozenset[str]
    total: float


@dataclass(frozen=True)
class Features:
    """Per-item evidence, kept separate so the decision (and tuning) can look at each."""

    overlap: float      # weighted share of the question explained by the item (0–1)
    evidence: float     # matched weight itself, saturated to 0–1: long questions carry more of it
    matched: float      # matched weight, raw (IDF units): too little of it means nothing specific
    phrase: float       # completeness of the best name/alias found in the question (0–1)
    fuzzy: float        # rapidfuzz similarity of pinyin to the closest phrase (0–1)
    score: float        # combined, 0–100


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


def pinyin_string(segments: Iterable[str]) -> str:
    """Folded pinyin of the segments, one token per unit (input for rapidfuzz)."""
    return " ".join(syllable(u) if len(u) == 1 else u for s in segments for u in units(s))


def item_fields(item: ServiceItem) -> dict[str, list[str]]:
    """The texts of an item that questions are compared with, by field."""
    return {"alias": [item.name, *item.aliases], "question": list(item.questions),
            "body": [*item.conditions, *item.steps]}


class Matcher:
    """An index over items, built once per knowledge snapshot."""

    def __init__(self, items: Sequence[ServiceItem], core: CoreFn, settings: MatcherSettings | None = None,
                 ambiguous: Mapping[str, Sequence[str]] | None = None, out_of_scope: Iterable[str] = (),
                 cues: Mapping[str, Sequence[str]] | None = None) -> None:
        """``out_of_scope`` phrases must already be normalised like questions (not stripped);
        ``cues`` (item id → words, raw) are item-specific words besides the name and aliases."""
        self.settings = settings or MatcherSettings()
        self._core = core
        self.ids: tuple[str, ...] = tuple(item.id for item in items)
        self._position = {ident: index for index, ident in enumerate(self.ids)}
        field_weight = {"alias": self.settings.alias_field, "question": self.settings.question_field,
                        "body": self.settings.body_field}
        item_grams: list[dict[str, float]] = []     # gram -> best field weight, per item
        aliases: list[list[tuple[str, ...]]] = []   # cores of name and aliases, per item
        self._exact: dict[str, set[int]] = defaultdict(set)
        self._pinyin: list[list[str]] = []           # folded pinyin of name, aliases, questions
        for index, item in enumerate(items):
            grams: dict[str, float] = {}
            aliases.append([])
            self._pinyin.append([])
            for name, texts in item_fields(item).items():
                for segments in map(core, texts):
                    for gram in grams_of(segments):
                        grams[gram] = max(grams.get(gram, 0.0), field_weight[name])
                    if name != "body" and segments:
                        self._pinyin[index].append(pinyin_string(segments))
                        self._exact["".join(segments)].add(index)
                    if name == "alias" and segments:
                        aliases[index].append(segments)
            item_grams.append(grams)
        self._weights = self._idf([set(g) for g in item_grams])
        self._item_grams = item_grams
        self._postings = _postings(item_grams)
        cap = max(self.settings.shortlist, int(self.settings.shortlist_max_share * len(item_grams)))
        self._rare_postings = {g: p for g, p in self._postings.items() if len(p) <= cap}
        self._ambiguous = self._compile_ambiguous(ambiguous or {})
        self._out_of_scope = tuple(sorted({t.replace(" ", "") for t in out_of_scope if t.strip()}, key=len))
        # one compiled alternation: hundreds of topics cost one scan instead of one ``in`` per topic
        self._out_of_scope_re = re.compile("|".join(map(re.escape, self._out_of_scope))) if self._out_of_scope else None
        self._alias_cores = [tuple(j for j in ("".join(a) for a in own) if len(j) >= 2) for own in aliases]
        self._anchors = self._compile_anchors(aliases, cues or {})
        self._phrases = [[Phrase(g, sum(self._weights[x] for x in g))
                          for g in (frozenset(grams_of(a)) for a in own) if g] for own in aliases]

    def _compile_anchors(self, aliases: list[list[tuple[str, ...]]], cues: Mapping[str, Sequence[str]]
                         ) -> list[frozenset[str]]:
        """Per item, the bigrams (characters and folded pinyin, so 低宝 still anchors 低保) of its
        name, aliases and ``[cues]`` that few items share: what a question must contain before the
        item is answered. Without it a question that is about nothing we handle ("想找个保姆") still
        finds some item whose questions share a word or two with it."""
        own: list[set[str]] = []
        for index, ident in enumerate(self.ids):
            grams: set[str] = set()
            for segments in [*aliases[index], *(self._core(c) for c in cues.get(ident, ()))]:
                grams |= {g for g in grams_of(segments) if g[0] != "u"}
            own.append(grams)
        df: dict[str, int] = defaultdict(int)
        for grams in own:
            for gram in grams:
                df[gram] += 1
        return [frozenset(g for g in grams if df[g] <= self.settings.anchor_max_items) for grams in own]

    def anchored(self, normalized: str, idents: Iterable[str]) -> bool:
        """True when the question holds an anchor (name, alias or cue bigram) of any of the items."""
        grams = grams_of(self._core(normalized))
        return any(grams & self._anchors[self._position[i]] for i in idents if i in self._position)

    def _compile_ambiguous(self, ambiguous: Mapping[str, Sequence[str]]) -> list[tuple[str, tuple[int, ...]]]:
        """(core of the generic word, items it may mean), longest word first; unknown ids dropped."""
        compiled: dict[str, set[int]] = defaultdict(set)
        for term, ids in ambiguous.items():
            key = "".join(self._core(term))
            known = {self._position[i] for i in ids if i in self._position}
            if key and len(known) >= 2:
                compiled[key] |= known
        return sorted(((k, tuple(sorted(v))) for k, v in compiled.items()), key=lambda kv: -len(kv[0]))

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
        return self._ranked(self._core(normalized), only)

    def _ranked(self, segments: tuple[str, ...], only: Iterable[str] | None,
                grams: set[str] | None = None) -> list[tuple[Features, str]]:
        grams = grams_of(segments) if grams is None else grams
        if not grams:
            return []
        weights = {g: self._gram_weight(g) for g in grams}
        total = sum(weights.values())
        exact = self._exact.get("".join(segments), set())
        if only is not None:
            shortlist = [self._position[i] for i in only if i in self._position]
        else:
            shortlist = self._shortlist(weights)
            shortlist.extend(i for i in exact if i not in shortlist)
        overlap = {i: self._overlap(i, weights) for i in shortlist}
        query_pinyin = pinyin_string(segments)
        fuzzy = self._fuzzy(query_pinyin, shortlist)
        scored = [(self._features(i, grams, weights, total, overlap.get(i, 0.0), fuzzy.get(i, 0.0), i in exact),
                   self.ids[i]) for i in shortlist]
        scored.sort(key=lambda pair: (-pair[0].score, pair[1]))
        return scored

    def _overlap(self, index: int, weights: Mapping[str, float]) -> float:
        """IDF-weighted share of the question's grams the item uses (set intersection runs in C)."""
        own = self._item_grams[index]
        return sum(weights[g] * own[g] for g in own.keys() & weights.keys())

    def scores(self, normalized: str, only: Iterable[str] | None = None) -> list[tuple[float, str]]:
        """(score, id) best first."""
        return [(f.score, ident) for f, ident in self.features(normalized, only)]

    def _shortlist(self, weights: Mapping[str, float]) -> list[int]:
        """Items worth scoring: best by the weight of the question's *rarer* grams.

        Only grams in at most a few percent of the items take part, so a province-sized catalogue
        does not walk thousands of postings for 办 or 证; common grams still count in the score.
        """
        overlap: dict[int, float] = defaultdict(float)
        postings = self._rare_postings
        if not any(g in postings for g in weights):
            postings = self._postings  # only common words in the question: use them after all
        for gram, weight in weights.items():
            for index, field_weight in postings.get(gram, ()):
                overlap[index] += weight * field_weight
        return heapq.nlargest(self.settings.shortlist, overlap, key=overlap.__getitem__)

    def _fuzzy(self, query_pinyin: str, shortlist: Sequence[int]) -> dict[int, float]:
        """Best rapidfuzz ratio (0–1) per item, in one C-level pass over all shortlisted phrases."""
        if not query_pinyin:
            return {}
        owners: list[int] = []
        choices: list[str] = []
        for index in shortlist:
            owners.extend([index] * len(self._pinyin[index]))
            choices.extend(self._pinyin[index])
        best: dict[int, float] = {}
        for _, score, position in process.extract(query_pinyin, choices, scorer=fuzz.ratio, limit=None):
            owner = owners[position]
            if score > best.get(owner, -1.0):
                best[owner] = score
        return {index: score / 100 for index, score in best.items()}

    def _features(self, index: int, grams: set[str], weights: Mapping[str, float], total: float,
                  overlap: float, fuzzy: float, exact: bool) -> Features:
        """The four views of one item; an exact name/alias match scores 100 outright."""
        s = self.settings
        best_phrase = 0.0
        for phrase in self._phrases[index]:
            shared = sum(weights[g] for g in grams & phrase.grams)
            if phrase.total:
                best_phrase = max(best_phrase, shared / phrase.total)
        coverage = overlap / total if total else 0.0
        evidence = 1 - math.exp(-overlap / s.evidence_scale)
        features = Features(coverage, evidence, overlap, best_phrase, fuzzy, 100.0)
        # dataclasses.replace is slow on this hot path (~50 calls per question): build it twice instead
        return features if exact else Features(coverage, evidence, overlap, best_phrase, fuzzy, self._plain(features))

    def match(self, normalized: str) -> MatchResult:
        """Decide answer / clarify / fallback for one normalised question."""
        segments = self._core(normalized)
        joined = "".join(segments)
        if len(units(joined)) < self.settings.min_units and joined not in self._exact:
            return MatchResult("fallback", None, (), 0.0)  # "1", "啊": too little to go on
        grams = grams_of(segments)
        ranked = self._ranked(segments, None, grams)
        scored = [(f.score, ident) for f, ident in ranked]
        compact = normalized.replace(" ", "")
        if (ranked and ranked[0][0].phrase < 0.999 and scored[0][0] < self.settings.out_of_scope_override
                and self._out_of_scope_re is not None and self._out_of_scope_re.search(compact)):
            # 驾照到期了咋个换: a topic we do not handle, and no item named outright
            return MatchResult("fallback", None, (), round(scored[0][0], 2))
        if ranked and ranked[0][0].matched < self.settings.min_evidence and joined not in self._exact:
            # 那要办好久: only generic words matched, however similar the strings look
            return MatchResult("fallback", None, (), round(scored[0][0], 2))
        ambiguous = self._several_named(joined, scored) or self._ambiguity(segments, scored)
        if ambiguous:
            return ambiguous  # it names an item, or uses a listed word for several: anchored either way
        result = decide(scored, self.settings)
        if result.action != "fallback" and joined not in self._exact:
            if not any(grams & self._anchors[self._position[i]] for i in result.candidates):
                # 想找个保姆 → 法律援助 on shared 想找/找个: no name, alias or cue of any offered item
                return MatchResult("fallback", None, (), result.score)
        return result

    def _several_named(self, joined: str, scored: list[tuple[float, str]]) -> MatchResult | None:
        """Clarify when the question names two items joined by 和/或者/还是 ("五保和低保我该申请哪个").

        A name inside a longer name of another item (低保 in 低保边缘) does not count separately, and
        a name merely mentioned as context ("我是低保户，…残疾人补贴") is not joined to the other.
        """
        named: dict[int, str] = {}
        for _, ident in scored[: self.settings.max_candidates * 2]:
            index = self._position[ident]
            present = [alias for alias in self._alias_cores[index] if alias in joined]
            if present:
                named[index] = max(present, key=len)
        distinct = {i: alias for i, alias in named.items()
                    if not any(alias != other and alias in other for j, other in named.items() if j != i)}
        joined_pairs: set[int] = set()
        for i, a in distinct.items():
            for j, b in distinct.items():
                if i != j and _conjoined(joined, a, b):
                    joined_pairs |= {i, j}  # both sides of "a和b", not only the first
        if len(joined_pairs) < 2:
            return None
        options = tuple(ident for _, ident in scored if self._position[ident] in joined_pairs)
        return MatchResult("clarify", None, options[: self.settings.max_candidates], round(scored[0][0], 2))

    def _ambiguity(self, segments: tuple[str, ...], scored: list[tuple[float, str]]) -> MatchResult | None:
        """Clarify when the question uses a generic word (``[ambiguous]`` in intents/) and nothing
        else in it singles out one of the items the word may mean.

        "Singles out" is measured on the rest of the question only: the weight of its grams that one
        member has and the others lack. "社保卡丢了" → 丢了 belongs to the replacement item, answer it;
        "社保卡咋个办" → nothing left that tells them apart, ask.
        """
        joined = "".join(segments)
        for term, members in self._ambiguous:
            rest = _remove_loosely(joined, term)
            if rest is None:
                continue
            ids = [self.ids[i] for i in members]
            if joined != term:
                if joined in self._exact:
                    return None  # the question is exactly one item's name or alias (社保卡丢了)
                if not scored or scored[0][1] not in ids:
                    return None  # the question is about something else that merely mentions the word
                outsider = max((score for score, ident in scored if ident not in ids), default=0.0)
                if scored[0][0] - outsider < self.settings.clarify_window:
                    return None
                lead, leader = self._lead(rest, members)
                if lead >= self.settings.ambiguity_lead and leader == scored[0][1]:
                    return None  # the rest singles out the item that also scores best overall
                # otherwise the rest points elsewhere than the overall score (老兵有啥优待政策: 老兵
                # → veterans, 优待 → senior card): not safe to answer either, ask
            ranked = self._score_only(segments, ids)
            options = tuple(ident for _, ident in ranked)[: self.settings.max_candidates]
            return MatchResult("clarify", None, options, round(ranked[0][0], 2) if ranked else 0.0)
        return None

    def _lead(self, rest: str, members: Sequence[int]) -> tuple[float, str | None]:
        """How far the best member is ahead of the next on the rest of the question alone, and which
        member that is."""
        grams = grams_of(tuple(part for part in rest.split(" ") if part))
        if not grams:
            return 0.0, None
        weights = {g: self._gram_weight(g) for g in grams}
        overlaps = sorted(((sum(w * self._item_grams[i].get(g, 0.0) for g, w in weights.items()), self.ids[i])
                           for i in members), key=lambda pair: (-pair[0], pair[1]))
        return overlaps[0][0] - overlaps[1][0], overlaps[0][1]

    def _score_only(self, segments: tuple[str, ...], ids: Sequence[str]) -> list[tuple[float, str]]:
        """Scores of the given items, exact-phrase bonus ignored (the word is generic by definition)."""
        ranked = [(f.score if f.score < 100.0 else self._plain(f), ident) for f, ident in self._ranked(segments, ids)]
        ranked.sort(key=lambda pair: (-pair[0], pair[1]))
        return ranked

    def _plain(self, f: Features) -> float:
        """Weighted mean of the features, 0–100 (the weights need not sum to 1)."""
        s = self.settings
        total = s.coverage_weight + s.evidence_weight + s.phrase_weight + s.fuzzy_weight
        return 100 * (s.coverage_weight * f.overlap + s.evidence_weight * f.evidence + s.phrase_weight * f.phrase
                      + s.fuzzy_weight * f.fuzzy) / total


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


def _remove_loosely(text: str, term: str, slack: int = 2) -> str | None:
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


_CONJUNCTIONS = ("和", "或", "还是", "跟", "与", "及")


def _conjoined(text: str, first: str, second: str) -> bool:
    """``first`` then ``second`` in ``text`` with a conjunction (和, 或者, 还是…) between them."""
    start = text.find(first)
    end = text.find(second, start + len(first)) if start >= 0 else -1
    if end < 0:
        return False
    between = text[start + len(first): end]
    return len(between) <= 4 and any(c in between for c in _CONJUNCTIONS)
