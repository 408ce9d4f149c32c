"""Lists of names in a question: clarify when it lists two things that name different items.

"五保和低保我该申请哪个", "医保跟养老保险都在哪里交", "身份证社保卡都丢了": residents list things by a part
of their name, so each side of a joint (和, 跟, 还是 …, or two names side by side taken together by
都/一起) is read from the whole names and anchor bigrams touching it, and the two sides must name
different items. A list that tells who the resident is, what to bring, where to go or what a need
requires is no list of needs.

Split out of :mod:`bot.understanding.matcher` (whose decision calls :meth:`Lists.several_named`): one
rule with its own helpers; it reads the matcher's index, the items' names and anchors
(:class:`~bot.understanding.names.ItemNames`) and ``[contrast]`` families and changes none of them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING, Mapping, Sequence

from bot.understanding.clauses import CONJUNCTION_BEFORE_BEING, DONE, OFFICE, stated
from bot.understanding.contrast import Contrast
from bot.understanding.grams import remove_loosely
from bot.understanding.index import Features, ItemIndex
from bot.understanding.model import MatchResult
from bot.understanding.names import ItemNames
from bot.understanding.phonetic import syllable

if TYPE_CHECKING:
    from bot.understanding.matcher import MatcherSettings

#: Where a question names items (see ``Lists._occurrences``): start, end, the items, whether a whole name.
_Occurrence = tuple[int, int, frozenset[int], bool]

#: Words that list things: what ``Lists.several_named`` looks for before doing any work.
_LIST_WORDS = ("和", "跟", "与", "及", "或", "还有", "还是", "同", "都", "一起")
#: Between two listed names: one of these, and nothing else but spaces.
_JOINER = re.compile(r" ?(?:以及|还有(?![没莫])|或者|还是|和|跟|与|及|或|同) ?")
#: After two names side by side, one of these takes them together ("身份证社保卡都丢了").
_TOGETHER = re.compile(r"\s?(?:都|一起|两个|两样|全)")
#: After a list, what does both together ("是不是一起办", "能一块转不"): no word of one side's item.
_JOINTLY = re.compile(r"一起|一块儿?|一同|同时")
#: Right after a list, what says the rest of each side ("低保跟残疾人补贴都要转过来不").
_BOTH = re.compile(r" ?(?:也|又)?(?:都|全都|两个都|两样都)")
#: A modifier both listed things share: 老人的证和补贴 is 老人证 and 老人补贴.
_SHARED_MODIFIER = re.compile(r"([^ 的]{2,4})的([^ 的]{1,2})(和|跟|与|及|还有|或者|还是)([^ 的]{1,2})")
#: A short modifier that may open the second of two listed things ("居住证还是社区开的居住证明").
_MODIFIER = re.compile(r"[^ 的]{1,4}的")
#: A character that can be part of a listed name (not a digit, letter or space).
_NAMING = re.compile(r"[\u3400-\u9fff]")
#: Before a list, what makes it who the resident is ("我是低保户和残疾人") or the materials to bring
#: ("办残疾证要带身份证和社保卡吗") rather than what they ask for.
_LISTED_AS_CONTEXT = re.compile(r"是|属于|带|准备|提供|复印|拿")
#: 是 … 还是 asks which of two ("不知道是居住证还是居住证明"): 是 then opens the alternative, not who someone is.
#: (但是, 可是, 就是 … are other words, as for who someone is; and 也是, 都是, 正是, 或是 …: "但是日子还是紧巴巴的"
#: lists nothing.)
_WHICH_OF = re.compile("(?<![" + "".join(sorted(CONJUNCTION_BEFORE_BEING | set("正或若凡也都"))) + "])是(?:办|开|领|申请|要)?$")
#: A list right after 要/需要 that follows a need in the same clause: what that need requires
#: ("申请生育津贴需要出生证明还是结婚证"), not two needs (unlike "要居住证还是社区开的居住证明").
_NEEDS_LISTED = re.compile(r"(?:办|申请|领|开|补|换|交|上)[^ ]+?(?:要|需要|得)$")
#: An office as where to go (去社区, 到社保局): a side of a list that names a place, not a need.
_GOING_TO_OFFICE = re.compile(r"(?:去|到|在|找)?(?:" + OFFICE.pattern + ")")


class Lists:
    """The list rule over one knowledge snapshot (built with the matcher)."""

    def __init__(self, index: ItemIndex, settings: "MatcherSettings", contrast: Contrast, names: ItemNames) -> None:
        """``names``: the items' whole names and anchors, as the matcher built them."""
        self.index = index
        self.settings = settings
        self._contrast = contrast
        self._names = names

    def _occurrences(self, normalized: str, pool: Sequence[int]) -> list[_Occurrence]:
        """Where the question names ``pool`` items: (start, end, items, whether a whole name).

        Whole names are those of :meth:`ItemNames.whole_names`; the rest are anchor bigrams of the items
        (also in folded pinyin, and across one particle: 离了婚), so a part of a name counts too (养老, 身份证)."""
        members = set(pool)
        found: list[_Occurrence] = []
        for start, end, owners in self._names.whole_names(normalized):
            if owners := owners & members:
                found.append((start, end, owners, True))
        keys = [syllable(ch) for ch in normalized]
        naming = [bool(_NAMING.match(ch)) for ch in normalized]  # once per character, not thrice
        owners_of = self._names.anchor_owners.get
        for end in range(1, len(normalized)):
            if not naming[end] or not naming[end - 1]:
                continue  # digits and spaces: 七十多 → 70多 names nothing
            grams = [(end - 1, "b" + normalized[end - 1] + normalized[end]),
                     (end - 1, "p" + keys[end - 1] + "|" + keys[end])]
            if end >= 2 and naming[end - 2]:
                grams.append((end - 2, "b" + normalized[end - 2] + normalized[end]))
            for start, gram in grams:
                owners = owners_of(gram)  # most pairs of characters anchor nothing
                if owners is not None and (owners := owners & members):
                    found.append((start, end + 1, owners, False))
        return found

    def _named_by(self, normalized: str, side: Sequence[_Occurrence], members: set[int]
                  ) -> frozenset[int]:
        """The items (among ``members``) one side of a list may name (``side``: its occurrences).

        Its longest whole name, when that is one item's own (居住证明, 失业金), names that item alone.
        Otherwise — a generic word (医保, 抚恤金) or a part of a name (养老) — the items whose anchors
        cover most of the side, the items a generic word in it may mean (医保: enrolment or payment;
        ``[ambiguous]``) and the items a ``[contrast]`` word in it marks (医保 among the transfers);
        the caller picks the one the whole question favours."""
        names = [o for o in side if o[3]]
        if names:
            first, last, owners, _ = max(names, key=lambda o: (o[1] - o[0], -o[0]))
            if len(owners) == 1 and normalized[first:last] not in self.index.generic_names:
                return owners
        text = normalized[min(o[0] for o in side): max(o[1] for o in side)]
        cover: dict[int, set[int]] = defaultdict(set)
        for first, last, owners, _ in side:
            for index in owners:
                cover[index].update(range(first, last))
        most = max(len(c) for c in cover.values())
        items = {i for i, c in cover.items() if len(c) == most}
        for term, term_members in self.index.ambiguous:
            if term in text:
                items.update(term_members)
        items.update(self.index.position[i] for i in self._contrast.marked(text))
        return frozenset(items & members)

    def _named_in_full(self, normalized: str, side: Sequence[_Occurrence],
                       strict: bool = False) -> bool:
        """True when a side of a list holds a whole name (an alias or a generic word), a
        ``[contrast]`` word (身份证 among the cards) or — unless ``strict`` (names side by side with
        nothing between: 一分钱进项都没得 is no list) — a specific anchor (生活 of 生活补贴), not only
        everyday anchor bigrams (个人, 父母)."""
        if not side:
            return False
        if any(o[3] for o in side):
            return True
        text = normalized[min(o[0] for o in side): max(o[1] for o in side)]
        grams = self._names.held(text)
        if not strict and any(grams & self._names.specific[i] for o in side for i in o[2]):
            return True
        return bool(self._contrast.marked(text))

    def several_named(self, normalized: str, scored: list[tuple[float, str]],
                       ranked: Sequence[tuple[Features, str]] = ()) -> MatchResult | None:
        """Clarify when the question lists two things that name different items: joined by 和, 跟,
        或者, 还是 … ("五保和低保我该申请哪个", "医保跟养老保险都在哪里交", "要居住证还是社区开的居住证明"),
        or side by side and taken together by 都/一起 ("身份证社保卡都在里头").

        Why from the words on either side of the joint rather than whole names only: residents list
        things by a part of their name (养老和医保, 身份证和残疾证), so each side is read from the names
        and anchor words touching the joint (see ``_list_sides``, ``_named_by``). The items are those
        of the whole question before ``[contrast]`` words set any aside (``ranked``): 失业证明跟失业金
        names the registration, though 失业金 alone would rule it out. A modifier shared by both sides
        is read with each ("老人的证和补贴" → 老人证, 老人补贴)."""
        if not any(word in normalized for word in _LIST_WORDS):
            return None
        s = self.settings
        everyone = [(f.score, ident) for f, ident in ranked] if ranked else scored
        pool = [self.index.position[ident] for score, ident in everyone[: s.max_candidates * 2]
                if score >= s.clarify_min]
        if len(pool) < 2:
            return None
        order = {ident: rank for rank, (_, ident) in enumerate(everyone)}
        kept = {ident for _, ident in scored}
        chosen = self._listed(normalized, pool, kept, order)
        shared = _SHARED_MODIFIER.search(normalized) if chosen is None else None
        if shared and not any(self._names_something(part) for part in shared.group(2, 4)):
            # 老人的证和补贴: 证 and 补贴 name nothing alone; 老人证 and 老人补贴 do
            modifier, first, joiner, second = shared.groups()
            spread = (normalized[:shared.start()] + modifier + first + joiner + modifier + second
                      + normalized[shared.end():])
            chosen = self._listed(spread, pool, kept, order)
        if chosen is None or len(chosen) < 2:
            return None
        options = tuple(ident for _, ident in everyone if ident in chosen)
        return MatchResult("clarify", None, options[: s.max_candidates], round(everyone[0][0], 2))

    def _listed(self, normalized: str, pool: Sequence[int], kept: set[str], order: Mapping[str, int]
                ) -> set[str] | None:
        """The items the question's lists of names name on their two sides; ``None`` when it lists no
        names at all.

        Each side offers its best candidate by the whole question's score (a [contrast] word still
        picks between siblings: 交 makes 医保 the payment), and a generic word's other items still in
        the running (残疾证: new or renewed). The two sides must name *different* items: when one item
        is the best of both (丧葬费和抚恤金: the insured's death benefits; 骨灰盒和火化的钱: the funeral
        subsidy) it is one need. A list after 是 tells who the resident is (我是低保户和残疾人) — unless 是
        opens an alternative that 还是 closes (不晓得是居住证还是居住证明: which of the two) —, one after
        带 what to bring (要带身份证和社保卡): neither is a need. Nor is a side that is an office alone
        (去社区还是社保局登记): where to go, though 社区 is in an item's name."""
        found = self._occurrences(normalized, pool)
        members = set(pool)
        chosen: set[str] | None = None
        for joint in _joints(normalized, found):
            sides = self._list_sides(normalized, found, joint)
            if sides is None:
                continue
            chosen = chosen if chosen is not None else set()
            left, right = sides
            start, end = min(o[0] for o in left), max(o[1] for o in right)
            clause_start = normalized.rfind(" ", 0, start) + 1
            clause_end = normalized.find(" ", end)
            joiner = normalized[joint[0]:joint[1]]
            clause = _or_at_joint(normalized[clause_start: clause_end if clause_end >= 0 else None],
                                  joiner, joint[0] - clause_start)
            before = normalized[clause_start:start]
            which = _WHICH_OF.search(before) if joiner.strip() == "还是" else None
            if which:  # 是居住证还是居住证明: the clause asks which of the two, it states no one's status
                before = before[:which.start()]
            if (_LISTED_AS_CONTEXT.search(before) or _NEEDS_LISTED.search(normalized, 0, start)
                    or (stated(clause) and not which) or DONE.search(clause)):
                # who the resident is (我是低保户和残疾人) or has (身份证社保卡都在), what to bring (要带身份证和
                # 社保卡) or what a need named before requires (申请生育津贴需要出生证明还是结婚证), or done
                continue
            if any(_GOING_TO_OFFICE.fullmatch(normalized[min(o[0] for o in side): max(o[1] for o in side)])
                   for side in (left, right)):
                continue  # 去社区还是社保局登记: two offices to go to for one need, not two needs
            named = [self._named_by(normalized, side, members) for side in (left, right)]
            if not all(named):
                continue
            best = [min(items, key=lambda i: (self.index.ids[i] not in kept, order[self.index.ids[i]]))
                    for items in named]
            if best[0] == best[1] or self._said_of_one(normalized, clause_start, start, end, best):
                continue
            for side, top in zip((left, right), best):
                chosen.add(self.index.ids[top])
                text = normalized[min(o[0] for o in side): max(o[1] for o in side)]
                # (read loosely — 残疾人的证 is 残疾证 too — unless the side names its item alone in full:
                # 残疾人生活补贴 holds 残疾人补贴 loosely, but it is the living subsidy)
                alone = any(owners == {top} for *_, owners in self._names.whole_names(text))
                for term, term_members in self.index.ambiguous:  # 残疾证: the new card or the renewal alike
                    if top in term_members and (
                            term in text or (not alone and remove_loosely(text, term) is not None)):
                        chosen.update(self.index.ids[i] for i in term_members if self.index.ids[i] in kept)
        return chosen

    def _list_sides(self, normalized: str, found: Sequence[_Occurrence],
                    joint: tuple[int, int, bool]) -> tuple[list[_Occurrence], ...] | None:
        """The occurrences naming the two sides of a joint, or ``None`` when it lists no names: a side
        names nothing, the joint cuts a word (居住|证明), or a side holds only everyday words (个人, 父母;
        see ``_named_in_full``). The second side may open with a short modifier (还是社区开的|居住证明)."""
        left_end, right_start, side_by_side = joint
        found = [o for o in found if not _holds_joiner(o, left_end, right_start)]
        left = _touching([o for o in found if o[1] == left_end], found)
        right = _touching([o for o in found if o[0] == right_start], found)
        modifier = _MODIFIER.match(normalized, right_start)
        if modifier and not self._named_in_full(normalized, right, side_by_side):
            right = _touching([o for o in found if o[0] == modifier.end()], found)
        if not left or not right or any((o[0] < left_end < o[1] or o[0] < right_start < o[1])
                                        and not _over_joiner(o, left_end, right_start) for o in found):
            return None
        if not all(self._named_in_full(normalized, side, side_by_side) for side in (left, right)):
            return None
        return left, right

    def _names_something(self, text: str) -> bool:
        """True when ``text`` alone holds a whole name, a ``[contrast]`` word or a specific anchor."""
        if next(self._names.whole_names(text), None) is not None:
            return True
        if self._names.held(text) & self._names.any_specific:
            return True
        return bool(self._contrast.marked(text))

    def _said_of_one(self, normalized: str, clause_start: int, start: int, end: int, best: Sequence[int]) -> bool:
        """True when what the clause says of the list (after it, or in a 的 modifier before it) is a
        specific word of one side's item only: the list is that item's object (职工养老和农村养老能合并不:
        merging is the transfer; 灵活就业的医保和养老: both are the flexible workers' insurance). 一起 (是不是一起办)
        takes both sides and says nothing of one, though one item's questions use it; 都 right after the
        list says what follows of each side (低保跟残疾人补贴都要转过来不)."""
        clause_end = normalized.find(" ", end)
        if _BOTH.match(normalized, end):
            return False  # 低保跟残疾人补贴都要转过来不: 都 says it of each side
        before = normalized[clause_start:start]
        rest = (before if before.endswith("的") else "") + " " + normalized[end: clause_end if clause_end >= 0 else None]
        rest = _JOINTLY.sub(" ", rest)  # 一起 takes both sides (是不是一起办), whoever's questions use it
        held = self._names.held(rest)
        return bool(held & self._names.specific[best[0]]) != bool(held & self._names.specific[best[1]])


def _or_at_joint(clause: str, joiner: str, at: int) -> str:
    """The clause with a 还是 that joins the list (at ``at``) read as 或者.

    Why: 还是 is "or" at the joint, yet :func:`stated` reads 还 + 是 as "is still" ("他还是低保户") and
    took "居住证明还是居住证" for a clause telling who someone is, so the list of two needs was dropped."""
    if joiner.strip() != "还是":
        return clause
    return clause[:at] + joiner.replace("还是", "或者") + clause[at + len(joiner):]


def _over_joiner(occurrence: _Occurrence, left_end: int, right_start: int) -> bool:
    """True when the occurrence is an anchor bigram read across one character (离了婚 holds 离婚) and
    that character is the joining word itself (低保和残疾人: 保残 is no word cut by the joint).

    Why: the skip exists for particles inside a word; over 和 it pairs the last character of one listed
    thing with the first of the next, which is no word of either."""
    start, end, _, whole = occurrence
    return not whole and end - start == 3 and right_start - left_end == 1 and left_end == start + 1


def _holds_joiner(occurrence: _Occurrence, left_end: int, right_start: int) -> bool:
    """True when the occurrence is an anchor bigram holding a character of the joining word itself
    (金和 of 养老金和老年证, an anchor because one item's question says 丧葬补助金和抚恤金).

    Why: such a bigram is the joint, not a word the joint cuts; only a whole name across it would be."""
    start, end, _, whole = occurrence
    return not whole and left_end < right_start and start < right_start and left_end < end


def _touching(side: list[_Occurrence], found: Sequence[_Occurrence]
              ) -> list[_Occurrence]:
    """The occurrences at a joint plus those overlapping them: the whole of the word that touches it
    (份证 at the joint, 身份 with it: 身份证), but not a chain of words before it."""
    if not side:
        return side
    return [o for o in found if any(o[0] < s[1] and s[0] < o[1] for s in side)]


def _joints(text: str, found: Sequence[_Occurrence]) -> list[tuple[int, int, bool]]:
    """Where two listed things meet, as (end of the left one, start of the right one, whether side by
    side): at a joining word (和, 跟, 还是 …), or where one name ends and the next begins when 都/一起
    follows the second ("身份证社保卡都在里头")."""
    joints = [(m.start(), m.end(), False) for m in _JOINER.finditer(text)]
    ends = {o[1] for o in found}
    for start in sorted({o[0] for o in found} & ends):
        right_end = max(o[1] for o in found if o[0] == start)
        if _TOGETHER.match(text, right_end):
            joints.append((start, start, True))
    return joints
