"""The item index and its scoring: how well a question fits each item, as numbers.

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
  the item's closest name/alias/question, one symbol per syllable, forgiving typos and homophones).
* **A likelihood view** (:mod:`bot.understanding.likelihood`, naive Bayes over the same texts) then
  decides which of the items near the best leads, without changing the scores the rules compare
  (see :meth:`ItemIndex._reranked`).

The index is built once per knowledge snapshot and knows nothing of the decision rules
(:mod:`bot.understanding.matcher`): it scores; they decide.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import repeat
from operator import mul, truediv
from typing import TYPE_CHECKING, Callable, Container, Iterable, Mapping, NamedTuple, Sequence

from rapidfuzz import fuzz, process

from bot.understanding.grams import grams_of, sound_units
from bot.understanding.likelihood import Likelihood
from bot.understanding.model import ServiceItem

if TYPE_CHECKING:  # the settings live with the decision they mostly tune; the index reads its weights
    from bot.understanding.matcher import MatcherSettings

#: A question's core: the segments left after stop words and aspect phrases are removed.
CoreFn = Callable[[str], tuple[str, ...]]
#: A gram's postings: the items using it and, in the same order, the field weight each uses it with.
_Postings = tuple[tuple[int, ...], tuple[float, ...]]


@dataclass(frozen=True)
class Phrase:
    """A name or alias as grams with their total weight, to measure how much of it a question has."""

    grams: frozenset[str]
    total: float


class Features(NamedTuple):
    """Per-item evidence, kept separate so the decision (and tuning) can look at each. A named tuple:
    ~50 are built per question, and a frozen dataclass costs 2–3 times as much to build."""

    overlap: float      # weighted share of the question explained by the item (0–1)
    evidence: float     # matched weight itself, saturated to 0–1: long questions carry more of it
    matched: float      # matched weight, raw (IDF units): too little of it means nothing specific
    phrase: float       # completeness of the best name/alias found in the question (0–1)
    fuzzy: float        # rapidfuzz similarity of pinyin to the closest phrase (0–1)
    score: float        # combined, 0–100


def item_fields(item: ServiceItem) -> dict[str, list[str]]:
    """The texts of an item that questions are compared with, by field."""
    return {"alias": [item.name, *item.aliases], "question": list(item.questions),
            "body": [*item.conditions, *item.steps]}


class ItemIndex:
    """Items as grams, IDF weights, postings and phrases, built once per knowledge snapshot; scores a
    question's core against them (see :meth:`ranked`)."""

    def __init__(self, items: Sequence[ServiceItem], core: CoreFn, settings: MatcherSettings,
                 ambiguous: Mapping[str, Sequence[str]], cues: Mapping[str, Sequence[str]] | None = None
                 ) -> None:
        """``ambiguous`` (generic word → item ids, raw): a generic word is no name of one item, so it
        earns no named bonus (see :meth:`_names_in`); the rules read the compiled words too. ``cues``
        (item id → words, raw) count towards the likelihood view only (see :mod:`likelihood`); their
        cores are kept for the items' anchors (see :class:`~bot.understanding.names.ItemNames`)."""
        self.settings = settings
        self.ids: tuple[str, ...] = tuple(item.id for item in items)
        self.position = {ident: index for index, ident in enumerate(self.ids)}
        field_weight = {"alias": self.settings.alias_field, "question": self.settings.question_field,
                        "body": self.settings.body_field}
        item_grams: list[dict[str, float]] = []     # gram -> best field weight, per item
        aliases: list[list[tuple[str, ...]]] = []   # cores of name and aliases, per item
        self.exact: dict[str, set[int]] = defaultdict(set)
        sounds: list[list[tuple[str, ...]]] = []     # syllables of name, aliases, questions, per item
        texts_by_field: list[dict[str, list[tuple[str, ...]]]] = []  # per item, for the likelihood view
        #: per item, the cores of its ``[cues]`` words, in the order written
        self.cue_cores: list[list[tuple[str, ...]]] = [[core(cue) for cue in (cues or {}).get(item.id, ())]
                                                       for item in items]
        for index, item in enumerate(items):
            grams: dict[str, float] = {}
            aliases.append([])
            sounds.append([])
            texts_by_field.append({"cue": self.cue_cores[index]})
            for name, texts in item_fields(item).items():
                texts_by_field[index][name] = cores = [core(text) for text in texts]
                for segments in cores:
                    for gram in grams_of(segments):
                        grams[gram] = max(grams.get(gram, 0.0), field_weight[name])
                    if name != "body" and segments:
                        sound = sound_units(segments)
                        if sound not in sounds[index]:  # the same sound scores the same: compared once
                            sounds[index].append(sound)
                        self.exact["".join(segments)].add(index)
                    if name == "alias" and segments:
                        aliases[index].append(segments)
            item_grams.append(grams)
        self._sound_codes = _sound_codes(sounds)
        #: per item, the sounds of its name, aliases and questions, coded (see :meth:`sound`)
        self.phrase_sounds = [[self.sound(units_) for units_ in own] for own in sounds]
        self.weights = self._idf([set(g) for g in item_grams])
        self.likelihood = Likelihood(texts_by_field)
        self._unknown_weight = {kind: self.gram_weight(kind) for kind in "ubp"}  # by gram type, see gram_weight
        self.item_grams = item_grams
        self._postings = _postings(item_grams)
        cap = max(self.settings.shortlist, int(self.settings.shortlist_max_share * len(item_grams)))
        self._rare_postings = {g: p for g, p in self._postings.items() if len(p[0]) <= cap}
        self._common_grams = _common_grams(len(item_grams), self._postings, self._rare_postings)
        #: generic words (cores) with the items each may mean, longest first
        self.ambiguous = self._compile_ambiguous(ambiguous, core)
        #: cores of name and aliases, per item, as segments and joined (two or more characters)
        self.alias_segments = aliases
        self.alias_cores = [tuple(j for j in ("".join(a) for a in own) if len(j) >= 2) for own in aliases]
        #: the generic words alone: 抚恤金 is an alias, yet names two items
        self.generic_names = frozenset(term for term, _ in self.ambiguous)
        #: per item, its names and aliases of two characters or more that name it alone (not 社保)
        self._own_names = [tuple(a for a in own if a not in self.generic_names) for own in self.alias_cores]
        self._naming_aliases = [tuple(a for a in own if len(a) >= self.settings.named_min_units)
                                for own in self._own_names]
        # a phrase weighing nothing is no evidence of a name (and cannot be divided by)
        phrases = [[p for p in (Phrase(g, sum(self.weights[x] for x in g))
                                for g in (frozenset(grams_of(a)) for a in own)) if p.total] for own in aliases]
        self._phrase_totals = [tuple(p.total for p in own) for own in phrases]
        self._phrase_grams = [_phrase_postings(own) for own in phrases]
        # the same grams in the mappings' order and as sets, to intersect them quickly (see _scored)
        self._phrase_gram_order = [tuple(postings) for postings in self._phrase_grams]
        self._phrase_gram_sets = [frozenset(postings) for postings in self._phrase_grams]
        s = self.settings
        self._weight_sum = s.coverage_weight + s.evidence_weight + s.phrase_weight + s.fuzzy_weight

    def _compile_ambiguous(self, ambiguous: Mapping[str, Sequence[str]], core: CoreFn
                           ) -> list[tuple[str, tuple[int, ...]]]:
        """(core of the generic word, items it may mean), longest word first; unknown ids dropped."""
        compiled: dict[str, set[int]] = defaultdict(set)
        for term, ids in ambiguous.items():
            key = "".join(core(term))
            known = {self.position[i] for i in ids if i in self.position}
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

    def gram_weight(self, gram: str) -> float:
        """A gram's weight: its IDF, or for a gram no item uses a share of the rarest gram's
        (``oov_factor``), so words we do not know still count in the question's total."""
        known = self.weights.get(gram)
        if known is not None:
            return known
        rarest = math.log(1 + max(len(self.ids), 1))
        return self._type_weight(gram) * rarest * self.settings.oov_factor

    def ranked(self, segments: tuple[str, ...], only: Iterable[str] | None = None,
               grams: set[str] | None = None) -> list[tuple[Features, str]]:
        """(features, id) best first for a question's core (``segments``), over the shortlist (or over
        ``only`` when given). ``grams``: the core's :func:`grams_of`, when the caller has them already."""
        grams = grams_of(segments) if grams is None else grams
        if not grams:
            return []
        known, unknown = self.weights, self._unknown_weight  # inlined gram_weight: hot path
        weights = {g: known.get(g) or unknown[g[0]] for g in grams}
        total = sum(weights.values())
        joined = "".join(segments)
        exact = self.exact.get(joined, set())
        if only is not None:
            shortlist = [self.position[i] for i in only if i in self.position]
            overlap = {i: self._overlap(i, weights) for i in shortlist}
        else:
            shortlist, overlap = self._shortlist(weights)
            for i in exact:  # a whole name or alias is scored even when its grams are common ones
                if i not in overlap:
                    shortlist.append(i)
                    overlap[i] = self._overlap(i, weights)
        fuzzy = self._fuzzy(self.sound(sound_units(segments)), shortlist)
        scored = self._scored(shortlist, grams, weights, total, overlap, fuzzy, exact, joined)
        scored.sort(key=_best_first)
        if only is None:  # a rule scoring items of its own choosing compares their scores as they are
            return self._reranked(scored, grams, joined)
        return scored

    def sound(self, syllables: Sequence[str]) -> str:
        """Syllables (see :func:`~bot.understanding.grams.sound_units`) as the string the pinyin view
        compares: one code point each; a syllable no item's texts use is ``\\0``, which no phrase holds.

        Why one symbol per syllable rather than the letters of the syllables: an edit distance over
        letters gave partial credit to different syllables that share letters (jin and yin, and the
        spaces between every syllable), which lifted every pair of texts alike and blurred which item a
        question sounds like; over syllables a question and a phrase are alike by the sounds they share.
        Over the question sets nobody had read it put fewer single-item questions on a wrong item (round
        15 in tests/data/README.md). The codes of the commonest syllables fit in one byte, which
        rapidfuzz compares fastest; a table of the items' own syllables, not a checksum, so unseen input
        adds nothing to keep."""
        get = self._sound_codes.get
        return "".join([get(unit, "\0") for unit in syllables])

    def _overlap(self, index: int, weights: Mapping[str, float]) -> float:
        """IDF-weighted share of the question's grams the item uses (set intersection runs in C)."""
        own = self.item_grams[index]
        shared = own.keys() & weights.keys()
        return sum(map(mul, map(weights.__getitem__, shared), map(own.__getitem__, shared)))

    def _shortlist(self, weights: Mapping[str, float]) -> tuple[list[int], dict[int, float]]:
        """Items worth scoring, and the overlap (see :meth:`_overlap`) of every item scored.

        The shortlist is the best by the weight of the question's *rarer* grams: only grams in at most
        a few percent of the items take part, so a province-sized catalogue does not walk thousands of
        postings for 办 or 证. The overlap is finished from the same pass: the rare grams' share is what
        the walk summed, the common grams' share is looked up per shortlisted item (a handful of grams,
        instead of intersecting every item's thousands of grams with the question).
        """
        partial: dict[int, float] = defaultdict(float)
        postings = self._rare_postings
        if not any(g in postings for g in weights):
            postings = self._postings  # only common words in the question: use them after all
        common: list[str] = []
        for gram, weight in weights.items():
            found = postings.get(gram)
            if found is None:
                if gram in self._postings:  # a common gram (an unknown one is in no item)
                    common.append(gram)
                continue
            for index, field_weight in zip(*found):
                partial[index] += weight * field_weight
        shortlist = heapq.nlargest(self.settings.shortlist, partial, key=partial.__getitem__)
        grams = self._common_grams
        common_weights = [weights[g] for g in common]
        # map() keeps the per-item sum in C; a gram the item lacks adds 0.0, as in _overlap
        overlap = {i: partial[i] + sum(map(mul, common_weights, map(grams[i].get, common, repeat(0.0))))
                   for i in shortlist}
        return shortlist, overlap

    def _fuzzy(self, query_sound: str, shortlist: Sequence[int]) -> dict[int, float]:
        """Best rapidfuzz ratio per item, lifted by ``fuzzy_lift`` and capped at 1: one C-level
        ``extractOne`` over each item's phrases (cheaper than ranking all shortlisted phrases together,
        which sorts a thousand results)."""
        if not query_sound:
            return {}
        best: dict[int, float] = {}
        lift = self.settings.fuzzy_lift
        for index in shortlist:
            found = process.extractOne(query_sound, self.phrase_sounds[index], scorer=fuzz.ratio)
            if found is not None:
                best[index] = min(1.0, lift + found[1] / 100)
        return best

    def _scored(self, shortlist: Sequence[int], grams: set[str], weights: Mapping[str, float], total: float,
                overlap: Mapping[int, float], fuzzy: Mapping[int, float], exact: Container[int], joined: str
                ) -> list[tuple[Features, str]]:
        """(features, id) of every shortlisted item, unsorted: the four views of each, plus a bonus when
        one of its names stands whole in the question's core (``joined``: 社保转移 is the pension
        transfer even when the rest of the question reads like the medical insurance one); an exact
        name/alias match (``exact``) scores 100 outright.

        One loop with its look-ups hoisted rather than a method per item: this is the hottest loop of a
        match (~30 items per :meth:`ranked` call, about three calls for a long question), and a call
        plus the attribute look-ups per item cost about as much as the arithmetic. The score is
        :meth:`_weighted`'s expression written out, so it is the same to the last bit."""
        s = self.settings
        evidence_scale, named_bonus = s.evidence_scale, s.named_bonus
        cw, ew, pw, fw, weight_sum = (s.coverage_weight, s.evidence_weight, s.phrase_weight, s.fuzzy_weight,
                                      self._weight_sum)
        phrase_grams, phrase_totals = self._phrase_grams, self._phrase_totals
        phrase_order, phrase_sets = self._phrase_gram_order, self._phrase_gram_sets
        naming, ids = self._naming_aliases, self.ids
        size = len(grams)
        contains, exp = joined.__contains__, math.exp
        scored: list[tuple[Features, str]] = []
        append = scored.append
        for index in shortlist:
            best_phrase = 0.0
            postings = phrase_grams[index]
            # the grams the question shares with the item's names and aliases, met in the order in which
            # ``postings.keys() & grams`` meets them (the smaller side's), so the sums below add up in the
            # same order to the last bit, at two thirds of the cost of intersecting a dict's keys
            order = phrase_order[index]
            common = grams.intersection(order) if len(order) <= size else phrase_sets[index] & grams
            if common:
                totals = phrase_totals[index]
                shared = [0.0] * len(totals)
                for gram in common:
                    weight = weights[gram]
                    for number in postings[gram]:
                        shared[number] += weight
                best_phrase = max(map(truediv, shared, totals))
            matched = overlap[index]
            similar = fuzzy.get(index, 0.0)
            coverage = matched / total if total else 0.0
            evidence = 1 - exp(-matched / evidence_scale)
            if index in exact:
                score = 100.0
            else:
                plain = 100 * (cw * coverage + ew * evidence + pw * best_phrase + fw * similar) / weight_sum
                bonus = named_bonus if any(map(contains, naming[index])) else 0.0
                score = min(99.9, plain + bonus)
            append((Features(coverage, evidence, matched, best_phrase, similar, score), ids[index]))
        return scored

    def _reranked(self, ordered: list[tuple[Features, str]], grams: set[str], joined: str
                  ) -> list[tuple[Features, str]]:
        """The item that leads by score plus the likelihood view (``likelihood_weight`` points per nat an
        item is less likely than the likeliest, at most ``likelihood_reach`` points) takes the first
        place, and the item it passes takes its place; each place keeps the score it had. ``ordered``:
        best first (see :func:`_best_first`), and so is what it returns.

        Why only the leader, and only its place: the likelihood view is good at telling *which* item a
        question is about (see :mod:`bot.understanding.likelihood`), but the rules read *how close* the
        next items are (the clarify window, siblings, generic words) and in what order the others come
        (each side of a list takes its best candidate), calibrated on the index's scores; adding the
        view to the scores themselves widened the gaps and turned questions that are genuinely about
        two items into answers. Below ``likelihood_min_score`` the best item has too little evidence
        for its rank to mean much, and re-ranking there chose among noise (an off-topic question
        answered instead of falling back). An item the question names (one of its own names
        or aliases stands whole in ``joined``, the question's core) counts ``named_bonus`` points ahead
        here: a name says more than how typical the other words are (低保的钱打到存折上吗 is about 低保,
        however often the pension check's questions speak of 钱 and 存折). The reach bounds what many
        everyday words can add up to: 办低保要带户口本和身份证吗 is about 低保, though the marriage
        registration's questions list 户口本 and 身份证 in nearly every line."""
        s = self.settings
        if len(ordered) < 2 or not s.likelihood_weight:
            return ordered
        top = ordered[0][0].score
        if top < s.likelihood_min_score or top >= 100.0:  # too weak to mean much, or a name matched whole
            return ordered
        # only an item the view can lift to the top takes part: at most the reach and the named bonus behind
        close = [pair for pair in ordered if pair[0].score >= top - s.likelihood_reach - s.named_bonus]
        if len(close) < 2:
            return ordered
        position, naming, bonus = self.position, self._own_names, s.named_bonus
        per_nat, floor = s.likelihood_weight, -s.likelihood_reach / s.likelihood_weight
        likely = self.likelihood.relative(grams, [position[ident] for _, ident in close])
        if not likely:  # none of the question's grams is in any item's texts (a match on sound alone)
            return ordered

        def key(pair: tuple[Features, str]) -> tuple[float, str]:
            index = position[pair[1]]
            named = bonus if any(map(joined.__contains__, naming[index])) else 0.0
            return -(pair[0].score + per_nat * max(likely[index], floor) + named), pair[1]

        at, (features, leader) = min(enumerate(close), key=lambda numbered: key(numbered[1]))
        if at == 0:
            return ordered
        # the leader and the item it passes swap places; each place keeps its score
        passed, level = close[0], close[0][0].score
        close[0] = (features._replace(score=level), leader)
        close[at] = (passed[0]._replace(score=features.score), passed[1])
        reranked = close + ordered[len(close):]
        reranked.sort(key=_best_first)  # places of equal score stay in the order of their ids
        return reranked

    def plain(self, f: Features) -> float:
        """Weighted mean of the features, 0–100 (the weights need not sum to 1)."""
        return self._weighted(f.overlap, f.evidence, f.phrase, f.fuzzy)

    def _weighted(self, coverage: float, evidence: float, phrase: float, fuzzy: float) -> float:
        s = self.settings
        return 100 * (s.coverage_weight * coverage + s.evidence_weight * evidence + s.phrase_weight * phrase
                      + s.fuzzy_weight * fuzzy) / self._weight_sum


def _best_first(pair: tuple[Features, str]) -> tuple[float, str]:
    """The order of a ranking: highest score first, ties by id (so equal scores rank the same on
    every run)."""
    return -pair[0].score, pair[1]


def _phrase_postings(phrases: Sequence[Phrase]) -> dict[str, tuple[int, ...]]:
    """gram -> numbers of the item's phrases holding it. Why: the share of each name/alias a question
    holds is summed over the grams the question and the item share (a few), instead of intersecting
    the question with every phrase of every shortlisted item (the hottest loop of a match)."""
    found: dict[str, list[int]] = defaultdict(list)
    for number, phrase in enumerate(phrases):
        for gram in phrase.grams:
            found[gram].append(number)
    return {gram: tuple(numbers) for gram, numbers in found.items()}


def _common_grams(count: int, postings: Mapping[str, _Postings], rare: Mapping[str, object]
                  ) -> list[dict[str, float]]:
    """Per item, its common grams (those the shortlist walk skips) with their field weights: what
    :meth:`ItemIndex._shortlist` looks up for each shortlisted item. Why apart from ``item_grams``: a
    look-up in an item's whole gram table (hundreds of grams, thousands of items) misses the CPU cache
    far more often than one in these few dozen, and the overlap is finished for ~30 items per search."""
    common: list[dict[str, float]] = [{} for _ in range(count)]
    for gram, found in postings.items():
        if gram not in rare:
            for index, field_weight in zip(*found):
                common[index][gram] = field_weight
    return common


def _sound_codes(sounds: Sequence[Sequence[tuple[str, ...]]]) -> dict[str, str]:
    """A code point per syllable the items' texts use, the commonest first from 1: the first 255 fit in
    one byte (see :meth:`ItemIndex.sound`). Ties go by the syllable, so a snapshot codes the same way
    in every process."""
    counts = Counter(unit for own in sounds for units_ in own for unit in units_)
    ordered = sorted(counts, key=lambda unit: (-counts[unit], unit))
    return {unit: chr(rank + 1) for rank, unit in enumerate(ordered)}


def _postings(item_grams: list[dict[str, float]]) -> dict[str, _Postings]:
    """gram -> (items, their field weights), in item order.

    Why two flat tuples rather than one (item, weight) pair per posting: the shortlist walks a few
    hundred postings per question, and a pair is one more object to fetch from memory for each (the
    weights are the three shared field-weight floats); the walk is bound by those fetches, not by the
    arithmetic."""
    postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for index, grams in enumerate(item_grams):
        for gram, field_weight in grams.items():
            postings[gram].append((index, field_weight))
    return {g: (tuple(i for i, _ in v), tuple(w for _, w in v)) for g, v in postings.items()}
