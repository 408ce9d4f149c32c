"""Match a normalised question to service items: answer, clarify or fall back.

How, and why this way:

* **Digits.** Phone and ID numbers, dates, amounts and house numbers are cut before anything else
  (``normalize.mask_digit_strings``): their digit bigrams would otherwise meet an item's (12348).
* **Decision.** ``fallback`` below a calibrated score, on too little specific evidence, or on an
  out-of-scope topic (``[out_of_scope]`` in intents/) that the best item does not itself speak of
  (below a confident score); ``clarify`` when the question lists two things naming different items,
  even by a part of their names ("养老和医保都想转回来", "身份证社保卡都丢了"), when it uses a generic word
  that names several items (``[ambiguous]``) and nothing else tells them apart, when it is an open
  question ("有啥子补贴") that two named items answer about equally, or when the top two tie; else
  ``answer`` — the item asked for, not one named only as context ("结婚证已经领了，还想问下居住证咋个办").
  When two of its clauses ask for two items ("我想办低保，还要开个证明", "在工地摔伤了，工资也不给"), the
  answer carries the other in ``also`` (``_with_other_needs``): the reply answers one and offers the next.
* **Anchors.** Whatever the score, an item is answered or offered only when the question holds an
  anchor of it: a character or folded-pinyin bigram of its name, an alias or a ``[cues]`` word that
  at most ``anchor_max_items`` items share (also across a particle: 离了婚 holds 离婚), or — for a
  clearly higher score — a bigram that only this item's questions use (台阶 for accessibility).
  Out-of-scope questions ("想找个保姆", "孩子发烧了去哪家医院") always share some words with some
  item's *questions*; they rarely contain a piece of its name, an alias or a cue. Clarifies from
  ``[ambiguous]`` words and "A和B" are anchored by construction.

* **Mentioned in passing.** A question about an office itself (社保局几点下班), or one that names an
  item only in clauses that tell the situation — what was done, who someone is or has, who asks for
  whom, a paper to bring (结婚证领好了，婚假有几天; 我们有低保，想申请公租房; 网格员帮一个低保户问，……) —
  and asks about something else is not about that item (``_about_office``, ``_after_context``); a done
  matter is no evidence between siblings either (``_asked``), and when two items tie, the one the
  asking clause names is answered (``_asked_option``). An out-of-scope word counts unless it crosses an
  item's word, sits in a clause of mere context, or is framed as a place, a channel or a paper to bring
  while something else names the item (掉在菜市场, 打到农商行存折上, 要带户口本不), and always when it is
  what is asked for; whatever the score, when a matter of that thing itself is asked — its hours,
  booking or cancelling it — or when the item is named only in clauses that ask nothing and the last
  asking clause holds the word and none of the item's anchors (外公走了，户口咋个注销): see
  :mod:`bot.understanding.scope`.
* **Open questions about a subject.** "退伍军人有啥子待遇" names a subject several items share and
  nothing of one of them alone: all of them are offered (``_same_subject``).

The matcher is pure: no I/O, no clock, no randomness; the same snapshot always gives the same result.
The item index and its scoring live in :mod:`bot.understanding.index`, the items' anchors and whole
names in :mod:`bot.understanding.names`, the ``[contrast]`` families in :mod:`bot.understanding.contrast`,
the generic words' rule (``[ambiguous]``) in :mod:`bot.understanding.ambiguity`, the lists of names
("A和B") in :mod:`bot.understanding.lists`, two needs in one message in :mod:`bot.understanding.needs`,
the out-of-scope words (``[out_of_scope]``) in :mod:`bot.understanding.scope`, clause splitting in
:mod:`bot.understanding.clauses` and the gram functions in :mod:`bot.understanding.grams`; this module
holds the decision and its other rules.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping, Sequence

from bot.understanding.ambiguity import GenericWords
from bot.understanding.clauses import DONE, MATERIAL, OFFICE, QUESTION, REFUSED, STOPPED, split_clauses
from bot.understanding.contrast import Contrast
from bot.understanding.grams import anchor_grams, grams_of, occurring, pinyin_key, remove_loosely, units
from bot.understanding.index import CoreFn, Features, ItemIndex, item_fields
from bot.understanding.lists import Lists
from bot.understanding.model import MatchResult, ServiceItem
from bot.understanding.names import ItemNames
from bot.understanding.needs import TwoNeeds
from bot.understanding.normalize import digits_for_matching
from bot.understanding.scope import OutOfScope


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
    fuzzy_weight: float = 0.30
    fuzzy_lift: float = 0.15         # added to the pinyin similarity (capped at 1): compared syllable by
                                     # syllable it runs lower than the letter-level one the thresholds
                                     # below were calibrated with (see ItemIndex.sound)
    likelihood_weight: float = 0.5   # near the best, items are ranked by score minus this many points per
    likelihood_reach: float = 10.0   # nat they are less likely than the likeliest, at most this many
    likelihood_min_score: float = 45.0  # points, when the best scores at least this (see
                                        # ItemIndex._reranked and bot.understanding.likelihood)
    ambiguity_lead: float = 1.5      # a generic word (优待证) asks which item unless the rest of the
                                     # question gives one item this much more matched weight ...
    ambiguity_gap: float = 16.0      # ... or leans towards the item that also leads the other members
                                     # by this many score points overall ...
    gap_min_lead: float = 0.7        # ... by at least this much (less is under one everyday character's
                                     # weight: "老人 能领钱" after 去世); either way only when the rest
    min_rest_weight: float = 5.0     # says something specific (matched weight in that item; 失业了咋办
                                     # leaves 咋办, not enough to choose registration over the benefit)
    sibling_window: float = 14.0     # a sibling (see Matcher._close_sibling) this close to an answer,
                                     # the question holding no word of the answer's own: ask (else the
    max_related: int = 2             # reply offers up to this many of them after the answer)
    runner_up_window: float = 6.0    # an anchored item this close behind an answer is offered after it
    outside_top_window: float = 12.0  # a generic word's item this close behind a best item outside its
                                     # items, which the rest holds no anchor of: ask (困难家庭补助)
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
                                        # item scores within this of the top ...
    subject_margin: float = 40.0     # ... or holds every anchor the top has in it, within this many points,
    subject_max_items: int = 3       # when at most this many candidates do
    clause_min: float = 50.0         # a clause alone must answer its item this clearly to count as a
    clause_margin: float = 5.0       # second need (see TwoNeeds.asked_for) ...
    clause_anchor_max_items: int = 3  # ... and hold an anchor this specific (not 登记, 补贴: 去哪里登记
                                      # is the aspect of the first need, not a second one)
    added_clause_min: float = 35.0   # a clause that adds a matter (也, 还, 顺便) naming its item by a name,
                                     # alias or generic word needs only this, with any anchor (把医保也上了)
    max_clauses: int = 6
    contrast_window: float = 20.0    # siblings this close to the top are told apart by [contrast] words
    after_context_min: float = 45.0  # "出生证办好了，接下来医保咋个上": the rest alone must answer this well
    after_context_clear: float = 95.0  # ... and after who someone is, name its item or read as its own
                                       # question would ("租房有没得补贴，我是低收入家庭")
    anchor_max_items: int = 8        # an anchor gram shared by more items than this is too generic
                                     # to anchor anything (社区, 孩子); it still scores




class Matcher:
    """The decision over an :class:`~bot.understanding.index.ItemIndex` (which it holds) and its rules,
    built once per knowledge snapshot."""

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
        norm = norm or (lambda text: text)
        cues = cues or {}
        self.index = ItemIndex(items, core, self.settings, ambiguous or {}, cues)
        # per item, its words (name, aliases, cues), normalised: an out-of-scope word crossing one is an
        # accident of the characters (领养 in 领养老金); the sibling rules read them too
        self._item_words = [frozenset(w for w in (norm(t).replace(" ", "")
                                                  for t in (*item_fields(item)["alias"], *cues.get(item.id, ())))
                                      if len(w) >= 2) for item in items]
        # per item, its name and aliases alone, normalised: what names it as a service (cues are situations)
        self._name_words = [frozenset(w for w in (norm(t).replace(" ", "")
                                                  for t in item_fields(item)["alias"]) if len(w) >= 2)
                            for item in items]
        self._contrast = Contrast(contrast or {}, self.index.position, norm)
        by_sound: dict[str, set[str]] = defaultdict(set)
        for own in self.index.alias_cores:
            for alias in own:
                by_sound[pinyin_key(alias)].add(alias)
        self._names_by_sound = {key: tuple(sorted(names)) for key, names in by_sound.items()}
        # the items' anchors and whole names, with the tests on them: one for the decision and every rule
        self.names = ItemNames(self.index, self.settings, core, cues)
        self.scope = OutOfScope(items, self.index, self.names, core, out_of_scope, cues, norm, self._item_words)
        self._question_anchors = self._compile_question_anchors(items)
        self.lists = Lists(self.index, self.settings, self._contrast, self.names)
        self.needs = TwoNeeds(self.index, self.settings, self._contrast, core, self.names)
        siblings: dict[str, set[str]] = defaultdict(set)
        for _term, members in self.index.ambiguous:
            for member in members:
                siblings[self.index.ids[member]].update(self.index.ids[m] for m in members if m != member)
        # items a generic word of [ambiguous] may mean together: they answer the same vague questions
        self._siblings = {ident: frozenset(others) for ident, others in siblings.items()}
        self.generic = GenericWords(self.index, self.names, self._contrast, self.settings)

    def _contrasted(self, compact: str, scored: list[tuple[float, str]], done: Sequence[str] = ()
                    ) -> tuple[frozenset[str], frozenset[str]]:
        """Sibling items the question rules out: in a ``[contrast]`` family, when two or more members
        score close to the top (within ``contrast_window``) and the question holds the words of some
        of them but of none of the others, the others.

        Why: siblings share almost all their vocabulary (转移, 外地, 转回; 社保卡, 办) and differ in one
        word — 医保 or 养老, 第一次 or 丢了 — which the bag of grams weighs no more than any other; an
        accident of wording in one sibling's questions then decides. The word is what a person at the
        counter would listen for, so it decides here, among the close ones only. A family's
        ``out_of_scope`` member is a lookalike we do not handle (驾驶证 among the cards): when only its
        words are there, the items it rules out are also returned apart: the caller falls back when the
        top is among them. ``done``: clauses that report something done; their words do not count for
        the item each of them completed (the close item it reads most like on its own)."""
        if not self._contrast.families or not scored:
            return frozenset(), frozenset()
        floor = max(scored[0][0] - self.settings.contrast_window, self.settings.clarify_min)
        close = {ident for score, ident in scored[: self.settings.max_candidates * 2] if score >= floor}
        generic = [(start, end, {self.index.ids[i] for i in members})
                   for term, members in self.index.ambiguous if term in compact
                   for start, end in occurring(term, compact)]
        spans: list[tuple[int, int, str]] = []
        for clause in done:
            text, start = clause.replace(" ", ""), compact.find(clause.replace(" ", ""))
            completed = self.index.ranked(self._core(clause), close) if start >= 0 else []
            if completed:
                spans.append((start, start + len(text), completed[0][1]))
        return self._contrast.ruled_out(compact, close, generic, spans)

    def _compile_question_anchors(self, items: Sequence[ServiceItem]) -> list[frozenset[str]]:
        """Per item, the character bigrams of its questions that no other item's questions use."""
        own = [{g for text in item.questions for g in grams_of(self._core(text)) if g[0] == "b"} for item in items]
        df: dict[str, int] = defaultdict(int)
        for grams in own:
            for gram in grams:
                df[gram] += 1
        limit = self.settings.question_anchor_max_items
        return [frozenset(g for g in grams if df[g] <= limit) for grams in own]

    def cue_sharing(self, ident: str, word: str) -> tuple[int, tuple[str, ...]] | None:
        """See :meth:`ItemNames.cue_sharing` (``faq check`` asks the matcher)."""
        return self.names.cue_sharing(ident, word)

    def anchored(self, normalized: str, idents: Iterable[str]) -> bool:
        """See :meth:`ItemNames.anchored`."""
        return self.names.anchored(normalized, idents)

    def features(self, normalized: str, only: Iterable[str] | None = None) -> list[tuple[Features, str]]:
        """(features, id) best first, over the shortlist (or over ``only`` when given)."""
        return self.index.ranked(self._core(normalized), only)

    def scores(self, normalized: str, only: Iterable[str] | None = None) -> list[tuple[float, str]]:
        """(score, id) best first."""
        return [(f.score, ident) for f, ident in self.features(normalized, only)]

    def match(self, normalized: str) -> MatchResult:
        """Decide answer / clarify / fallback for one normalised question. Phone and ID numbers,
        dates and amounts are cut first: they never say what is asked; an exact age past 80 is read as its
        decade (see ``digits_for_matching``)."""
        normalized = digits_for_matching(normalized)
        segments = self._core(normalized)
        joined = "".join(segments)
        heard = self._heard_name(segments)
        if heard is not None:  # 滴保咋个申请: the name 低保, typed by ear
            normalized, segments, joined = normalized.replace(joined, heard), (heard,), heard
        if len(units(joined)) < self.settings.min_units and joined not in self.index.exact:
            return MatchResult("fallback", None, (), 0.0)  # "1", "啊": too little to go on
        if self._about_office(normalized):
            return MatchResult("fallback", None, (), 0.0)  # 社保局几点下班: the office, not an item
        grams = grams_of(segments)
        ranked = self.index.ranked(segments, None, grams)
        scored = whole = [(f.score, ident) for f, ident in ranked]
        compact = normalized.replace(" ", "")
        after = self._after_context(normalized, scored)
        if after is not None:
            return after
        if ranked and ((scored[0][0] < self.settings.out_of_scope_override
                        and self.scope.counts_against(normalized, self.index.position[ranked[0][1]], joined))
                       or self.scope.asked_apart(normalized, self.index.position[ranked[0][1]])
                       or self.scope.matter_asked(normalized, self.index.position[ranked[0][1]])):
            # 驾照到期了咋个换: a topic we do not handle. An alias standing whole does not save the
            # item (公积金能取来交医保吗 holds 交医保, 车子年审 holds 年审); a word it owns does (see
            # OutOfScope.counts_against)
            return MatchResult("fallback", None, (), round(scored[0][0], 2))
        if ranked and ranked[0][0].matched < self.settings.min_evidence and joined not in self.index.exact:
            # 那要办好久: only generic words matched, however similar the strings look
            return MatchResult("fallback", None, (), round(scored[0][0], 2))
        # a done matter is no evidence for itself between siblings ("社保我已经转好了，医保关系咋个转回来") nor
        # for the meaning of a generic word ("失业登记已经做了，失业金咋个领"; see _asked)
        done = _done_clauses(normalized)
        asked = self._asked(normalized)
        asked_compact = asked.replace(" ", "")
        dropped, outside = self._contrasted(compact, scored, done)
        # a need refused ("低保审核没过，想评个低收入户") is no evidence for itself when another sibling's word
        # is there; without one, the refused need is what is asked about ("低保没批 不服找哪个复核")
        refused = [c.text for c in split_clauses(normalized) if REFUSED.match(c.text)]
        if refused:
            apart, outside_apart = self._contrasted(compact, scored, done + refused)
            if apart - dropped:
                dropped, outside = apart, outside_apart
        if scored and scored[0][1] in outside:
            # 驾驶证到期换证: reads like the disability-card renewal, but names a card we do not handle
            return MatchResult("fallback", None, (), round(scored[0][0], 2))
        dropped |= outside
        if dropped:  # 医保转回旺苍: the pension transfer reads alike, but 医保 rules it out
            scored = [pair for pair in scored if pair[1] not in dropped]
        ambiguous = (self.lists.several_named(normalized, scored, ranked)
                     or self.generic.clarify(self._core(asked) if asked != normalized else segments, scored, dropped,
                                        asked_compact))
        if ambiguous:
            # it names items, or uses a listed word for several: anchored either way
            return self._with_other_needs(normalized, scored, ambiguous)
        result = decide(scored, self.settings)
        if result.action != "fallback" and joined not in self.index.exact:
            # a name heard by ear rewrote the question: its core is no longer ``segments``
            held = (anchor_grams(segments, normalized, grams) if heard is None
                    else self.names.held(normalized))
            if not self.names.holds_anchor(held, result.candidates) and not self._loosely_anchored(
                    segments, normalized, result):
                # 想找个保姆 → 法律援助 on shared 想找/找个: no name, alias or cue of any offered item;
                # but an anchored item close behind is what the question names (身份证被洗坏了: the
                # disability-card renewal reads alike, the identity card is the one named)
                return (self._anchored_runner_up(held, scored)
                        or (self.generic.unanchored_member(segments, result.item) if result.item else None)
                        or MatchResult("fallback", None, (), result.score))
            if result.action == "answer":
                result = (self._open_question(normalized, held, scored)
                          or self._asked_over_story(normalized, scored, result)
                          or self._close_sibling(normalized, held, scored, result))
            else:
                result = self._anchored_options(held, scored, result)
                if result.action == "clarify":
                    result = self._asked_option(normalized, scored, result)
            result = self._still_on_topic(normalized, joined, ranked[0][1], result)
            result = self._runners_up(held, whole, result)
        return self._with_other_needs(normalized, scored, result)

    def _with_other_needs(self, normalized: str, scored: list[tuple[float, str]], result: MatchResult
                          ) -> MatchResult:
        """The answer, carrying in ``also`` the other items its question asks for in clauses of their own
        (see :mod:`bot.understanding.needs`: "在工地摔伤了，工资也不给" answers the injury and offers the wages);
        or, when the question says outright that it asks for each ("想申请康复训练补助，还想给他配个矫形器"; see
        :meth:`TwoNeeds.both_asked`), a clarify listing them with ``also`` set: which one first is the
        resident's to say, and the reply offers the other after it.

        Why the two: independent writers label a second need that only shows in a clause of its own with
        the main need, which the answer keeps (over seven held-out sets a clarify was wrong on 16 of the 22
        questions it changed, session 7), but one asked for outright with both (round 16: held-out +10
        −0, readable +42 −1). Only after an answer, so the clause rescoring costs nothing on clarify and
        fallback."""
        if result.action != "answer":
            return result
        needs = self.needs.asked_for(normalized, scored)
        if result.item not in needs:
            return result
        others = tuple(ident for ident in needs if ident != result.item)
        if self.needs.both_asked(normalized):
            # "想办个老年证，高龄补贴也想一起弄": both asked outright; the resident picks which comes first
            both = (result.item, *others)[: self.settings.max_candidates]
            return MatchResult("clarify", None, both, result.score, also=both)
        return replace(result, also=others)

    def _heard_name(self, segments: tuple[str, ...]) -> str | None:
        """The name or alias a one-word question sounds exactly like (same toneless syllables) when it
        is not itself a known text: 滴保 → 低保, 社保咔 → 社保卡. ``None`` otherwise, or when two
        names sound alike.

        Why: voice and pinyin input put any character of the right sound; a bare name is all the
        question says, so its pinyin bigram alone carries too little weight to answer (``min_evidence``)
        although it is exactly the name. Only the whole question, so a stray homophone inside a
        longer question changes nothing."""
        if len(segments) != 1 or segments[0] in self.index.exact or len(segments[0]) < 2:
            return None
        names = self._names_by_sound.get(pinyin_key(segments[0]), ())
        return names[0] if len(names) == 1 else None

    def _about_office(self, normalized: str) -> bool:
        """True when the question is about an office itself — its hours, phone, whereabouts — and
        names no item ("社保局几点下班", "社区晚上几点关门"). Why: the office's name (社保局) holds an
        item's anchor (社保), so such questions used to be answered with some item of that office."""
        if not OFFICE.search(normalized):
            return False
        rest = "".join(self._core(OFFICE.sub(" ", normalized)))
        return not _OFFICE_TIMES.sub("", rest)

    def _after_context(self, normalized: str, scored: list[tuple[float, str]]) -> MatchResult | None:
        """The decision when the top item is named only in clauses said in passing and the clauses that
        ask name something else. Said in passing is what was done ("结婚证领好了", "医保交了的"), who someone
        is ("我是低保户", "也是五保户"), what they have ("家里老人有残疾证", "出生证明也在"), who asks for whom
        ("网格员帮一个老人问") or a paper to bring ("要带残疾证原件不"; see :func:`split_clauses`).

        The decision is the rest's own, when it answers or offers other items clearly ("出生证明办好了，接下来
        医保咋个给他上", "我们有低保，想申请公租房"); or a fallback when the rest names no item and speaks of
        another matter ("结婚证领好了，婚假有几天", "家里是低保户，供电所电话多少"). ``None`` — the usual
        decision — otherwise: "低保批下来了，啥时候发钱" is still about the top item's money.

        Why: long questions tell the situation first, and every clause of it can name an item; scored as a
        whole, those names outweigh the one asked for. The top item counts as named by the rest only by an
        anchor its close rivals lack (报销 after "当时没有办异地备案" is the reimbursement's as much as the
        filing's). Who someone is or has is weaker evidence than what was done: it is often the very
        subject of the question ("有独生子女证，到了60岁能领啥"), so after it the rest must name its item by
        a name or alias (:meth:`_each_named`) or read as that item's own question would (score at least
        ``after_context_clear``: "租房有没得补贴，我是低收入家庭"), and only an out-of-scope word that counts
        against the top item (:meth:`OutOfScope.counts_against`) makes a fallback; after a done clause,
        words no item's texts know in what the rest asks suffice too (a follow-up about the done item
        itself — 发钱, 拿到, 激活, 还要办啥子 — uses the catalogue's vocabulary), unless the rest asks to do
        it again (重新弄一遍: the done item itself, in everyday words), asks how it stands (查, 到账), asks
        nothing (a trouble told) or only says it stopped coming (今年没收到)."""
        if not scored:
            return None
        clauses = split_clauses(normalized)
        aside = [c.text for c in clauses if c.aside]
        if not aside:
            return None
        top = scored[0][1]
        if not self.names.anchored(" ".join(aside), (top,)):
            return None  # (first: it fails for a third of the questions with an aside, the length test hardly ever)
        rest = " ".join(c.text for c in clauses if not c.aside)
        if all(STOPPED.match(c.text) for c in clauses if not c.aside):
            return None  # "独生子女奖励以前打到存折上的 今年没收到": the done item stopped coming
        segments = self._core(rest)
        if len(units("".join(segments))) < self.settings.min_units:
            return None
        # the rest names the top item by a word of its own — not only by one it shares with the items close
        # to it (报销 of 外地看病报销 is also the reimbursement's, after "当时没有办异地备案")
        close = [self.names.anchors[self.index.position[ident]] for _, ident in scored[1: self.settings.max_candidates]]
        grams = grams_of(segments)
        held = anchor_grams(segments, rest, grams)
        own = held & self.names.anchors[self.index.position[top]]
        if any(all(gram not in anchors for anchors in close) for gram in own):
            return None  # (the few grams tested one by one: cheaper than the union of the close items' anchors)
        # a paper to bring names the item it is a material of, not the need ("产假的钱哪个发，要准备出生证明不"):
        # as weak a reason to keep the top item as a matter already done
        done = self.names.anchored(" ".join(c for c in aside if DONE.search(c) or MATERIAL.search(c)), (top,))
        asking = [c.text for c in clauses if not c.aside and QUESTION.search(c.text)]
        if done and _AGAIN.search(" ".join(asking)):
            # "上个月开的住这边的证明 单位说过期了 要重新开吗": the done item again, whatever else reads alike
            return None
        again = [(f.score, ident) for f, ident in self.index.ranked(segments, None, grams)]
        if again and again[0][1] == top and again[0][0] >= self.settings.after_context_min:
            return None  # the rest alone still reads most like the top item, and well
        own = next((score for score, ident in again if ident == top), 0.0)
        named = [(score, ident) for score, ident in again
                 if ident != top and score >= own + self.settings.clause_margin
                 and self.names.holds_anchor(held, (ident,))]
        result = decide(named, self.settings)
        if (result.action != "fallback" and result.score >= self.settings.after_context_min
                and (done or self._each_named(rest, result.candidates, top)
                     or (result.action == "answer" and result.score >= self.settings.after_context_clear))):
            # the rest names another item, and reads more like it than like the one aside — unless the
            # rest asks about something out of scope that item does not speak of ("失业金领完了，附近有没有
            # 招工的厂": 招工 is no matter of the welfare jobs, though the rest reads most like them)
            if (result.score < self.settings.out_of_scope_override
                    and self.scope.counts_against(rest, self.index.position[result.candidates[0]], "".join(segments))):
                return MatchResult("fallback", None, (), round(scored[0][0], 2))
            return result
        # the rest's story words do not count when what it asks points back at the item said in passing
        # ("…超市找到了工作，老板说如果我有就业创业证…，这个证在社区能帮我办不"); they do when it asks about
        # something else ("…家里是低保户，他家电表坏了，供电所电话多少")
        referred = " ".join(aside) if _POINTS_BACK.search(" ".join(asking)) else ""
        if self.scope.counts_against(rest, self.index.position[top], "".join(segments), referred):
            return MatchResult("fallback", None, (), round(scored[0][0], 2))  # "…，供电所电话多少"
        if not done:
            return None
        # what the rest asks (its clauses with a question word) speaks of a matter no item's texts know:
        # "县医院呼吸科哪个医生看得好" — not "还要办啥子", a next step of the done item
        if not asking:
            return None  # "志愿者账号绑的手机号换了 现在登不上去了": a trouble told, no other matter asked
        if _STATUS.search(" ".join(asking)):
            return None  # "农村养老保险今年交了 咋个查交上没有": how the done item stands, not another matter
        unknown = {g for g in grams_of(self._core(" ".join(asking))) if g[0] == "b" and g not in self.index.weights}
        return MatchResult("fallback", None, (), round(scored[0][0], 2)) if len(unknown) >= 2 else None

    def _asking(self, normalized: str) -> str:
        """The clauses that ask (a question word: 怎么, 哪, 吗, 能不能 …), when the question also has clauses
        that do not; else the question.

        Why: when the top items tie, the one the asking clause names is the need; the other is named only
        in the story before it ("当时没有办异地备案，现在回来了，回来报销要哪些材料": reimbursement)."""
        clauses = [c.text for c in split_clauses(normalized) if not c.aside]
        asking = [c for c in clauses if QUESTION.search(c)]
        return " ".join(asking) if asking and len(asking) < len(clauses) else normalized

    def _asked_option(self, normalized: str, scored: list[tuple[float, str]], result: MatchResult) -> MatchResult:
        """The answer, when the items a clarify would offer read alike on the whole question but one of
        them clearly leads on its asking clauses alone (see :meth:`_asking`); else the clarify."""
        asking = self._asking(normalized)
        if asking == normalized:
            return result
        again = [(f.score, ident) for f, ident in self.index.ranked(self._core(asking), result.candidates)]
        if not again or (len(again) > 1 and again[0][0] - again[1][0] < self.settings.clause_margin):
            return result
        best = again[0][1]
        if not self.names.anchored(asking, (best,)):
            return result
        score = next(value for value, ident in scored if ident == best)
        return MatchResult("answer", best, (best,), round(score, 2))

    def _asked_over_story(self, normalized: str, scored: list[tuple[float, str]], result: MatchResult
                          ) -> MatchResult | None:
        """The runner-up, when it is within ``clarify_window`` of the answered item and clearly leads on
        the question's asking clauses alone (see :meth:`_asked_option`); ``None`` otherwise.

        Why: a clause that only tells the situation ("我腿脚不方便走不到社区") may read like another item
        (the disability card) as much as the clause that asks reads like its own (低保能不能让网格员帮我递材
        料); a point or two then answered the story. The asking clause is what the resident wants."""
        close = [ident for score, ident in scored[: self.settings.max_candidates]
                 if score >= result.score - self.settings.clarify_window]
        if len(close) < 2:
            return None
        asked = self._asked_option(normalized, scored, MatchResult("clarify", None, tuple(close), result.score))
        if asked.action != "answer" or asked.item is None or asked.item == result.item or result.item is None:
            return None
        asking = self._asking(normalized)
        # only when the asking clauses name the runner-up whole and hold nothing of the answered item
        if (not self.names.names_item(asking, self.index.position[asked.item])
                or self.names.anchored(asking, (result.item,))):
            return None
        return asked

    def _asked(self, normalized: str) -> str:
        """The question without its clauses that report something done ("已经在社区做了失业登记", "社保我
        已经转好了"), when what is left still says something; else the question.

        Read for a generic word (``[ambiguous]``, see :meth:`GenericWords.clarify`): a finished matter is no evidence
        for what the word means here, but it often holds a sibling's word (失业登记已经做了，失业金咋个领:
        登记 would make 失业 the registration). Who the resident is or has stays: it is often what tells
        the items apart (我是退役士兵，想办个优待证). ``[contrast]`` families read the whole question and
        only discount, in a done clause, the item it completed (see :meth:`_contrasted`): its other words
        still tell (刚办了一级残疾证，……能申请哪些补贴: 一级 is the nursing subsidy's)."""
        done = _done_clauses(normalized)
        if not done:
            return normalized
        rest = " ".join(c.text for c in split_clauses(normalized) if c.text not in done)
        return rest if len(units("".join(self._core(rest)))) >= self.settings.min_units else normalized

    def _each_named(self, text: str, idents: Sequence[str], aside: str) -> bool:
        """True when each item is named in the text as a service — by its name, an alias or a generic
        word that may mean it (医保) — that neither the other items nor the item ``aside`` (the one the
        context named) are named by: 公租房, 低保; not 优待 after "我是退伍老兵" (the veterans' card is an
        优待 too), nor a cue (60岁, 到年龄: situations, which after "有独生子女证" tell more about the
        certificate's reward than about the pension they also suit)."""
        compact = text.replace(" ", "")

        def holds(word: str) -> bool:  # also loosely: 回来以后报销 holds 回来报销, 优待的证 holds 优待证
            return word in compact or (len(word) >= 3 and remove_loosely(compact, word) is not None)

        def names(ident: str) -> set[str]:
            index = self.index.position[ident]
            return ({w for w in self._name_words[index] if holds(w)}
                    | {term for term, members in self.index.ambiguous if index in members and holds(term)})

        words = [names(ident) for ident in idents]
        taken = names(aside)
        return all(own - taken - set().union(*(other for other in words if other is not own)) for own in words)

    def _still_on_topic(self, normalized: str, joined: str, top: str, result: MatchResult) -> MatchResult:
        """The answer, or a fallback when the answered item is not the one the out-of-scope check
        looked at (a ``[contrast]`` word set the top aside) and an out-of-scope word counts against it
        ("儿子结婚请客，要不要去社区报备": the association was checked, the marriage is answered)."""
        if (result.action != "answer" or result.item == top or result.item is None
                or result.score >= self.settings.out_of_scope_override
                or not self.scope.counts_against(normalized, self.index.position[result.item], joined)):
            return result
        return MatchResult("fallback", None, (), result.score)

    def _anchored_options(self, held: set[str], scored: list[tuple[float, str]],
                          result: MatchResult) -> MatchResult:
        """A clarify list offers only items the question anchors (``held``: its anchor grams; a list of
        five loosely related items helps nobody); when one is left, it is the answer."""
        options = tuple(ident for ident in result.candidates if self.names.holds_anchor(held, (ident,)))
        if len(options) == len(result.candidates) or not options:
            return result  # (none anchored: loosely anchored by its questions, keep the list)
        if len(options) == 1:
            score = dict((ident, value) for value, ident in scored)[options[0]]
            return MatchResult("answer", options[0], options, round(score, 2))
        return MatchResult("clarify", None, options, result.score)

    def _anchored_runner_up(self, held: set[str], scored: list[tuple[float, str]]) -> MatchResult | None:
        """The decision among the items the question anchors (``held``: its anchor grams), when one
        scores within ``anchored_runner_up`` of an unanchored top."""
        floor = scored[0][0] - self.settings.anchored_runner_up
        anchored = [(score, ident) for score, ident in scored[: self.settings.max_candidates]
                    if score >= floor and self.names.holds_anchor(held, (ident,))]
        if not anchored:
            return None
        result = decide(anchored, self.settings)
        return result if result.action != "fallback" else None

    def _open_question(self, normalized: str, held: set[str], scored: list[tuple[float, str]]
                       ) -> MatchResult | None:
        """Clarify an open question ("有啥子补贴", "能领啥", "有什么政策") when there is more than one
        answer: another item it names (``held``: the question's anchor grams) scores almost as well
        ("残疾人每个月有什么钱可以领": living subsidy and nursing subsidy both), or the question names only
        a subject several items share (see :meth:`_same_subject`: "退伍军人有啥子待遇", "返乡创业有啥子扶持").
        A specific question ("二级残疾有啥子补贴") leaves one item well ahead, or holds a word of the top
        item alone, and is still answered."""
        if not _OPEN_QUESTION.search(normalized.replace(" ", "")):
            return None
        floor = scored[0][0] - self.settings.open_question_margin
        close = [ident for score, ident in scored[: self.settings.max_candidates] if score >= floor]
        options = [ident for ident in close if self.names.holds_anchor(held, (ident,))]
        # a candidate lacking the top item's words counts only when a [contrast] word marks it (上门照顾，
        # 政府出钱不: 出钱 is the care subsidy's); else the top item's own word decides (三级残疾，吃低保的)
        needed = self._top_words(normalized, scored[0][1])[1]
        marked = self._contrast.marked(normalized.replace(" ", ""), scored[0][1])
        options = [ident for ident in options
                   if needed <= self.names.anchors[self.index.position[ident]] or ident in marked]
        if len(options) < 2 or options[0] != scored[0][1]:
            benefit = _BENEFIT.search(normalized.replace(" ", ""))
            options = self._same_subject(normalized, scored) if benefit else []
            if len(options) < 2:
                return None
        # the items a generic word of the question names are what it asks about too ("老人没人照顾 …
        # 有啥帮扶": 没人照顾 names the home care as well as the care subsidy)
        options += [ident for ident in self.generic.named_with(normalized.replace(" ", ""), options[0])
                    if ident not in options]
        return MatchResult("clarify", None, tuple(options[: self.settings.max_candidates]), round(scored[0][0], 2))

    def _close_sibling(self, normalized: str, held: set[str], scored: list[tuple[float, str]],
                       result: MatchResult) -> MatchResult:
        """Clarify an answer when a sibling of the item (one that a generic word of ``[ambiguous]`` may
        also mean) scores within ``sibling_window`` points and the question holds no word of the item
        that the sibling lacks: no name, alias or cue bigram of its own, no ``[contrast]`` word.

        Why: residents ask of a sibling pair without the generic word itself ("计生扶助金咋个申请",
        "人死了有丧葬补助吗", "助老服务咋个申请"), and the scores then lean to one item on the wording
        of its sample questions, not on anything the resident said; independent question writers
        mark such questions ambiguous. A word only one of them has (丢了, 八十岁, 上门) still answers,
        and the close siblings go with the answer in ``related``, for the reply to offer: writers still
        call about half of such questions ambiguous, so a resident who meant the sibling is one reply
        away from it."""
        top = result.item
        siblings = self._siblings.get(top or "", frozenset())
        floor = result.score - self.settings.sibling_window
        close = [ident for score, ident in scored[: self.settings.max_candidates * 2]
                 if ident in siblings and score >= floor]
        if not close:
            return result
        own = held & self.names.anchors[self.index.position[top]]
        words = self._top_words(normalized, top)[0]
        compact = normalized.replace(" ", "")
        vague = [ident for ident in close if not own - self.names.anchors[self.index.position[ident]]
                 and not set(words) - self._item_words[self.index.position[ident]]
                 and ident not in self._contrast.ruled_out(compact, {top, ident})[0]]
        if not vague:
            # told apart by a word of the answer's own, yet close: offered after the answer, not asked
            return replace(result, related=tuple(close[: self.settings.max_related]))
        return MatchResult("clarify", None, (top, *vague)[: self.settings.max_candidates], result.score)

    def _runners_up(self, held: set[str], scored: list[tuple[float, str]], result: MatchResult) -> MatchResult:
        """An answer with no close sibling offered carries the items scoring within ``runner_up_window``
        points of it that the question also anchors (``held``: its anchor grams) in ``related``, for
        the reply to offer after the answer.

        Why: a close call is where the matcher is most often wrong, and where independent writers
        most often call a question ambiguous. Over the twelve unread sets (aggregate counts), the reply
        now offers the expected item after 33 of 82 wrong answers (5 before, as close siblings) and
        the other item after 48 of 166 ambiguous questions answered with one (33 before), at the cost
        of one more line after 5.5 % of right answers (1.3 % before): the item meant is one reply
        away. The scores come from the whole ranking, before ``[contrast]`` words set siblings aside:
        that rule is wrong often enough for the sibling to be worth offering. The decision itself is
        unchanged (``match --jsonl`` reports the same): a clarify where one item is meant is a miss
        too, and answering the likelier item at once serves the resident who meant it."""
        if result.action != "answer" or result.related:
            return result
        floor = result.score - self.settings.runner_up_window
        close = tuple(ident for score, ident in scored[: self.settings.max_candidates]
                      if ident != result.item and score >= floor and self.names.holds_anchor(held, (ident,)))
        return replace(result, related=close[: self.settings.max_related]) if close else result

    def _top_words(self, normalized: str, ident: str) -> tuple[list[str], set[str]]:
        """The item's own words (name, alias, cue) standing whole in the question, none inside another
        found one, and their character bigrams."""
        compact = normalized.replace(" ", "")
        found = [w for w in self._item_words[self.index.position[ident]] if w in compact]
        words = [w for w in found if not any(w != other and w in other for other in found)]
        return words, {"b" + w[i - 1:i + 1] for w in words for i in range(1, len(w))}

    def _same_subject(self, normalized: str, scored: list[tuple[float, str]]) -> list[str]:
        """The top item and the candidates, within ``subject_margin`` points, that every word of the
        top item in the question also anchors: the question names a subject (退役军人, 创业, 失业,
        去世) and nothing of the top item alone, so every item of that subject answers it. A
        ``[contrast]`` word still sets a candidate aside (当过兵的坐车能免费不: 坐车 is the card's).

        Why words rather than scores: an item's score also counts how much its questions resemble
        the wording (有啥子待遇 reads like the card's questions), which says nothing about which of
        the subject's items the resident means; a word of one item only (二级 for the nursing
        subsidy) does. Whole words of the item (name, alias, cue), not its bigrams: bigrams that
        cross words in a cue (人去 from 退休工人去世) would make every question look specific."""
        compact = normalized.replace(" ", "")
        top = self.index.position[scored[0][1]]
        words, needed = self._top_words(normalized, scored[0][1])
        if not words:
            return []
        floor = max(scored[0][0] - self.settings.subject_margin, self.settings.clarify_min)
        options = [ident for score, ident in scored[: self.settings.max_candidates * 2]
                   if score >= floor and needed <= self.names.anchors[self.index.position[ident]]]
        if len(options) > self.settings.subject_max_items:
            return []  # a subject of many items (残疾) is no subject: the usual decision stands
        ruled_out, _ = self._contrast.ruled_out(compact, set(options)) if len(options) > 1 else (frozenset(), None)
        options = [ident for ident in options if ident not in ruled_out][: self.settings.max_candidates]
        if len(options) < 2:
            return []
        rest = compact
        for word in words:
            rest = rest.replace(word, " ")
        others = set().union(*(self.names.anchors[self.index.position[i]] for i in options[1:]))
        if (self.names.held(rest) & self.names.anchors[top]) - others:
            return []  # the rest names the top item alone (参保的人过世了: 参保)
        return options

    def _loosely_anchored(self, segments: tuple[str, ...], normalized: str, result: MatchResult) -> bool:
        """A confident match anchored only by a word of the item's own questions that no other item
        uses ("想把台阶改成斜坡": 台阶 is in no name, alias or cue, but only the accessibility item's
        questions speak of it). Needs a clearly higher score than a named item: everyday questions
        share odd words with some item's questions more often than they share its name."""
        if result.score < self.settings.loose_anchor_score:
            return False
        grams = anchor_grams(segments, normalized)
        return any(grams & self._question_anchors[self.index.position[i]] for i in result.candidates)


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



#: An open question: the resident asks what there is (benefits, policies, papers), not about one thing.
_OPEN_QUESTION = re.compile(r"(?:有|能领|能拿|可以领|能享受|可以享受|能申请|可以申请|要办)些?(?:什么|哪些)"
                            r"(?:补贴|钱|待遇|福利|政策|救助|帮助|证|手续)?"
                            r"|有(?:什么|哪些)(?:补贴|待遇|福利|政策|救助|优惠)"
                            r"|(?:补贴|待遇|福利|政策|扶持)有(?:哪些|什么)"
                            r"|什么(?:待遇|福利|政策|扶持|扶助|帮扶|照顾|保障|优惠)"
                            # "政府能不能帮一哈", "社区能帮什么", "补不补钱", "有没有补贴": asks what help there is
                            r"|(?:能不能|能|可以|可不可以|会不会)帮(?:一把|一哈|一下|忙|什么|点)?(?:不|吗|没有)?$"
                            r"|能帮(?:什么|哪些|些什么)|补不补|(?:给不给|出不出)钱|(?:出|给|补)钱(?:不|吗|没有)$"
                            r"|有没有(?:什么)?(?:补贴|政策|救助|待遇|扶持|帮助|照顾|优惠|福利)")
#: An open question about benefits or help (not "有啥子用", "有什么区别"): what a subject's items give.
_BENEFIT = re.compile(r"补贴|钱|待遇|福利|政策|救助|帮助|扶持|扶助|帮扶|照顾|保障|优惠|帮|(?:能|可以)(?:领|拿|享受)(?:什么|哪些)")
#: Doing a thing again (重新弄, 再办一次, 每年都要): after a done clause, a question about that very item.
_AGAIN = re.compile(r"重新|再(?:弄|办|申请|认定|交|做|来|搞)|(?:每年|年年)都?要")
#: What a question asks about a done matter's state (查, 到账, 批了没, 进度): still about that matter.
_STATUS = re.compile(r"查|到账|到了没|成功|交上|批了没|下来没|办好没|好了没|进度|到哪一步|审核|通过没|生效")
#: What such a question asks besides the office: hours (who is on duty too), days, phone, place.
_OFFICE_TIMES = re.compile(r"几点|上不上班|上班|下班|值班|开不开门|开门|关门|办公|营业|休不?休息|午休|休息|周.|星期.|礼拜.|节假日|放假|早上|晚上|中午|下午|上午|"
                           r"时间|电话|号码|地址|在哪|哪里|位置|多少|几号|开|关|上|下|到|去|走|今天|明天|还|现在|是|有|人")


#: What points back at a thing named before: 这个证, 那张卡, 这个补贴 ("老板说如果我有就业创业证…这个证在社区能办不").
_POINTS_BACK = re.compile(r"(?:这|那)(?:个|张|本|种|项)?(?:证|卡|本本|本子|补贴|补助|钱|保险)")


def _done_clauses(normalized: str) -> list[str]:
    """The clauses that report something done (see ``DONE``) — none when the question asks to do it
    again (重新, 再办, 每年都要: "去年认定了特困 今年还要重新弄一遍不").

    Why: a done matter is no evidence for itself between siblings nor for what a generic word means
    (see ``Matcher._asked``, ``Matcher._contrasted``); but one asked about again is the very matter
    asked, and setting its words aside then left a sibling's everyday word to decide."""
    if _AGAIN.search(normalized.replace(" ", "")):
        return []
    return [c.text for c in split_clauses(normalized) if c.aside and DONE.search(c.text)]
