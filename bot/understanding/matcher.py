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
* **Digits.** Phone and ID numbers, dates, amounts and house numbers are cut before anything else
  (``normalize.mask_digit_strings``): their digit bigrams would otherwise meet an item's (12348).
* **Siblings.** Items that share almost all their words (the two transfers, new and replacement
  cards, enrolment / payment / claim) are told apart by the one word that differs (``[contrast]`` in
  intents/: 医保 or 养老, 第一次 or 丢了): among the close candidates, a member whose words the
  question lacks is ruled out when another member's words are there. A family may also list
  lookalikes we do not handle (驾驶证 among the cards, 车子 for 年审): when only those are there, the
  question falls back.
* **Decision.** ``fallback`` below a calibrated score, on too little specific evidence, or on an
  out-of-scope topic (``[out_of_scope]`` in intents/) that the best item does not itself speak of
  (below a confident score); ``clarify`` when the question names two items joined by 和/或者, when
  two of its clauses ask for two items ("我想办低保，还要开个证明"), when it uses a generic word that
  names several items (``[ambiguous]``) and nothing else tells them apart, when it is an open
  question ("有啥子补贴") that two named items answer about equally, or when the top two tie; else
  ``answer``.
* **Anchors.** Whatever the score, an item is answered or offered only when the question holds an
  anchor of it: a character or folded-pinyin bigram of its name, an alias or a ``[cues]`` word that
  at most ``anchor_max_items`` items share (also across a particle: 离了婚 holds 离婚), or — for a
  clearly higher score — a bigram that only this item's questions use (台阶 for accessibility).
  Out-of-scope questions ("想找个保姆", "孩子发烧了去哪家医院") always share some words with some
  item's *questions*; they rarely contain a piece of its name, an alias or a cue. Clarifies from
  ``[ambiguous]`` words, two clauses and "A和B" are anchored by construction.

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
from bot.understanding.normalize import mask_digit_strings
from bot.understanding.phonetic import syllable, toneless

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
                                     # question gives one item this much more matched weight ...
    ambiguity_gap: float = 12.0      # ... or leans towards the item that also leads the other members
                                     # by this many score points overall; either way only when the rest
    min_rest_weight: float = 5.0     # says something specific (matched weight in that item; 失业了咋办
                                     # leaves 咋办, not enough to choose registration over the benefit)
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
    named_bonus: float = 6.0         # score points for an item whose name or alias stands whole in the
    named_min_units: int = 3         # question (aliases of at least this many characters)
    question_anchor_max_items: int = 1  # a bigram of only this many items' questions anchors them ...
    loose_anchor_score: float = 60.0    # ... when the match scores at least this
    anchored_runner_up: float = 6.0  # an anchored item this close behind an unanchored top is decided on
    open_question_margin: float = 8.0   # an open question (有啥子补贴) is asked back when another named
                                        # item scores within this of the top
    clause_min: float = 50.0         # a clause alone must answer its item this clearly to count as a
    clause_margin: float = 5.0       # second need (see Matcher._two_needs) ...
    clause_anchor_max_items: int = 3  # ... and hold an anchor this specific (not 登记, 补贴: 去哪里登记
                                      # is the aspect of the first need, not a second one)
    max_clauses: int = 6
    contrast_window: float = 20.0    # siblings this close to the top are told apart by [contrast] words
    anchor_max_items: int = 8        # an anchor gram shared by more items than this is too generic
                                     # to anchor anything (社区, 孩子); it still scores


#: The ``[contrast]`` member that stands for lookalikes outside the catalogue.
OUTSIDE = "out_of_scope"


@dataclass(frozen=True)
class _Family:
    """One ``[contrast]`` family, compiled (see :meth:`Matcher._compile_contrast`)."""

    pattern: re.Pattern[str] | None   # words of two or more characters, as toneless pinyin keys
    owners: Mapping[str, frozenset[str]]  # word (one character, or pinyin key) -> members it marks
    members: frozenset[str]

    def marked(self, compact: str, keyed: str, generic: Sequence[tuple[int, int, set[str]]] = ()) -> set[str]:
        """Members whose words the question holds (``keyed``: its pinyin key). A one-character word
        counts only outside a longer word; a word inside a generic word's span marks that generic
        word's members of this family instead of its own (see ``Matcher._ruled_out``)."""
        marked: set[str] = set()
        covered: set[int] = set()

        def mark(start: int, end: int, owners: frozenset[str]) -> None:
            for g_start, g_end, members in generic:
                shared = members & self.members
                if g_start <= start and end <= g_end and len(shared) >= 2:
                    marked.update(shared)
                    return
            marked.update(owners)

        if self.pattern is not None:
            for found in self.pattern.finditer(keyed):
                start = keyed.count("|", 0, found.start())
                end = start + found.group(0).count("|") + 1
                mark(start, end, self.owners[found.group(0)])
                covered.update(range(start, end))
        for index, ch in enumerate(compact):
            if index not in covered and ch in self.owners:
                mark(index, index + 1, self.owners[ch])
        return marked


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


def anchor_grams(core: Iterable[str], normalized: str) -> set[str]:
    """Bigrams a question offers as anchors: the core's character and folded-pinyin bigrams, plus
    character bigrams of the normalised text before stop words are cut out, also skipping one character.

    Why: residents put particles inside words — 离了婚, 参过战 — and cutting 了/的 out splits the word
    in two, so its bigram (离婚, 参战) never forms in the core. Only exact characters count across the
    cut: folded pinyin there collides too easily (补贴什么 would meet 津贴申领)."""
    out = {g for g in grams_of(core) if g[0] != "u"}
    for segment in normalized.split(" "):
        parts = units(segment)
        for index in range(1, len(parts)):
            out.add("b" + parts[index - 1] + parts[index])
            if index >= 2:
                out.add("b" + parts[index - 2] + parts[index])
    return out


def _pinyin_key(text: str) -> str:
    """Toneless syllables (not folded: 那种交 must not read as 宗教) of a text without spaces, joined
    by ``|``, one per character."""
    return "|".join(toneless(ch) for ch in text)


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
                 cues: Mapping[str, Sequence[str]] | None = None, norm: Callable[[str], str] | None = None,
                 contrast: Mapping[str, Mapping[str, Sequence[str]]] | None = None) -> None:
        """``out_of_scope`` phrases must already be normalised like questions (not stripped);
        ``cues`` (item id → words, raw) are item-specific words besides the name and aliases; ``norm``
        normalises item texts like questions (to see which out-of-scope words an item itself uses);
        ``contrast`` (family → item id → words, raw) tells sibling items apart (see ``_contrasted``)."""
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
        self._owned_topics = self._compile_owned_topics(items, cues or {}, norm or (lambda text: text))
        self._contrast = self._compile_contrast(contrast or {}, norm or (lambda text: text))
        self._alias_cores = [tuple(j for j in ("".join(a) for a in own) if len(j) >= 2) for own in aliases]
        generic = {term for term, _ in self._ambiguous}  # 抚恤金 is an alias, yet names two items
        self._naming_aliases = [tuple(a for a in own if len(a) >= self.settings.named_min_units and a not in generic)
                                for own in self._alias_cores]
        self._anchors, self._specific_anchors = self._compile_anchors(aliases, cues or {})
        self._question_anchors = self._compile_question_anchors(items)
        self._phrases = [[Phrase(g, sum(self._weights[x] for x in g))
                          for g in (frozenset(grams_of(a)) for a in own) if g] for own in aliases]

    def _compile_anchors(self, aliases: list[list[tuple[str, ...]]], cues: Mapping[str, Sequence[str]]
                         ) -> tuple[list[frozenset[str]], list[frozenset[str]]]:
        """Per item, the bigrams (characters and folded pinyin, so 低宝 still anchors 低保) of its
        name, aliases and ``[cues]`` that few items share: what a question must contain before the
        item is answered. Without it a question that is about nothing we handle ("想找个保姆") still
        finds some item whose questions share a word or two with it. Also returns the *specific*
        ones (see ``clause_anchor_max_items``), which a clause needs to count as a second need."""
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
        anchors = [frozenset(g for g in grams if df[g] <= self.settings.anchor_max_items) for grams in own]
        # specific: few items' names hold it, and it is no everyday word of their questions either
        # (社区 is in two names but in most questions: "社区能开不" names nothing)
        used: dict[str, int] = defaultdict(int)
        for item_grams in self._item_grams:
            for gram in item_grams:
                used[gram] += 1
        common = max(self.settings.clause_anchor_max_items, len(self.ids) // 4)
        specific = [frozenset(g for g in grams if df[g] <= self.settings.clause_anchor_max_items
                              and used[g] <= common) for grams in own]
        return anchors, specific

    def _compile_owned_topics(self, items: Sequence[ServiceItem], cues: Mapping[str, Sequence[str]],
                              norm: Callable[[str], str]) -> list[frozenset[str]]:
        """Per item, the ``[out_of_scope]`` words its own name, aliases, questions, cues and materials use.

        Why: a topic word is out of scope only for the items that never speak of it. 公交 is out of
        scope for a bus timetable question, yet the senior card is *about* free buses; when the best
        item itself uses the word, the word is evidence for it, not against it. This also keeps the
        list safe to grow: a word an admin adds to an item's questions stops vetoing that item."""
        if self._out_of_scope_re is None:
            return [frozenset() for _ in items]
        owned: list[frozenset[str]] = []
        for item in items:
            # its materials too: 要带户口本不 is a materials question about the item, not about 户口本
            texts = [*item_fields(item)["alias"], *item.questions, *cues.get(item.id, ()),
                     *(m.name for m in item.materials)]
            found = {m.group(0) for text in texts for m in self._out_of_scope_re.finditer(norm(text).replace(" ", ""))}
            owned.append(frozenset(found))
        return owned

    def _compile_contrast(self, contrast: Mapping[str, Mapping[str, Sequence[str]]], norm: Callable[[str], str]
                          ) -> tuple[_Family, ...]:
        """Per family: its words of two or more characters as one alternation over toneless pinyin
        (longest first, so 居住证明 is not read as 居住证; 吴保 still says 五保), its
        one-character words (exact characters only: 交 would meet 叫 and 教), which members each word
        marks, and the members (``out_of_scope`` among them: lookalikes we do not handle). Unknown ids
        and families of fewer than two known members are dropped."""
        compiled = []
        for members in contrast.values():
            owners: dict[str, set[str]] = defaultdict(set)
            for ident, words in members.items():
                if ident in self._position or ident == OUTSIDE:
                    for word in words:
                        key = mask_digit_strings(norm(word)).replace(" ", "")
                        if key:
                            owners[key if len(key) == 1 else _pinyin_key(key)].add(ident)
            known = frozenset(i for i in members if i in self._position or i == OUTSIDE)
            if len(known) < 2 or not (known - {OUTSIDE}) or not owners:
                continue
            long = sorted((k for k in owners if len(k) > 1), key=lambda k: (-k.count("|"), k))
            # whole syllables only: the key must start and end at a "|" or at an end of the text
            pattern = re.compile(r"(?<![^|])(?:" + "|".join(map(re.escape, long)) + r")(?![^|])") if long else None
            compiled.append(_Family(pattern, {k: frozenset(v) for k, v in owners.items()}, known))
        return tuple(compiled)

    def _contrasted(self, compact: str, scored: list[tuple[float, str]]) -> tuple[frozenset[str], frozenset[str]]:
        """Sibling items the question rules out: in a ``[contrast]`` family, when two or more members
        score close to the top (within ``contrast_window``) and the question holds the words of some
        of them but of none of the others, the others.

        Why: siblings share almost all their vocabulary (转移, 外地, 转回; 社保卡, 办) and differ in one
        word — 医保 or 养老, 第一次 or 丢了 — which the bag of grams weighs no more than any other; an
        accident of wording in one sibling's questions then decides. The word is what a person at the
        counter would listen for, so it decides here, among the close ones only. A family's
        ``out_of_scope`` member is a lookalike we do not handle (驾驶证 among the cards): when only its
        words are there, the items it rules out are also returned apart: the caller falls back when the
        top is among them."""
        if not self._contrast or not scored:
            return frozenset(), frozenset()
        floor = max(scored[0][0] - self.settings.contrast_window, self.settings.clarify_min)
        close = {ident for score, ident in scored[: self.settings.max_candidates * 2] if score >= floor}
        generic = [(match.start(), match.end(), {self.ids[i] for i in members})
                   for term, members in self._ambiguous if term in compact
                   for match in re.finditer(re.escape(term), compact)]
        return self._ruled_out(compact, close, generic)

    def _ruled_out(self, compact: str, candidates: set[str], generic: Sequence[tuple[int, int, set[str]]] = ()
                   ) -> tuple[frozenset[str], frozenset[str]]:
        """Those of ``candidates`` that a ``[contrast]`` family rules out: members of a family, two or
        more of them among the candidates, whose words the question lacks while it holds another's.

        A word found inside a ``generic`` word of the question (``[ambiguous]``, as character spans)
        marks all that word's items alike: 居住证 in 社区开居住证 is the permit's word, but 开居住证
        names the permit or the proof, so it tells those two nothing (it still tells them from the
        identity card). Returns what a sibling's words rule out, and apart what a family's
        ``out_of_scope`` words alone rule out (驾驶证 among the cards, when no card of ours is named)."""
        keyed: str | None = None
        dropped: set[str] = set()
        outside: set[str] = set()
        for family in self._contrast:
            rivals = family.members & candidates
            if not rivals:
                continue
            keyed = keyed if keyed is not None else _pinyin_key(compact)
            marked = family.marked(compact, keyed, generic)
            named = marked & rivals
            if named and named != rivals:
                dropped |= rivals - named
            elif marked == {OUTSIDE}:
                outside |= rivals  # only the lookalike's words: 驾驶证到期换证
        return frozenset(dropped), frozenset(outside)

    def _off_topic(self, compact: str, top: int, joined: str = "") -> bool:
        """True when the question holds an out-of-scope word, unless the top item uses that word itself
        *and* the rest of the question still holds an anchor of it ("钱包被偷了，社保卡也在里面": 被偷
        is the replacement item's own word and 社保卡 anchors it; "营业执照咋个办" is about the licence
        alone, though the loan item mentions it among its materials). The word is looked for in the
        question as typed and with its particles out (``joined``: 殡仪馆的电话 holds 殡仪馆电话)."""
        if self._out_of_scope_re is None:
            return False
        found = [m.group(0) for text in (compact, joined) if text for m in self._out_of_scope_re.finditer(text)]
        if not found:
            return False
        if any(term not in self._owned_topics[top] for term in found):
            return True
        rest = self._out_of_scope_re.sub(" ", compact)
        return not self.anchored(rest, (self.ids[top],))

    def _compile_question_anchors(self, items: Sequence[ServiceItem]) -> list[frozenset[str]]:
        """Per item, the character bigrams of its questions that no other item's questions use."""
        own = [{g for text in item.questions for g in grams_of(self._core(text)) if g[0] == "b"} for item in items]
        df: dict[str, int] = defaultdict(int)
        for grams in own:
            for gram in grams:
                df[gram] += 1
        limit = self.settings.question_anchor_max_items
        return [frozenset(g for g in grams if df[g] <= limit) for grams in own]

    def anchored(self, normalized: str, idents: Iterable[str]) -> bool:
        """True when the question holds an anchor (name, alias or cue bigram) of any of the items,
        also across a particle (离了婚 holds 离婚; see :func:`anchor_grams`)."""
        grams = anchor_grams(self._core(normalized), normalized)
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
        joined = "".join(segments)
        scored = [(self._features(i, grams, weights, total, overlap.get(i, 0.0), fuzzy.get(i, 0.0), i in exact,
                                  self._names_in(i, joined)), self.ids[i]) for i in shortlist]
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
        """Best rapidfuzz ratio (0–1) per item: one C-level ``extractOne`` over each item's phrases
        (cheaper than ranking all shortlisted phrases together, which sorts a thousand results)."""
        if not query_pinyin:
            return {}
        best: dict[int, float] = {}
        for index in shortlist:
            found = process.extractOne(query_pinyin, self._pinyin[index], scorer=fuzz.ratio)
            if found is not None:
                best[index] = found[1] / 100
        return best

    def _names_in(self, index: int, joined: str) -> bool:
        """True when one of the item's own names or aliases stands whole in the question's core."""
        return any(alias in joined for alias in self._naming_aliases[index])

    def _features(self, index: int, grams: set[str], weights: Mapping[str, float], total: float,
                  overlap: float, fuzzy: float, exact: bool, named: bool = False) -> Features:
        """The four views of one item, plus a bonus when one of its names stands whole in the question
        (社保转移 is the pension transfer even when the rest of the question reads like the medical
        insurance one); an exact name/alias match scores 100 outright."""
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
        if exact:
            return features
        bonus = s.named_bonus if named else 0.0
        return Features(coverage, evidence, overlap, best_phrase, fuzzy, min(99.9, self._plain(features) + bonus))

    def match(self, normalized: str) -> MatchResult:
        """Decide answer / clarify / fallback for one normalised question. Phone and ID numbers,
        dates and amounts are cut first: they never say what is asked (see ``mask_digit_strings``)."""
        normalized = mask_digit_strings(normalized)
        segments = self._core(normalized)
        joined = "".join(segments)
        if len(units(joined)) < self.settings.min_units and joined not in self._exact:
            return MatchResult("fallback", None, (), 0.0)  # "1", "啊": too little to go on
        grams = grams_of(segments)
        ranked = self._ranked(segments, None, grams)
        scored = [(f.score, ident) for f, ident in ranked]
        compact = normalized.replace(" ", "")
        if (ranked and scored[0][0] < self.settings.out_of_scope_override
                and self._off_topic(compact, self._position[ranked[0][1]], joined)):
            # 驾照到期了咋个换: a topic we do not handle. An alias standing whole does not save the
            # item (公积金能取来交医保吗 holds 交医保, 车子年审 holds 年审); a word it owns does (see
            # _off_topic)
            return MatchResult("fallback", None, (), round(scored[0][0], 2))
        if ranked and ranked[0][0].matched < self.settings.min_evidence and joined not in self._exact:
            # 那要办好久: only generic words matched, however similar the strings look
            return MatchResult("fallback", None, (), round(scored[0][0], 2))
        dropped, outside = self._contrasted(compact, scored)
        if scored and scored[0][1] in outside:
            # 驾驶证到期换证: reads like the disability-card renewal, but names a card we do not handle
            return MatchResult("fallback", None, (), round(scored[0][0], 2))
        dropped |= outside
        if dropped:  # 医保转回旺苍: the pension transfer reads alike, but 医保 rules it out
            scored = [pair for pair in scored if pair[1] not in dropped]
        ambiguous = (self._several_named(joined, scored) or self._two_needs(normalized, scored)
                     or self._ambiguity(segments, scored, dropped, compact))
        if ambiguous:
            return ambiguous  # it names items, or uses a listed word for several: anchored either way
        result = decide(scored, self.settings)
        if result.action != "fallback" and joined not in self._exact:
            if not self.anchored(normalized, result.candidates) and not self._loosely_anchored(
                    segments, normalized, result):
                # 想找个保姆 → 法律援助 on shared 想找/找个: no name, alias or cue of any offered item;
                # but an anchored item close behind is what the question names (身份证被洗坏了: the
                # disability-card renewal reads alike, the identity card is the one named)
                return self._anchored_runner_up(normalized, scored) or MatchResult(
                    "fallback", None, (), result.score)
            if result.action == "answer":
                return self._open_question(normalized, scored) or result
            return self._anchored_options(normalized, scored, result)
        return result

    def _anchored_options(self, normalized: str, scored: list[tuple[float, str]],
                          result: MatchResult) -> MatchResult:
        """A clarify list offers only items the question anchors (a list of five loosely related
        items helps nobody); when one is left, it is the answer."""
        options = tuple(ident for ident in result.candidates if self.anchored(normalized, (ident,)))
        if len(options) == len(result.candidates) or not options:
            return result  # (none anchored: loosely anchored by its questions, keep the list)
        if len(options) == 1:
            score = dict((ident, value) for value, ident in scored)[options[0]]
            return MatchResult("answer", options[0], options, round(score, 2))
        return MatchResult("clarify", None, options, result.score)

    def _anchored_runner_up(self, normalized: str, scored: list[tuple[float, str]]) -> MatchResult | None:
        """The decision among the items the question anchors, when one scores within
        ``anchored_runner_up`` of an unanchored top."""
        floor = scored[0][0] - self.settings.anchored_runner_up
        anchored = [(score, ident) for score, ident in scored[: self.settings.max_candidates]
                    if score >= floor and self.anchored(normalized, (ident,))]
        if not anchored:
            return None
        result = decide(anchored, self.settings)
        return result if result.action != "fallback" else None

    def _open_question(self, normalized: str, scored: list[tuple[float, str]]) -> MatchResult | None:
        """Clarify an open question ("有啥子补贴", "能领啥", "有什么政策") when another item it names
        scores almost as well: the resident asks what there is, and there is more than one answer
        ("残疾人每个月有什么钱可以领": living subsidy and nursing subsidy both). A specific question
        ("二级残疾有啥子补贴") leaves one item well ahead and is still answered."""
        if not _OPEN_QUESTION.search(normalized.replace(" ", "")):
            return None
        floor = scored[0][0] - self.settings.open_question_margin
        close = [ident for score, ident in scored[: self.settings.max_candidates] if score >= floor]
        options = [ident for ident in close if self.anchored(normalized, (ident,))]
        if len(options) < 2 or options[0] != scored[0][1]:
            return None
        return MatchResult("clarify", None, tuple(options), round(scored[0][0], 2))

    def _loosely_anchored(self, segments: tuple[str, ...], normalized: str, result: MatchResult) -> bool:
        """A confident match anchored only by a word of the item's own questions that no other item
        uses ("想把台阶改成斜坡": 台阶 is in no name, alias or cue, but only the accessibility item's
        questions speak of it). Needs a clearly higher score than a named item: everyday questions
        share odd words with some item's questions more often than they share its name."""
        if result.score < self.settings.loose_anchor_score:
            return False
        grams = anchor_grams(segments, normalized)
        return any(grams & self._question_anchors[self._position[i]] for i in result.candidates)

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

    def _two_needs(self, normalized: str, scored: list[tuple[float, str]]) -> MatchResult | None:
        """Clarify when two clauses of the question ask for two different items ("我想办低保，还要开个
        证明", "残疾证到期了，顺便问下护理补贴咋个领").

        Why per clause: scored as a whole, the clause with more words wins and the other need is
        silently dropped. A clause counts only when it asks or complains about something (办, 领, 咋个,
        不发 …), so context ("我是低保户，…") does not make a second need, and only when it alone
        answers one item clearly, with an anchor of that item inside the clause. Only the overall
        best candidates are scored again, so this costs a few set operations, not a second search."""
        clauses = _clauses(normalized)
        if len(clauses) < 2 or not scored:
            return None
        s = self.settings
        pool = [ident for _, ident in scored[: s.max_candidates * 2]]
        winners: list[str] = []
        for clause, asks in clauses[: s.max_clauses]:
            segments = self._core(clause)
            if len(units("".join(segments))) < s.min_units or not asks:
                continue
            ranked = self._ranked(segments, pool)
            ruled_out: frozenset[str] = frozenset()
            if self._contrast and len(ranked) > 1:
                # 社保卡也一起丢了: 丢 rules out the first card within the clause too
                ruled_out, _ = self._ruled_out(clause.replace(" ", ""), {i for _, i in ranked[:s.max_candidates]})
                ranked = [pair for pair in ranked if pair[1] not in ruled_out]
            if not ranked:
                continue
            top, ident = ranked[0]
            runner_up = ranked[1][0].score if len(ranked) > 1 else 0.0
            if (top.score >= s.clause_min and top.score - runner_up >= s.clause_margin
                    and top.matched >= s.min_evidence):
                # a specific anchor, or any anchor when the clause holds a generic word of the item
                # whose other items a [contrast] word ruled out (社保卡也丢了: 社保卡 is in four
                # items' names, but 丢 leaves the replacement)
                resolved = ruled_out and any(
                    term in clause.replace(" ", "") and self._position[ident] in members
                    and any(self.ids[i] in ruled_out for i in members) for term, members in self._ambiguous)
                own = self._anchors if resolved else self._specific_anchors
                held = anchor_grams(segments, clause) & own[self._position[ident]]
                if ident != scored[0][1]:
                    # a word the overall best item owns too (备案 for the association and for the
                    # out-of-town treatment) is the first need's word, not a second need
                    held -= self._anchors[self._position[scored[0][1]]]
                if held:
                    winners.append(ident)
        distinct = set(winners)
        if len(distinct) < 2 or scored[0][1] not in distinct:
            return None
        options = tuple(ident for _, ident in scored if ident in distinct)[: s.max_candidates]
        return MatchResult("clarify", None, options, round(scored[0][0], 2))

    def _ambiguity(self, segments: tuple[str, ...], scored: list[tuple[float, str]],
                   dropped: frozenset[str] = frozenset(), compact: str = "") -> MatchResult | None:
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
            ids = [self.ids[i] for i in members if self.ids[i] not in dropped]
            if len(ids) < 2:
                continue  # the others were ruled out by [contrast] words: the word names one item here
            if joined != term:
                if joined in self._exact:
                    return None  # the question is exactly one item's name or alias (社保卡丢了)
                if not scored or scored[0][1] not in ids:
                    return None  # the question is about something else that merely mentions the word
                # the word itself (居住证 in 开居住证) is no evidence for one of its items, but a longer
                # word holding it is (失业保险 holds 失业: the benefit, not the registration)
                spans = [(m.start(), m.end(), set(ids)) for m in re.finditer(re.escape(term), compact)]
                ruled_out, _ = self._ruled_out(compact, set(ids), spans)
                if len(ids) - len(ruled_out) == 1:
                    # 补一张社保卡: 补 leaves one of the word's items, whatever the scores say
                    return self._only_member(next(i for i in ids if i not in ruled_out), scored)
                if self._named_member(joined, term, members) == scored[0][1]:
                    return None  # 办医保, 交医保: one member's own longer name holds the word
                lead, leader, weight = self._lead(rest, members)
                if leader == scored[0][1] and weight >= self.settings.min_rest_weight and (
                        lead >= self.settings.ambiguity_lead
                        or (lead > 0 and self._member_gap(scored, ids) >= self.settings.ambiguity_gap)):
                    return None  # the rest singles out the item that also scores best overall
                # otherwise the rest points elsewhere than the overall score (老兵有啥优待政策: 老兵
                # → veterans, 优待 → senior card): not safe to answer either, ask
            ranked = self._score_only(segments, ids)
            options = [ident for _, ident in ranked]
            if scored and joined != term:
                # an item outside the word's members scoring about as well is offered too: the
                # question may be about it (残疾人补贴有哪些 → also the veterans' disability pension)
                floor = scored[0][0] - self.settings.clarify_window
                options += [ident for score, ident in scored if score >= floor and ident not in ids]
            return MatchResult("clarify", None, tuple(options[: self.settings.max_candidates]),
                               round(ranked[0][0], 2) if ranked else 0.0)
        return None

    def _only_member(self, ident: str, scored: list[tuple[float, str]]) -> MatchResult | None:
        """The answer when a generic word's other items are ruled out; ``None`` (the normal decision)
        when this one is the top anyway or scores too low to answer."""
        if scored and scored[0][1] == ident:
            return None
        score = next((value for value, other in scored if other == ident), 0.0)
        if score < self.settings.answer_min:
            return None
        return MatchResult("answer", ident, (ident,), round(score, 2))

    def _named_member(self, joined: str, term: str, members: Sequence[int]) -> str | None:
        """The one member whose own alias, longer than the generic word and holding it (loosely, as
        残疾人生活补贴 holds 残疾人补贴), is in the question (交医保 → the payment item); ``None`` when
        none or several are. An alias inside
        another member's longer alias does not count (办社保卡 inside 补办社保卡)."""
        found: dict[int, str] = {}
        for index in members:
            present = [a for a in self._alias_cores[index]
                       if len(a) > len(term) and a in joined and _remove_loosely(a, term) is not None]
            if present:
                found[index] = max(present, key=len)
        named = [i for i, alias in found.items()
                 if not any(alias != other and alias in other for j, other in found.items() if j != i)]
        return self.ids[named[0]] if len(named) == 1 else None

    @staticmethod
    def _member_gap(scored: list[tuple[float, str]], ids: Sequence[str]) -> float:
        """Score points between the best member of an ambiguous word's items and the next member.

        Why besides the lead on the rest: the rest alone is often one short verb (交, 参保, 鉴定) once
        aspect phrases are cut out, worth little weight, while the whole question already tells the
        members far apart (城乡居民养老保险咋个参保: enrolment 93, claim 80)."""
        members = [score for score, ident in scored if ident in ids]
        return members[0] - members[1] if len(members) > 1 else members[0] if members else 0.0

    def _lead(self, rest: str, members: Sequence[int]) -> tuple[float, str | None, float]:
        """How far the best member is ahead of the next on the rest of the question alone, which
        member that is, and how much of the rest that member explains (matched weight)."""
        grams = grams_of(tuple(part for part in rest.split(" ") if part))
        if not grams:
            return 0.0, None, 0.0
        weights = {g: self._gram_weight(g) for g in grams}
        overlaps = sorted(((sum(w * self._item_grams[i].get(g, 0.0) for g, w in weights.items()), self.ids[i])
                           for i in members), key=lambda pair: (-pair[0], pair[1]))
        return overlaps[0][0] - overlaps[1][0], overlaps[0][1], overlaps[0][0]

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

#: Where a second need starts: punctuation (a space once normalised) and the words that add one.
_CLAUSE_BREAK = re.compile(r"( |还要|还想|还有|顺便|另外|以及|而且|同时|也想|又想|再问|和|跟|与|或者|还是)")
_JOINING = ("和", "跟", "与", "或者", "还是")
_ASKING = ("还要", "还想", "也想", "又想", "再问", "顺便")
#: A clause that asks or complains about something, as opposed to one that only states context.
_REQUEST = re.compile(r"办|申请|领|补|换|交|开|报|转|迁|续|登记|认定|怎么|哪里|哪个|多少|多久|能不能|可以|有没有|要|想|吗|"
                      r"不给|不发|不管|没结|没发|欠|丢|坏|过期|到期|激活|不会|弄不来|用不来|不$|没有$")
#: An open question: the resident asks what there is (benefits, policies, papers), not about one thing.
_OPEN_QUESTION = re.compile(r"(?:有|能领|能拿|可以领|能享受|可以享受|能申请|可以申请|要办)(?:什么|哪些)"
                            r"(?:补贴|钱|待遇|福利|政策|救助|帮助|证|手续)?"
                            r"|有(?:什么|哪些)(?:补贴|待遇|福利|政策|救助|优惠)"
                            r"|(?:补贴|待遇|福利|政策)有(?:哪些|什么)|什么(?:待遇|福利|政策)")
#: A clause that only states who the resident is or what they did before ("我是低保户", "交了社保的",
#: "他一直在领养老金"): context for the other clause, not a need of its own.
_CONTEXT = re.compile(r"^(?:我|我们|他|她|我妈|我爸|老人|家里)?(?:是|属于)|以前|原来|之前|一直|"
                      r"(?:交|缴|领|办|买|吃)了?的|的$")


def _clauses(normalized: str) -> list[tuple[str, bool]]:
    """The question cut where a second need may start, each clause with whether it asks for something.

    A clause joined to the next by 和/跟/或者/还是 shares the next one's request ("身份证和居住证咋个办":
    both are asked about); a clause that only gives context never asks."""
    parts = _CLAUSE_BREAK.split(normalized)
    clauses: list[tuple[str, bool]] = []
    asks_next = False
    for index in range(len(parts) - 1, -1, -2):  # clauses at even positions, separators between
        clause = parts[index]
        separator = parts[index + 1] if index + 1 < len(parts) else ""
        inherited = asks_next and separator in _JOINING
        leading = parts[index - 1] if index else ""
        asks = bool(clause) and not _CONTEXT.search(clause) and (
            bool(_REQUEST.search(clause)) or inherited or leading in _ASKING)
        asks_next = asks or inherited
        if clause:
            clauses.append((clause, asks))
    return clauses[::-1]


def _conjoined(text: str, first: str, second: str) -> bool:
    """``first`` then ``second`` in ``text`` with a conjunction (和, 或者, 还是…) between them."""
    start = text.find(first)
    end = text.find(second, start + len(first)) if start >= 0 else -1
    if end < 0:
        return False
    between = text[start + len(first): end]
    return len(between) <= 4 and any(c in between for c in _CONJUNCTIONS)
