"""The items' names and anchors: what a question must hold to be about an item, and the whole names it
may list.

* **Anchors.** Per item, the bigrams (characters and folded pinyin) of its name, aliases and ``[cues]``
  that few items share; the decision answers or offers an item only when the question holds one.
* **Specific anchors.** The anchors of very few items that are no everyday word of the questions either:
  what a clause needs to count as a second need, or a list's side to name something.
* **Whole names.** Every item's name and aliases and the ``[ambiguous]`` words, each with the items it
  names: what a question lists ("五保和低保") or names whole.

Split out of :mod:`bot.understanding.matcher`: its decision and three of its rules
(:mod:`~bot.understanding.lists`, :mod:`~bot.understanding.needs`, :mod:`~bot.understanding.ambiguity`)
read the same names and anchors, so one :class:`ItemNames`, built once per knowledge snapshot, holds
them and the one definition of every test on them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Sequence

from bot.understanding.grams import anchor_grams, grams_of, units
from bot.understanding.index import CoreFn, ItemIndex

if TYPE_CHECKING:
    from bot.understanding.matcher import MatcherSettings


class ItemNames:
    """Per item position, its anchors and specific anchors, and the tables the rules derive from them
    (who owns an anchor, what names one item alone); the whole names of all items; and the tests of a
    text against them. Built once per knowledge snapshot (with the matcher); read-only after. Why the
    tables live here: the generic-word and list rules both read them, and one place computes them."""

    def __init__(self, index: ItemIndex, settings: "MatcherSettings", core: CoreFn,
                 cues: Mapping[str, Sequence[str]]) -> None:
        """``cues`` (item id → words, raw): item-specific words besides the name and aliases."""
        self.index = index
        self.settings = settings
        self._core = core
        #: per item position, its anchor grams (name, alias, cue) and the specific ones among them
        self.anchors, self.specific, self._anchor_df = self._compile_anchors(cues)
        #: anchor gram -> the positions of the items it anchors (one look-up, not one test per item)
        self.anchor_owners: Mapping[str, frozenset[int]] = _owners(self.anchors)
        #: every item's specific anchors together: does a text name any item specifically?
        self.any_specific: frozenset[str] = frozenset().union(*self.specific)
        specific_owners = _owners(self.specific)
        #: per item position, the character anchors that name it and no other item (摔伤)
        self.sole: list[frozenset[str]] = [frozenset(g for g in grams if g[0] == "b" and len(specific_owners[g]) == 1)
                                           for grams in self.specific]
        self._names, self._name_owners = self._compile_names()

    def _compile_anchors(self, cues: Mapping[str, Sequence[str]]
                         ) -> tuple[list[frozenset[str]], list[frozenset[str]], Mapping[str, int]]:
        """Per item, the bigrams (characters and folded pinyin, so 低宝 still anchors 低保) of its
        name, aliases and ``[cues]`` that few items share: what a question must contain before the
        item is answered. Without it a question that is about nothing we handle ("想找个保姆") still
        finds some item whose questions share a word or two with it. Also returns the *specific*
        ones (see ``clause_anchor_max_items``), which a clause needs to count as a second need, and
        how many items hold each gram (for :meth:`cue_sharing`)."""
        own: list[set[str]] = []
        for index, ident in enumerate(self.index.ids):
            grams: set[str] = set()
            for segments in self.index.alias_segments[index]:
                grams |= {g for g in grams_of(segments) if g[0] != "u"}
            for cue, segments in zip(cues.get(ident, ()), self.index.cue_cores[index]):
                grams |= self._cue_grams(cue, segments)
            own.append(grams)
        df: dict[str, int] = defaultdict(int)
        for grams in own:
            for gram in grams:
                df[gram] += 1
        anchors = [frozenset(g for g in grams if df[g] <= self.settings.anchor_max_items) for grams in own]
        # specific: few items' names hold it, and it is no everyday word of their questions either
        # (社区 is in two names but in most questions: "社区能开不" names nothing)
        used: dict[str, int] = defaultdict(int)
        for item_grams in self.index.item_grams:
            for gram in item_grams:
                used[gram] += 1
        common = max(self.settings.clause_anchor_max_items, len(self.index.ids) // 4)
        specific = [frozenset(g for g in grams if df[g] <= self.settings.clause_anchor_max_items
                              and used[g] <= common) for grams in own]
        return anchors, specific, dict(df)

    def _cue_grams(self, cue: str, segments: tuple[str, ...] | None = None) -> set[str]:
        """The anchor grams of a ``[cues]`` word: the bigrams of its core; for a word that the cut of stop
        words leaves no bigram of (离了, 后事, 告他, 夹了手), the bigram a question offers for it as
        written (see :func:`anchor_grams`: its characters as typed, also skipping the particle inside).

        Why: the question keeps its particles for anchoring (离了婚 holds 离婚), so a cue written with
        one was simply never met ("去民政局离了" held no divorce anchor although 离了 is a cue).
        ``segments``: the word's core, when the index has cut it already (``ItemIndex.cue_cores``)."""
        grams = {g for g in grams_of(self._core(cue) if segments is None else segments) if g[0] != "u"}
        if any(g[0] == "b" for g in grams):
            return grams
        written = "".join(units(cue.replace(" ", "")))
        if len(written) == 2:
            grams.add("b" + written)
        elif len(written) == 3:
            grams.add("b" + written[0] + written[2])
        return grams

    def _compile_names(self) -> tuple[re.Pattern[str] | None, dict[str, frozenset[int]]]:
        """Whole names a question may list: every item's name and aliases (cores of two or more
        characters) and the ``[ambiguous]`` words, each with the items it names, as one alternation,
        longest first (居住证明 before 居住证: the longer name is the one read)."""
        owners: dict[str, set[int]] = defaultdict(set)
        for index, own in enumerate(self.index.alias_cores):
            for alias in own:
                owners[alias].add(index)
        for term, members in self.index.ambiguous:
            if len(term) >= 2:
                owners[term].update(members)
        if not owners:
            return None, {}
        ordered = sorted(owners, key=lambda word: (-len(word), word))
        return re.compile("|".join(map(re.escape, ordered))), {w: frozenset(v) for w, v in owners.items()}

    def whole_names(self, text: str) -> Iterator[tuple[int, int, frozenset[int]]]:
        """The whole names (name, alias or generic word) in ``text``, left to right and each at its
        longest, as (start, end, the item positions it names)."""
        if self._names is None:
            return
        for match in self._names.finditer(text):
            yield match.start(), match.end(), self._name_owners[match.group(0)]

    def names_item(self, text: str, index: int) -> bool:
        """True when ``text`` holds a whole name of the item: its name, an alias, or a generic word
        (``[ambiguous]``) that may mean it (医保 for the enrolment)."""
        return any(index in owners for _, _, owners in self.whole_names(text))

    def held(self, text: str) -> set[str]:
        """The anchor grams a text offers: those of its core, and across a particle as typed (离了婚
        holds 离婚; see :func:`anchor_grams`). What every test of a text against anchors starts from."""
        return anchor_grams(self._core(text), text)

    def anchored(self, normalized: str, idents: Iterable[str]) -> bool:
        """True when the question holds an anchor (name, alias or cue bigram) of any of the items."""
        return self.holds_anchor(self.held(normalized), idents)

    def names_specifically(self, text: str, index: int) -> bool:
        """True when the text holds a specific anchor of the item (see ``specific``): something in it
        names that item, not merely a word many items share."""
        return bool(self.held(text) & self.specific[index])

    def holds_anchor(self, held: set[str], idents: Iterable[str]) -> bool:
        """True when a text's anchor grams (``held``, see :func:`anchor_grams`) hold an anchor of any of
        the items. Why apart from :meth:`anchored`: callers asking about several items one by one
        compute the grams once."""
        return any(held & self.anchors[self.index.position[i]] for i in idents if i in self.index.position)

    def cue_sharing(self, ident: str, word: str) -> tuple[int, tuple[str, ...]] | None:
        """``None`` when the ``[cues]`` word anchors the item; else how many items share its least
        shared piece (0: no piece of two characters is left once stop words are cut), and the
        word's core segments (what is left of it for matching).

        Why: a piece shared by more than ``anchor_max_items`` items anchors none of them, so a cue made
        only of such pieces (申领) silently does nothing; so does one that stop words cut down to
        single characters (丢了 → 丢). ``faq check`` reports it where the word is written; the
        matcher only says which words."""
        index = self.index.position.get(ident)
        if index is None:
            return None
        segments = self._core(word)
        grams = self._cue_grams(word)
        if grams & self.anchors[index]:
            return None
        return min((self._anchor_df.get(g, 0) for g in grams), default=0), segments


def _owners(per_item: Sequence[frozenset[str]]) -> dict[str, frozenset[int]]:
    """Gram -> the positions of the items whose set holds it."""
    owners: dict[str, set[int]] = defaultdict(set)
    for position, grams in enumerate(per_item):
        for gram in grams:
            owners[gram].add(position)
    return {gram: frozenset(items) for gram, items in owners.items()}
