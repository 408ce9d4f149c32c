"""``[contrast]`` families: the one word that tells sibling items apart.

**Siblings.** Items that share almost all their words (the two transfers, new and replacement
cards, enrolment / payment / claim) are told apart by the one word that differs (``[contrast]`` in
intents/: 医保 or 养老, 第一次 or 丢了): among the close candidates, a member whose words the
question lacks is ruled out when another member's words are there. A family may also list
lookalikes we do not handle (驾驶证 among the cards, 车子 for 年审): when only those are there, the
question falls back.

Compiled once per knowledge snapshot from ids and words; the matcher asks which members a question's
words mark and which candidates they rule out. No scores here: which candidates are close enough to
be told apart is the matcher's decision.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Container, Mapping, Sequence

from bot.understanding.grams import pinyin_key
from bot.understanding.normalize import digits_for_matching

#: The ``[contrast]`` member that stands for lookalikes outside the catalogue.
OUTSIDE = "out_of_scope"


@dataclass(frozen=True)
class _Family:
    """One ``[contrast]`` family, compiled (see :class:`Contrast`)."""

    pattern: re.Pattern[str] | None   # words of two or more characters, as toneless pinyin keys
    chars: re.Pattern[str] | None     # one-character words: one scan finds them (this runs ~20 times a question)
    owners: Mapping[str, frozenset[str]]  # word (one character, or pinyin key) -> members it marks
    members: frozenset[str]
    written: Mapping[str, frozenset[str]]  # pinyin key of a two-character word -> the words as written

    def marked(self, compact: str, keyed: str, generic: Sequence[tuple[int, int, set[str]]] = (),
               done: Sequence[tuple[int, int, str]] = ()) -> set[str]:
        """Members whose words the question holds (``keyed``: its pinyin key). A one-character word
        counts only outside a longer word; a word inside a generic word's span marks that generic
        word's members of this family instead of its own, and nothing when that longer word names only
        items outside the family (社保 in 社保卡 is the card's, not the pension transfer's; see
        :meth:`Contrast.ruled_out`). A word inside a ``done`` span (a clause reporting what was done, with
        the item it completed) does not mark that item: "社保我已经转好了" is no reason to transfer it."""
        marked: set[str] = set()
        covered: set[int] = set()

        def mark(start: int, end: int, owners: frozenset[str]) -> None:
            for g_start, g_end, members in generic:
                shared = members & self.members
                if g_start <= start and end <= g_end and (
                        len(shared) >= 2 or (not shared and g_end - g_start > end - start)):
                    marked.update(shared)  # none inside a longer word naming other items (社保 in 社保卡)
                    return
            marked.update(owners - {item for d_start, d_end, item in done if d_start <= start and end <= d_end})

        if self.pattern is not None:
            for found in self.pattern.finditer(keyed):
                start = keyed.count("|", 0, found.start())
                end = start + found.group(0).count("|") + 1
                if not self._heard(found.group(0), compact[start:end]):
                    continue  # 队想 sounds like 对象 but shares no character with it: a coincidence
                mark(start, end, self.owners[found.group(0)])
                covered.update(range(start, end))
        if self.chars is not None:
            for found in self.chars.finditer(compact):
                if found.start() not in covered:
                    mark(found.start(), found.end(), self.owners[found.group(0)])
        return marked

    def _heard(self, key: str, text: str) -> bool:
        """True when ``text`` (found by its sound ``key``) may be the word as typed by ear: a word of
        three or more syllables always, a two-character one only when a character is the word's own
        (低宝 for 低保; not 队想 for 对象, which no one types for it)."""
        words = self.written.get(key)
        return words is None or any(a == b for word in words for a, b in zip(word, text))


class Contrast:
    """The ``[contrast]`` families of a knowledge snapshot, compiled."""

    def __init__(self, contrast: Mapping[str, Mapping[str, Sequence[str]]], known: Container[str],
                 norm: Callable[[str], str]) -> None:
        """Per family: its words of two or more characters as one alternation over toneless pinyin
        (longest first, so 居住证明 is not read as 居住证; 吴保 still says 五保), its
        one-character words (exact characters only: 交 would meet 叫 and 教), which members each word
        marks, and the members (``out_of_scope`` among them: lookalikes we do not handle). Unknown ids
        and families of fewer than two known members are dropped."""
        compiled: list[_Family] = []
        for members in contrast.values():
            owners: dict[str, set[str]] = defaultdict(set)
            written: dict[str, set[str]] = defaultdict(set)
            for ident, words in members.items():
                if ident in known or ident == OUTSIDE:
                    for word in words:
                        key = digits_for_matching(norm(word)).replace(" ", "")
                        if key:
                            owners[key if len(key) == 1 else pinyin_key(key)].add(ident)
                        if len(key) == 2:
                            written[pinyin_key(key)].add(key)
            present = frozenset(i for i in members if i in known or i == OUTSIDE)
            if len(present) < 2 or not (present - {OUTSIDE}) or not owners:
                continue
            long = sorted((k for k in owners if len(k) > 1), key=lambda k: (-k.count("|"), k))
            # whole syllables only: the key must start and end at a "|" or at an end of the text
            pattern = re.compile(r"(?<![^|])(?:" + "|".join(map(re.escape, long)) + r")(?![^|])") if long else None
            short = sorted(k for k in owners if len(k) == 1)
            chars = re.compile("[" + "".join(map(re.escape, short)) + "]") if short else None
            compiled.append(_Family(pattern, chars, {k: frozenset(v) for k, v in owners.items()}, present,
                                    {k: frozenset(v) for k, v in written.items()}))
        self.families = tuple(compiled)

    def ruled_out(self, compact: str, candidates: set[str], generic: Sequence[tuple[int, int, set[str]]] = (),
                  done: Sequence[tuple[int, int, str]] = ()) -> tuple[frozenset[str], frozenset[str]]:
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
        for family in self.families:
            rivals = family.members & candidates
            if not rivals or (len(rivals) == 1 and OUTSIDE not in family.members):
                # one member alone is never ruled out by a sibling, and without lookalikes there is
                # nothing else to find: no need to look for the family's words (most families, most calls)
                continue
            keyed = keyed if keyed is not None else pinyin_key(compact)
            marked = family.marked(compact, keyed, generic, done)
            named = marked & rivals
            if named and named != rivals:
                dropped |= rivals - named
            elif marked == {OUTSIDE}:
                outside |= rivals  # only the lookalike's words: 驾驶证到期换证
        return frozenset(dropped), frozenset(outside)

    def marked(self, text: str, among: str | None = None) -> set[str]:
        """Items a ``[contrast]`` word in ``text`` marks, in every family or only in those ``among``
        belongs to; never the lookalikes we do not handle (``OUTSIDE``)."""
        keyed = pinyin_key(text)
        return set().union(*(family.marked(text, keyed) for family in self.families
                             if among is None or among in family.members)) - {OUTSIDE}
