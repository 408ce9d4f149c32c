"""Generic words (``[ambiguous]`` in intents/): clarify when a word names several items and nothing else
in the question tells them apart.

"社保卡丢了" → 丢了 belongs to the replacement item: answer it; "社保卡咋个办" → nothing left that tells
the two card items apart: ask. The hard part is what counts as "telling apart": the rest of the question
read without the word and its kin (:meth:`GenericWords.without_kin`), only grams that may tell the
members apart (:meth:`GenericWords._telling`), and a lead big enough on that rest
(:meth:`GenericWords.lead`), or a longer name of one member, or ``[contrast]`` words ruling the others out.

Split out of :mod:`bot.understanding.matcher` (which calls :meth:`GenericWords.clarify` in its
decision) because it is one rule with its own helpers; it reads the matcher's index, the items' anchors
(:class:`~bot.understanding.names.ItemNames`), contrast families and settings and changes none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from bot.understanding.contrast import Contrast
from bot.understanding.grams import anchor_grams, grams_of, occurring, remove_loosely, units
from bot.understanding.index import ItemIndex
from bot.understanding.model import MatchResult
from bot.understanding.names import ItemNames
from bot.understanding.phonetic import syllable

if TYPE_CHECKING:
    from bot.understanding.matcher import MatcherSettings


class GenericWords:
    """The ``[ambiguous]`` rule over one knowledge snapshot's index (built with the matcher)."""

    def __init__(self, index: ItemIndex, names: ItemNames, contrast: Contrast, settings: "MatcherSettings") -> None:
        """``names``: per item position, its anchor grams (name, alias, cue) and the specific ones among
        them, as the matcher built them."""
        self.index = index
        self.settings = settings
        self._names = names
        self._contrast = contrast

    def clarify(self, segments: tuple[str, ...], scored: list[tuple[float, str]],
                   dropped: frozenset[str] = frozenset(), compact: str = "") -> MatchResult | None:
        """Clarify when the question uses a generic word (``[ambiguous]`` in intents/) and nothing
        else in it singles out one of the items the word may mean.

        "Singles out" is measured on the rest of the question only: the weight of its grams that one
        member has and the others lack. "社保卡丢了" → 丢了 belongs to the replacement item, answer it;
        "社保卡咋个办" → nothing left that tells them apart, ask.
        """
        joined = "".join(segments)
        for term, members in self.index.ambiguous:
            # most words are not there at all: their first character settles it without a call
            rest = remove_loosely(joined, term) if term[0] in joined else None
            if rest is None:
                continue
            ids = [self.index.ids[i] for i in members if self.index.ids[i] not in dropped]
            if len(ids) < 2:
                continue  # the others were ruled out by [contrast] words: the word names one item here
            if joined != term:
                if joined in self.index.exact:
                    return None  # the question is exactly one item's name or alias (社保卡丢了)
                if not scored or (scored[0][1] not in ids and not self._unclaimed_top(rest, scored, ids)):
                    return None  # the question is about something else that merely mentions the word
                # the word itself (居住证 in 开居住证) is no evidence for one of its items, but a longer
                # word holding it is (失业保险 holds 失业: the benefit, not the registration); nor is its
                # kin standing whole when the word itself is read only loosely (养老金 of 养老金没到)
                spans = [(start, end, set(ids)) for word in self.kin(term, members)
                         for start, end in occurring(word, compact)]
                ruled_out, _ = self._contrast.ruled_out(compact, set(ids), spans)
                if len(ids) - len(ruled_out) == 1:
                    # 补一张社保卡: 补 leaves one of the word's items, whatever the scores say
                    return self._only_member(next(i for i in ids if i not in ruled_out), scored)
                if self._named_member(joined, term, members) == scored[0][1]:
                    return None  # 办医保, 交医保: one member's own longer name holds the word
                # the lead is read without the word's kin: 去世 after 丧葬费 tells those items nothing
                lead, leader, weight = self.lead(self.without_kin(joined, members), members)
                if leader == scored[0][1] and weight >= self.settings.min_rest_weight and (
                        lead >= self.settings.ambiguity_lead
                        or (lead >= self.settings.gap_min_lead
                            and self._member_gap(scored, ids) >= self.settings.ambiguity_gap)):
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
                options += self._named_by_rest(rest, scored, options)
            return MatchResult("clarify", None, tuple(options[: self.settings.max_candidates]),
                               round(ranked[0][0], 2) if ranked else 0.0)
        return None

    def meaning(self, text: str, item: str) -> Iterator[list[str]]:
        """The items of each generic word in ``text`` (without spaces; read loosely, as :meth:`clarify`
        does) that may mean ``item``, the word's order kept."""
        for term, members in self.index.ambiguous:
            ids = [self.index.ids[i] for i in members]
            if item in ids and term[0] in text and remove_loosely(text, term) is not None:
                yield ids

    def named_with(self, compact: str, item: str) -> list[str]:
        """The other items of the generic words in the question (``compact``: without spaces) that may
        mean ``item``: what an open question about it asks about as well."""
        found: list[str] = []
        for ids in self.meaning(compact, item):
            found += [ident for ident in ids if ident != item and ident not in found]
        return found

    def unanchored_member(self, segments: tuple[str, ...], item: str) -> MatchResult | None:
        """The clarify of a generic word in the question that may mean ``item``, for an answer of that item
        that holds no anchor of it; ``None`` when no such word is in the question.

        Why: the word names its items by construction ("日子难过" names 低保, 低收入 and 临时救助), so a
        question holding it is about them even when the rest leads to one of them on everyday words
        alone (政府能补点不) and that one, lacking an anchor of its own, would fall back. The lead on
        everyday words is not enough to answer, and the word is enough not to give up: ask."""
        ids = next(self.meaning("".join(segments), item), None)
        if ids is None:
            return None
        ranked = self._score_only(segments, ids)
        return MatchResult("clarify", None, tuple(i for _, i in ranked[: self.settings.max_candidates]),
                           round(ranked[0][0], 2) if ranked else 0.0)

    def _named_by_rest(self, rest: str, scored: list[tuple[float, str]], taken: Sequence[str]) -> list[str]:
        """Items outside the generic word's that the rest of the question names by an anchor of their own
        (a character bigram of a name, alias or cue that no other item has), among the candidates that
        score at least ``clarify_min``.

        Why: the generic word asks which of its items is meant, but the rest may name yet another need
        ("在外面摔伤了住院 能报啥": 外面住院 means the reimbursement or the filing, 摔伤 the work injury);
        scored as a whole, that item trails the word's items, and the clarify left it out. Only a bigram
        no other item has: one shared by a few (回来, 新办, 证丢) is met by accident in everyday wording."""
        parts = tuple(part for part in rest.split(" ") if part)
        if not parts:
            return []
        grams = anchor_grams(parts, " ".join(parts))
        return [ident for score, ident in scored[: self.settings.max_candidates * 2]
                if score >= self.settings.clarify_min and ident not in taken
                and grams & self._names.sole[self.index.position[ident]]]

    def without_kin(self, joined: str, members: Sequence[int]) -> str:
        """The question without every generic word (``[ambiguous]``) that may mean each of ``members``:
        the word read and its kin (去世 with 丧葬费, 没有单位 with 自己交社保); whole words first, then loosely.

        Why: such a word is listed because it does not tell these items apart; left in the rest, its
        characters still meet one member's sample questions more than the other's (去世 is in more of
        the death benefit's questions) and the lead then answered a question that says nothing more.
        Whole words first: 残疾人两项补贴 holds 两项补贴 whole and 残疾人补贴 only loosely; but a word
        that is part of a longer kin read loosely goes with that kin (养老金 of 养老金这个月没到: cut
        alone first, it would leave 没到, which tells the items nothing either)."""
        kin = self.kin("", members)
        inside = {term for term in kin if any(term != longer and term in longer
                                              and remove_loosely(joined, longer) is not None for longer in kin)}
        for loose in (False, True):
            for term in sorted(kin, key=len, reverse=True) if loose else kin:
                if not loose and term in inside:
                    continue
                while term in joined or (loose and term[0] in joined):
                    cut = remove_loosely(joined, term)
                    if cut is None:
                        break
                    joined = cut
        return joined

    def kin(self, term: str, members: Sequence[int]) -> list[str]:
        """``term`` (when given) and every generic word (``[ambiguous]``) listed for each of ``members``:
        words that, like ``term`` itself, do not tell these items apart."""
        wanted = set(members)
        kin = [word for word, items in self.index.ambiguous if wanted <= set(items)]
        return ([term] if term and term not in kin else []) + kin

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
            present = [a for a in self.index.alias_cores[index]
                       if len(a) > len(term) and a in joined and remove_loosely(a, term) is not None]
            if present:
                found[index] = max(present, key=len)
        named = [i for i, alias in found.items()
                 if not any(alias != other and alias in other for j, other in found.items() if j != i)]
        return self.index.ids[named[0]] if len(named) == 1 else None

    @staticmethod
    def _member_gap(scored: list[tuple[float, str]], ids: Sequence[str]) -> float:
        """Score points between the best member of an ambiguous word's items and the next member.

        Why besides the lead on the rest: the rest alone is often one short verb (交, 参保, 鉴定) once
        aspect phrases are cut out, worth little weight, while the whole question already tells the
        members far apart (城乡居民养老保险咋个参保: enrolment 93, claim 80)."""
        members = [score for score, ident in scored if ident in ids]
        return members[0] - members[1] if len(members) > 1 else members[0] if members else 0.0

    def lead(self, rest: str, members: Sequence[int]) -> tuple[float, str | None, float]:
        """How far the best member is ahead of the next on the rest of the question alone, counting only
        grams that may tell the members apart (see :meth:`_telling`), which member that is, and how much
        of the whole rest that member explains (matched weight: does the rest say something specific)."""
        segments = tuple(part for part in rest.split(" ") if part)
        telling = self._telling(segments, members)
        if not telling:
            return 0.0, None, 0.0
        weights = {g: self.index.gram_weight(g) for g in grams_of(segments) | telling}

        def overlap(index: int, grams: Iterable[str]) -> float:
            return sum(weights[g] * self.index.item_grams[index].get(g, 0.0) for g in grams)

        overlaps = sorted(((overlap(i, telling), i) for i in members),
                          key=lambda pair: (-pair[0], self.index.ids[pair[1]]))
        leader = overlaps[0][1]
        return overlaps[0][0] - overlaps[1][0], self.index.ids[leader], overlap(leader, grams_of(segments))

    def _telling(self, segments: tuple[str, ...], members: Sequence[int]) -> set[str]:
        """The grams of the rest that may tell the members apart: its characters, its bigrams that bring
        a character some member never uses or that are a member's anchor (name, alias, cue; also across
        a particle: 登个记 holds 登记), not bigrams of characters every member already uses.

        Why: after the generic word, the rest is often everyday words (开个, 能补点不, 去办些, 社区能帮忙不,
        一个人在家). Every member's texts use their characters, yet one member's questions happen to
        hold the very juxtaposition (补点, 开个, 能帮), and its lead then answered a question the
        resident left open. A word only one member knows (满月, 水泡烂, 认证) still counts, and a
        character alone counts through the lead only when a member lacks it (领, 交, 丢)."""
        out: set[str] = set()
        own = [self.index.item_grams[i] for i in members]

        def new_to_some(unit: str) -> bool:
            return any("u" + unit not in grams for grams in own)

        for segment in segments:
            parts = units(segment)
            keys = [syllable(u) if len(u) == 1 else u for u in parts]
            for index, unit in enumerate(parts):
                out.add("u" + unit)
                if index >= 2:
                    skipped = "b" + parts[index - 2] + unit
                    if any(skipped in self._names.anchors[i] for i in members):
                        out.add(skipped)
                if not index:
                    continue
                pair = ("b" + parts[index - 1] + unit, "p" + keys[index - 1] + "|" + keys[index])
                if (new_to_some(parts[index - 1]) or new_to_some(unit)
                        or any(gram in self._names.anchors[i] for gram in pair for i in members)):
                    out.update(pair)
        return out

    def _unclaimed_top(self, rest: str, scored: list[tuple[float, str]], ids: Sequence[str]) -> bool:
        """True when the best item is not among a generic word's items but one of them scores within
        ``outside_top_window`` of it, and the rest of the question holds no anchor (name, alias, cue
        bigram) of the best item: the generic word is then what the question is about, and its items are offered (with
        the best item: the clarify adds outside items that score as well).

        Why: "困难家庭补助咋个申请" reads most like the elderly-care subsidy (经济困难老年人…补贴) on shared
        everyday words, and was answered as that although 困难家庭 names three other items and nothing
        in the question speaks of old age. A word of the best item's own (老人 for that subsidy, 去世 for
        the death benefit after 养老保险) keeps the answer."""
        best = next((score for score, ident in scored if ident in ids), 0.0)
        if best < max(scored[0][0] - self.settings.outside_top_window, self.settings.clarify_min):
            return False
        parts = tuple(part for part in rest.split(" ") if part)
        grams = anchor_grams(parts, " ".join(parts))
        return not grams & self._names.anchors[self.index.position[scored[0][1]]]

    def _score_only(self, segments: tuple[str, ...], ids: Sequence[str]) -> list[tuple[float, str]]:
        """Scores of the given items, exact-phrase bonus ignored (the word is generic by definition)."""
        ranked = [(f.score if f.score < 100.0 else self.index.plain(f), ident)
                  for f, ident in self.index.ranked(segments, ids)]
        ranked.sort(key=lambda pair: (-pair[0], pair[1]))
        return ranked
