"""Two needs in one message: the items that two or more clauses ask for.

"我想办低保，还要开个证明", "残疾证到期了，顺便问下护理补贴咋个领", "在工地摔伤了，工资也不给": scored as a whole,
the clause with more words wins and the other need is silently dropped, so each clause that asks (or
adds a matter with 也/还/再) is scored on its own among the best candidates, and counts only when it
alone answers one item clearly with an anchor of that item inside it. Context clauses (who someone is,
what was done, a paper to bring, whether the need requires something) make no second need.

What the matcher does with them (:meth:`~bot.understanding.matcher.Matcher.match`): the decision stands
as if the rule were not there, and an answer about one of the needs carries the others in
``MatchResult.also``, which the reply offers next. Until session 7 the rule asked back instead ("您问的是
哪一项？"); but the resident asked for both, not for one of them, and writers who label questions
independently label such a question with its main need: over seven held-out sets (2,754 questions) the
clarify changed 22 outcomes and was wrong on 16 of them. Round 16 told apart the needs asked for
outright (还想, 也想, 顺便, 另外, 两件事; :meth:`TwoNeeds.both_asked`): those writers label with both, so
such a message is asked back with the needs listed ("您问到了几件事，先看哪一件？"), and the reply to the
pick offers the others (held-out +10 −0, readable +42 −1).

Split out of :mod:`bot.understanding.matcher`: one rule with its own helpers; it reads the matcher's
index, the items' names and anchors (:class:`~bot.understanding.names.ItemNames`) and ``[contrast]``
families and changes none of them.
"""

from __future__ import annotations

import re
from functools import cache, partial
from typing import TYPE_CHECKING, Callable, Sequence

from bot.understanding.clauses import MATERIAL, Clause, split_clauses
from bot.understanding.contrast import Contrast
from bot.understanding.grams import anchor_grams, grams_of, units
from bot.understanding.index import CoreFn, ItemIndex
from bot.understanding.names import ItemNames

if TYPE_CHECKING:
    from bot.understanding.matcher import MatcherSettings

#: A clause cut for scoring (see ``TwoNeeds._clause_cut``): its core, the core's grams, its anchor grams.
_ClauseCut = tuple[tuple[str, ...], set[str], set[str]]
#: The item a clause answers clearly, the anchors of it the clause holds, whether it names it (``_clause_claim``).
_Claim = tuple[str, set[str], bool]

#: Words with which a resident says outright that they ask for a second thing too (还想, 也想, 顺便, 另外 …,
#: 两件事, 分别): both needs are then equally theirs, and a reply about one of them is a guess (see
#: :meth:`TwoNeeds.both_asked`). Not 另外申请 ("要另外申请不": whether one need takes an application of its
#: own), 还有没 ("还有没得别的认定": is there anything else), nor 合到一起 (merging is one need).
_BOTH_ASKED = re.compile(r"还想|也想|顺便|两件事|两个事|两样|分别|也要|再问|另外(?!申请|还)|还有(?!没)|"
                         r"(?<![合并到在])一起")
#: Before a name, what makes it who someone is ("不是低保户", "是五保户", "属于特困"), not what is asked for.
_STATUS = re.compile(r"(?<!是)(?:不是|是|属于|算)(?:个)?$")
#: Whether something is required, with no verb of a need of its own ("要每年审核不", "需要本人去吗"): after
#: the need's clause, a question about that need.
_REQUIRED = re.compile(r"(?:要|需要|得|是不是要)(?![^ ]*(?:办|申请|领|开|补|换|交|缴|转|上|续|注销))[^ ]{1,8}(?:不|吗|嘛)")
#: A clause that opens with the people it is about, then asks whether they may (灵活就业的能领不, 低保户的
#:可不可以报): group 1 is who they are — a status, not a need.
_DESCRIBED = re.compile(r"^([^ ]{2,8}?(?:户|人员)?的(?:人)?)(?:也|都)?(?:能|可以|可不可以|能不能|算不算|有没有资格)")


class TwoNeeds:
    """The two-needs rule over one knowledge snapshot (built with the matcher)."""

    def __init__(self, index: ItemIndex, settings: "MatcherSettings", contrast: Contrast, core: CoreFn,
                 names: ItemNames) -> None:
        """``names``: the items' whole names and anchors with the tests on them, as the matcher built them
        (one definition of each test for every rule)."""
        self.index = index
        self.settings = settings
        self._contrast = contrast
        self._core = core
        self._names = names

    @staticmethod
    def both_asked(normalized: str) -> bool:
        """True when the question says outright that it asks for a second thing too ("想办老年证，高龄补贴
        也想一起弄", "想申请康复训练补助，还想给他配个矫形器").

        Why it matters: over the held-out sets, independent writers labelled such questions with both
        items, and a reply about one of them then guesses which to answer first, while questions whose
        second need shows only in a clause of its own ("在工地摔伤了，工资也不给") were labelled with their
        main need (see the module docstring)."""
        return bool(_BOTH_ASKED.search(normalized))

    def asked_for(self, normalized: str, scored: list[tuple[float, str]]) -> tuple[str, ...]:
        """The items two or more clauses of the question ask for, best first, the best-scored item
        among them ("我想办低保，还要开个证明", "残疾证到期了，顺便问下护理补贴咋个领", "在工地摔伤了，工资也不给");
        empty when the question asks for one thing.

        Why per clause: scored as a whole, the clause with more words wins and the other need is
        silently dropped. A clause counts when it asks or complains about something (办, 领, 咋个, 不发 …;
        see :func:`split_clauses`), so context ("我是低保户，…") does not make a second need, and only when it
        alone answers one item clearly, with an anchor of that item inside it (see ``_clause_claim``).
        A clause that only states the matter ("在工地摔伤了") counts too when another adds a second one
        to it (也, 还, 再). Only the overall best candidates are scored again, and only clauses that
        hold an anchor of one of them, so this costs a few set operations, not a second search."""
        clauses = split_clauses(normalized)[-self.settings.max_clauses:]
        if len(clauses) < 2 or not scored:
            return ()
        pool = [ident for _, ident in scored[: self.settings.max_candidates * 2]]
        best = scored[0][1]
        possible = self._possible_needs(clauses, pool, best)
        if possible is None:
            return ()
        cuts, winnable = possible
        claims: dict[Clause, _Claim | None] = {}

        def winner(clause: Clause, further: bool = False) -> str | None:
            """The clause's winner; its scoring (the costly part) done once per clause, whatever ``further``."""
            if clause not in claims:
                claims[clause] = self._clause_claim(clause, pool, best, cuts.get(clause))
            return self._clause_winner(clause, best, further, claims[clause])

        # a second need is an item other than the best one, which only a clause that may name one can win,
        # and ``further`` (like the materials below) only takes such wins away: when none is won without
        # it, there is none at all
        if all(winner(clause) in (None, best) for clause, idents in winnable.items() if idents - {best}):
            return ()
        asked: list[tuple[Clause, str | None]] = []
        for clause in clauses:
            if clause.asks:
                # after the need's own clause, a clause that follows it without a word adding a matter
                # may only ask further about that need (see _clause_winner)
                further = clause.follows and any(ident == best for _, ident in asked)
                asked.append((clause, winner(clause, further)))
        # a paper the need's own clauses ask whether to bring is its material: what befalls it later ("要带原
        # 离婚证不 离婚证丢了咋办") is about that need, not a second one
        materials = " ".join(clause.text for clause in clauses if clause.aside and MATERIAL.search(clause.text))
        distinct = {ident for _, ident in asked
                    if ident and not (ident != best and materials and self._names.anchored(materials, (ident,)))}
        if not distinct:
            return ()
        if any(clause.adds for clause, ident in asked if ident):
            # "在工地摔伤了，工资也不给": the matter the other clause adds a second one to — not scored when
            # every item that could win it is among the winners already
            for clause in clauses:
                if not clause.asks and not clause.context and not winnable.get(clause, frozenset()) <= distinct:
                    ident = winner(clause)
                    if ident:
                        distinct.add(ident)
        if len(distinct) < 2 or best not in distinct:
            return ()
        return tuple(ident for _, ident in scored if ident in distinct)[: self.settings.max_candidates]

    def _possible_needs(self, clauses: Sequence[Clause], pool: Sequence[str], best: str
                        ) -> tuple[dict[Clause, _ClauseCut | None], dict[Clause, frozenset[str]]] | None:
        """The clauses :meth:`clarify` may find a need in, each cut for :meth:`_clause_claim` (``None``:
        too short to count), and the items each of them could be won by whatever the scores (see
        :meth:`_may_win`); ``None`` when no two of them can name two items, the best one among them:
        fewer than two such clauses, or none that could be won by the best item, or none by another.

        Why: most long questions ask for one thing; this rules the rescoring of their clauses (a search
        over the candidates each) out with a few set operations."""
        candidates = [clause for clause in clauses if clause.asks]
        if any(clause.adds for clause in candidates):
            candidates += [clause for clause in clauses if not clause.asks and not clause.context]
        if len(candidates) < 2:
            return None  # one clause names one item at most
        cuts = {clause: self._clause_cut(clause) for clause in candidates}
        position = self.index.position
        winnable: dict[Clause, frozenset[str]] = {}
        for clause, cut in cuts.items():
            if cut is not None:
                loose = cache(partial(self._loosely_named, clause))  # looked for only when it matters
                held = {gram for gram in cut[2] if gram[0] == "b"}  # a win needs one in characters
                lacking = held - self._names.anchors[position[best]]  # (another item needs one of these)
                winnable[clause] = frozenset(ident for ident in pool if self._may_win(
                    held if ident == best else lacking, position[ident], loose))
        names_best = any(best in idents for idents in winnable.values())
        names_other = any(idents - {best} for idents in winnable.values())
        return (cuts, winnable) if names_best and names_other else None

    def _clause_cut(self, clause: Clause) -> _ClauseCut | None:
        """A clause's core, its scoring grams and its anchor grams; ``None`` when the core is too short
        to answer anything (fewer than ``min_units`` characters)."""
        segments = self._core(clause.text)
        if len(units("".join(segments))) < self.settings.min_units:
            return None
        scoring = grams_of(segments)
        return segments, scoring, anchor_grams(segments, clause.text, scoring)

    def _loosely_named(self, clause: Clause) -> frozenset[int]:
        """The items :meth:`_clause_claim` may take any anchor of in the clause, not only a specific one:
        those it names whole when it adds a matter, and those a generic word in it may mean (a superset
        of the ones a [contrast] word then resolves)."""
        named = {index for term, members in self.index.ambiguous if term in clause.text for index in members}
        if clause.adds:
            named.update(index for *_, owners in self._names.whole_names(clause.text) for index in owners)
        return frozenset(named)

    def _may_win(self, held: set[str], index: int, loose: Callable[[], frozenset[int]]) -> bool:
        """True when a clause with these anchor grams (``held``: those in characters; for another item than
        the best one, only those the best item lacks) could be won by the item, whatever the scores: the
        last test of :meth:`_clause_claim` and :meth:`_clause_winner` with every score passing — a specific
        anchor of the item, or any anchor for the ``loose()`` items. (A specific anchor is an anchor too,
        so ``loose()`` is only needed without one.)"""
        return not held.isdisjoint(self._names.specific[index]) or (
            not held.isdisjoint(self._names.anchors[index]) and index in loose())

    def _clause_claim(self, clause: Clause, pool: Sequence[str], best: str, cut: _ClauseCut | None = None
                      ) -> _Claim | None:
        """The item one clause alone answers clearly (≥ ``clause_min``, ``clause_margin`` ahead), with the
        anchors of it the clause holds: *specific* anchors that the overall best item lacks (备案 belongs to
        the association and to the out-of-town treatment: the first need's word, not a second need), and
        whether the clause names it; ``None`` when no item is answered clearly, or the clause names it only
        as who someone is (see :meth:`_named_as_status`). The item wins the clause when it holds such an
        anchor (see :meth:`_clause_winner`).

        Two exceptions take any anchor: a generic word whose other items a [contrast] word in the
        clause rules out (社保卡也丢了: 社保卡 is in four items' names, but 丢 leaves the replacement),
        and a clause that adds a matter by naming its item (把医保也上了: 医保 is a generic word of
        the enrolment), which also needs only ``added_clause_min``: such clauses are short."""
        s = self.settings
        cut = cut or self._clause_cut(clause)
        if cut is None:
            return None
        segments, scoring, grams = cut
        if not any(grams & self._names.anchors[self.index.position[ident]] for ident in pool):
            return None  # names none of the candidates: not worth scoring
        ranked = self.index.ranked(segments, pool, scoring)
        ruled_out: frozenset[str] = frozenset()
        if self._contrast.families and len(ranked) > 1:
            ruled_out, _ = self._contrast.ruled_out(clause.text.replace(" ", ""),
                                                    {i for _, i in ranked[:s.max_candidates]})
            ranked = [pair for pair in ranked if pair[1] not in ruled_out]
        if not ranked:
            return None
        top, ident = ranked[0]
        index = self.index.position[ident]
        if self._named_as_status(clause.text, index):
            return None  # "不是低保户能领不": who the resident is, asked about another need
        runner_up = ranked[1][0].score if len(ranked) > 1 else 0.0
        named = clause.adds and self._names.names_item(clause.text, index)
        if (top.score < (s.added_clause_min if named else s.clause_min) or top.score - runner_up < s.clause_margin
                or top.matched < s.min_evidence):
            return None
        resolved = ruled_out and any(
            term in clause.text and index in members and any(self.index.ids[i] in ruled_out for i in members)
            for term, members in self.index.ambiguous)
        held = grams & (self._names.anchors if resolved or named else self._names.specific)[index]
        if ident != best:
            held -= self._names.anchors[self.index.position[best]]
        return ident, held, named

    def _clause_winner(self, clause: Clause, best: str, further: bool, claim: _Claim | None) -> str | None:
        """The item the clause asks for (see :meth:`_clause_claim`), or ``None``.

        A clause that may ask ``further`` about the best item's need (it follows that need's clause
        after a bare pause: "医保年限要接续过来，要开啥子凭证", "想做点公益 咋个注册 有莫得证书") must
        name its item whole or hold more than one specific word-pair of it: one shared word (证书, 凭证,
        工资, 每月) is the aspect asked about — papers, checks, pay — not a second need; "低保咋个办",
        "康复训练有没有救助" still are; nor is one asking whether the need requires something ("要每年审核不").

        The anchor held must be one in characters, not only a sound: a short clause shares a folded-pinyin
        bigram with some long name by accident (要自己去申请: 去申 sounds like 领取申请 of the pension claim's
        name), and the clause then made a second need of "高龄补贴是自动发还是要自己去申请"."""
        if claim is None:
            return None
        ident, held, named = claim
        if ident != best and further:
            if _REQUIRED.fullmatch(clause.text.replace(" ", "")):
                return None  # "要每年审核不": whether the need requires it, not a need of its own
            if (not named and not self._names.names_item(clause.text, self.index.position[ident])
                    and sum(gram.startswith("b") for gram in held) < 2):
                return None
        return ident if any(gram[0] == "b" for gram in held) else None

    def _named_as_status(self, text: str, index: int) -> bool:
        """True when the clause names the item only as who someone is — right after 是, 不是, 属于, 算
        ("不是低保户能领不", "是五保户可以优先不"), or as the people it describes before 的 and whether they may
        ("灵活就业的能领不", "灵活就业的能登记不") — and holds no other anchor of it.

        Why: such a clause asks whether the need of another clause is open to that status; the status
        is an item's name (低保, 灵活就业), but nobody asks for it there, so it is no second need."""
        compact = text.replace(" ", "")
        described = _DESCRIBED.match(compact)
        if described:  # "灵活就业的能领不": only what follows the people described may name the need, by a
            rest = compact[described.end(1):]  # word of its own (登记 of 能登记不 is the other clause's too)
            return not self._names.names_specifically(rest, index)
        spans = [(start, end) for start, end, owners in self._names.whole_names(compact) if index in owners]
        if not spans or not all(_STATUS.search(compact, 0, start) for start, _ in spans):
            return False
        rest = compact
        for start, end in reversed(spans):
            rest = rest[:start] + " " + rest[end:]
        return not self._names.held(rest) & self._names.anchors[index]
