"""Out-of-scope words (``[out_of_scope]`` in intents/): whether a question is about a matter we do not
handle, though it reads like one of our items.

"驾照到期了咋个换" shares 到期/换 with the card renewals, "孩子发烧了去哪家医院" shares 医院 with the
medical items; no threshold on the score tells them from real questions. A listed word does: it counts
against the best item (:meth:`OutOfScope.counts_against`) unless the item itself speaks of it and the
rest of the question still names the item, unless it runs across a word of the item (领养 in 领养老金),
sits in a clause that only tells the situation, or is framed as a place, a channel, a paper to bring or
a workplace while something else names the item (掉在菜市场, 打到农商行存折上, 要带户口本不, 在超市上班).
It counts whatever the score when what is asked is a matter of that thing itself — its hours, booking
or cancelling it (:meth:`OutOfScope.matter_asked`) — or when the item is named only in clauses that ask
nothing and the last asking clause holds the word (:meth:`OutOfScope.asked_apart`).

Split out of :mod:`bot.understanding.matcher` (which calls these three tests in its decision) because it
is one rule with its own helpers and tables; it reads the matcher's index, the items' anchors
(:class:`~bot.understanding.names.ItemNames`) and the items' words, and changes none of them.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Mapping, Sequence

from bot.understanding.clauses import piece_spans
from bot.understanding.grams import WordScan
from bot.understanding.index import CoreFn, ItemIndex, item_fields
from bot.understanding.model import ServiceItem
from bot.understanding.names import ItemNames


class OutOfScope:
    """The ``[out_of_scope]`` words as one scan, which of them each item speaks of itself, and the tests
    of a question against them. Built once per knowledge snapshot (with the matcher); read-only after."""

    def __init__(self, items: Sequence[ServiceItem], index: ItemIndex, names: ItemNames, core: CoreFn,
                 words: Iterable[str], cues: Mapping[str, Sequence[str]], norm: Callable[[str], str],
                 item_words: Sequence[frozenset[str]]) -> None:
        """``words``: the out-of-scope phrases, normalised like questions; ``cues`` (item id → words, raw);
        ``norm`` normalises item texts like questions (to see which words an item itself uses);
        ``item_words``: per item position, its words (name, aliases, cues), normalised."""
        self.index = index
        self.names = names
        self._core = core
        self._item_words = item_words
        self._every_item_word = frozenset().union(*item_words)
        listed = tuple(sorted({t.replace(" ", "") for t in words if t.strip()}, key=len))
        # one scan for a thousand topics instead of one ``in`` per topic; shortest first, like the
        # alternation it replaces (see _crosses_item_word for the word at its longest)
        self._words = WordScan(listed) if listed else None
        self._set = frozenset(listed)
        self._owned = self._compile_owned(items, cues, norm)

    def _compile_owned(self, items: Sequence[ServiceItem], cues: Mapping[str, Sequence[str]],
                       norm: Callable[[str], str]) -> list[frozenset[str]]:
        """Per item, the ``[out_of_scope]`` words its own name, aliases, questions, cues and materials use.

        Why: a topic word is out of scope only for the items that never speak of it. 公交 is out of
        scope for a bus timetable question, yet the senior card is *about* free buses; when the best
        item itself uses the word, the word is evidence for it, not against it. This also keeps the
        list safe to grow: a word an admin adds to an item's questions stops vetoing that item."""
        if self._words is None:
            return [frozenset() for _ in items]
        owned: list[frozenset[str]] = []
        for item in items:
            # its materials too: 要带户口本不 is a materials question about the item, not about 户口本
            texts = [*item_fields(item)["alias"], *item.questions, *cues.get(item.id, ()),
                     *(m.name for m in item.materials)]
            found = {word for text in texts for *_, word in self._words.find(norm(text).replace(" ", ""))}
            owned.append(frozenset(found))
        return owned

    def counts_against(self, normalized: str, top: int, joined: str = "", aside: str = "") -> bool:
        """True when the question holds an out-of-scope word, unless the top item uses that word itself
        *and* the rest of the question still holds an anchor of it ("钱包被偷了，社保卡也在里面": 被偷
        is the replacement item's own word and 社保卡 anchors it; "营业执照咋个办" is about the licence
        alone, though the loan item mentions it among its materials). The word is looked for in the
        question as typed and with its particles out (``joined``: 殡仪馆的电话 holds 殡仪馆电话).

        Three refinements (see :meth:`_topics`): a word that runs across an item's word (领养 in
        领养老金) is no topic; a word in a clause that only tells the situation ("娃娃上小学了，还没有
        社保卡，咋个申请") does not count when another clause names the top item; and a word that is
        itself asked for ("营业执照咋个办") counts even when the top item owns it."""
        if self._words is None:
            return False
        compact = normalized.replace(" ", "")
        found, asked = self._topics(normalized, top, joined, aside)
        if not found:
            return False
        if asked or any(term not in self._owned[top] for term in found):
            return True
        rest = self._words.sub(" ", compact)
        return not self.names.anchored(rest, (self.index.ids[top],))

    def asked_apart(self, normalized: str, top: int) -> bool:
        """True when the last clause that asks holds an out-of-scope word and no anchor of the top item,
        and the item is named only in clauses that ask nothing ("外公前两天走了，户口咋个注销嘛";
        "残疾证是在那儿评的，那个医生在哪家医院上班").

        Why, whatever the score and whether the item's own texts use the word: the item is then named
        only by the situation, and what is asked is the out-of-scope matter. The situation clause alone
        reads so much like the item that the whole question scores above ``out_of_scope_override``, and
        the item may itself mention the matter (the death benefit's questions speak of 户口注销), so
        neither the override nor ownership says anything about what is asked here. One clause holding
        both the item's anchor and the word ("预防接种证丢了咋个补", "社保卡和户口本都丢了") is left to
        :meth:`counts_against`."""
        if self._words is None:
            return False
        compact = normalized.replace(" ", "")
        pieces = piece_spans(normalized)
        if len(pieces) < 2:
            return False
        last = max((i for i, (*_, asks) in enumerate(pieces) if asks), default=None)
        if last is None or not self._asks_out_of_scope(compact[pieces[last][0]:pieces[last][1]], top):
            return False
        # only now the item's anchors per clause (the costly part, on every question reaching here)
        anchors = self.names.anchors[top]
        held = [bool(self.names.held(compact[a:b]) & anchors) for a, b, _ in pieces]
        # not named at all, or named where something is asked (如何 too: 如何参加职工养老保险): not only
        # context; or named in the asking clause itself
        return any(held) and not held[last] and not any(
            asks or "如何" in compact[a:b] for (a, b, asks), holds in zip(pieces, held) if holds)

    def _asks_out_of_scope(self, text: str, top: int) -> bool:
        """True when the asking clause ``text`` holds an out-of-scope word that counts against the top item.

        A word the item uses itself (户口本 among its materials, 学费 of the training subsidy) counts only
        when the clause asks how to do that very thing (户口怎么注销), not a closing 怎么办 about it all."""
        asked = any(not _CLOSING_ONLY.fullmatch(m.group(0)) for m in _ASKED_FOR.finditer(text))

        words = self._words
        # a place, channel or paper as typed (要带户口本吗) stays one with the particles out
        aside = {word for start, end, word in words.find(text)  # type: ignore[union-attr]
                 if _framed_aside(text, start, end) and not _ASKED_FOR.match(text, end)}

        def counts(source: str) -> bool:
            return any((asked or word not in self._owned[top])
                       and not self._crosses_item_word(source, start, end, top) and word not in aside
                       for start, end, word in words.find(source))  # type: ignore[union-attr]

        # also with its particles out (户口怎么注销)
        return counts(text) or counts("".join(self._core(text)))

    def matter_asked(self, normalized: str, top: int) -> bool:
        """True when an out-of-scope word is followed, in its clause, by a matter asked of that very
        thing: its opening hours, an appointment, its cancellation ("乡镇卫生院打疫苗啥时候开门",
        "卫生院周末上不上班", "打狗疫苗要不要预约"). Whatever the score and whether the top item's texts use the word: the item
        only shares the surroundings (打针 with the vaccination certificate), and none of our items is
        about a place's hours, booking it or cancelling it. Generic asking words (怎么办, 在哪办) are no
        such matter: they often ask about the item itself ("我妈不会用智能手机咋办")."""
        if self._words is None:
            return False
        compact = normalized.replace(" ", "")
        pieces: list[tuple[int, int, bool]] | None = None  # cut only when an out-of-scope word is there
        for start, end, _ in self._words.find(compact):
            pieces = piece_spans(normalized) if pieces is None else pieces
            piece_end = next((b for a, b, _ in pieces if a <= start < b), len(compact))
            if (_ASKED_MATTER.match(compact[:piece_end], end)
                    and not self._crosses_item_word(compact, start, end, top)):
                return True
        return False

    def _topics(self, normalized: str, top: int, joined: str = "", aside: str = "") -> tuple[list[str], bool]:
        """The out-of-scope words that count against the top item, and whether one of them is what
        the question asks for (followed by 怎么办, 在哪里办 …: the word is the request's object).

        Why each filter: the list is scanned as plain substrings, so 领养 (adoption) is found in
        领养老金 — a word of the item crossing the topic word's edge means the topic word is an
        accident of the characters. A clause with no question in it ("明天要坐火车", "请保姆照顾") is
        the resident's situation; when another clause names the top item, the topic word there is not
        what they ask about (but "公租房楼道灯坏了，找哪个修" keeps 楼道灯: no other clause names the
        item). Nor is a word followed by 说, 讲, 让我 … (民警说还要开个证明): who told the resident about the
        need, not what they ask about."""
        compact = normalized.replace(" ", "")
        pieces = piece_spans(normalized)
        found: list[str] = []
        asked = False
        for start, end, word in self._words.find(compact):  # type: ignore[union-attr]
            if (self._crosses_item_word(compact, start, end, top) or _workplace(compact, start, end)
                    or _SPEAKER.match(compact, end)):
                continue
            piece_start, piece_end = next(((a, b) for a, b, _ in pieces if a <= start < b), (0, len(compact)))
            if not _brought(compact, start, end) and (
                    _ASKED_FOR.match(compact[:piece_end], end)
                    or _ASKING_FOR.search(compact[max(piece_start, start - 4):start])):
                asked = True
            elif (self._context_only(compact, pieces, start, end, top, aside)
                  or (_framed_aside(compact, start, end) and self._named_elsewhere(compact, start, end, top))):
                continue
            found.append(self._longest_topic(compact, start, word))
        if joined:
            cores: list[str] | None = None  # per clause, cut only when the cut made a word
            for start, end, word in self._words.find(joined):  # type: ignore[union-attr]
                # a word the cut of particles made (殡仪馆的电话 → 殡仪馆电话) — unless it runs across any
                # item's word there: an accident of the cut (补贴咋个领还有他养老保险 → 领养老保险 holds 领养)
                if word in found or word in compact or self._crosses_item_word(
                        joined, start, end, top, self._every_item_word):
                    continue
                # nor one made across a question's start (不是他们的责任 怎么申请认定 → 责任认定)
                cores = self._question_cores(compact, pieces) if cores is None else cores
                if any(word in core for core in cores):
                    found.append(word)
        return found, asked

    def _longest_topic(self, text: str, start: int, word: str) -> str:
        """The longest out-of-scope word listed at ``start`` of ``text`` (户口本丢 of 户口本丢了), ``word``
        (the shortest, as found) at least.

        Why: an item may use the short word itself (户口本 among the identity card's materials) and so
        own it, while the longer one listed says the resident's matter is that thing itself (a lost
        household book), which no item is about."""
        return max((text[start:start + n] for n in range(len(word), len(text) - start + 1)
                    if text[start:start + n] in self._set), key=len, default=word)

    def _question_cores(self, compact: str, pieces: Sequence[tuple[int, int, bool]]) -> list[str]:
        """The question's core with its particles out, cut where a clause opens by asking (怎么申请 …).

        Why: the cut of particles joins the end of one sentence to the object of the next question
        ("单位说不是他们的责任 怎么申请认定" → 责任认定, a traffic matter); a word made across such a start
        is an accident of the cut. Across a plain clause break it stays (买个保险 有没有推荐的 → 保险推荐)."""
        parts: list[str] = []
        for a, b, _ in pieces:
            core = "".join(self._core(compact[a:b]))
            if parts and not _ASKED_FOR.match(compact, a):
                parts[-1] += core
            else:
                parts.append(core)
        return parts

    def _context_only(self, compact: str, pieces: Sequence[tuple[int, int, bool]], start: int, end: int,
                      top: int, aside: str = "") -> bool:
        """True when the span lies in a clause that asks nothing, another clause asks, and a clause
        other than that one names the top item: a specific anchor of it, or one of its words (name,
        alias, cue) of three or more characters whole (社保卡 names it; 社区 does not)."""
        inside = [c for c in pieces if c[0] <= start and end <= c[1]]
        if not inside or inside[0][2] or not any(asks for *_, asks in pieces):
            return False
        others = " ".join([compact[a:b] for a, b, _ in pieces if (a, b) != inside[0][:2]] + [aside])
        return self.names.names_specifically(others, top) or self._holds_item_word(others, top)

    def _holds_item_word(self, text: str, top: int) -> bool:
        """True when ``text`` holds one of the item's words (name, alias, cue) of three or more
        characters whole: 社保卡 names the card items though its bigrams are too common to be specific
        anchors; 社区 names nothing."""
        joined = text.replace(" ", "")
        return any(len(word) >= 3 and word in joined for word in self._item_words[top])

    def _named_elsewhere(self, compact: str, start: int, end: int, top: int) -> bool:
        """True when the question, without the span, holds a specific anchor of the top item: something
        else in it names the item, so the span need not be what the question is about."""
        rest = compact[:start] + " " + compact[end:]
        return self.names.names_specifically(rest, top) or self._holds_item_word(rest, top)

    def _crosses_item_word(self, text: str, start: int, end: int, top: int,
                           words: frozenset[str] | None = None) -> bool:
        """True when a word of the top item (name, alias or cue; or one of ``words``) overlaps the
        out-of-scope word at ``text[start:end]`` without containing it or lying inside it (领养 in 领养老金
        crosses 养老金). The out-of-scope word is taken at its longest there too (户口迁移, not 户口迁), and
        crosses only when it does so read both ways: 户口本丢 (a longer listed word) crosses 丢了, but 户口本
        does not, and 户口本丢了 is still about the household book.

        Why both ways: the longest reading alone saved 户口本丢了 for the identity card (whose cue 丢了 it
        crosses), though the word as found lies clear of it."""
        longest_end = start + len(self._longest_topic(text, start, text[start:end]))
        words = self._item_words[top] if words is None else words
        return all(self._crossed(text, start, stop, words) for stop in {end, longest_end})

    @staticmethod
    def _crossed(text: str, start: int, end: int, words: frozenset[str]) -> bool:
        """True when one of ``words`` overlaps ``text[start:end]`` without containing it or lying inside it."""
        longest = max((len(w) for w in words), default=0)
        for first in range(max(0, start - longest + 1), end):
            for last in range(max(first + 2, start + 1), min(len(text), first + longest) + 1):
                if (first < start < last < end or start < first < end < last) and text[first:last] in words:
                    return True
        return False


#: An out-of-scope word followed by one of these is what the question asks for (营业执照怎么办) ...
_ASKED_FOR = re.compile(r"(?:要|又|该)?(?:怎么|如何)(?:办|申请|弄|开|补|换|搞|整|注册|登记|注销|转)|"
                        r"(?:在|去|到)?哪里?(?:办|开|申请|注册)")
#: An asking phrase that closes a question about everything before it (怎么办, 如何弄), not one thing.
_CLOSING_ONLY = re.compile(r"(?:要|又|该)?(?:怎么|如何)(?:办|弄|搞|整)")
#: ... and so is a matter of that thing itself that no item is about: a place's hours, booking, cancelling
#: (卫生院啥时候开门, 要不要预约, 户口在哪里注销, 能不能打针); counted whatever the score
#: (``OutOfScope.matter_asked``).
_ASKED_MATTER = re.compile(r"[^ ]{0,4}?(?:(?:几点|啥时候|什么时候|好久)(?:开门|上班|下班|关门)|上不上班|开不开门|"
                           r"(?:要|需要|得|能|可以)?(?:在网上|网上|提前)?预约|(?:怎么|哪里?|去哪里?|在哪里?)注销|"
                           # whether the place gives the shot itself (社区医院周末打不打疫苗, 卫生院能打针吗)
                           r"(?:(?:能|可以|可不可以|能不能)打|打不打)(?:针|疫苗)(?:吗|不|嘛|没有?)?$)")
#: ... and so is one right after a verb of doing (办个营业执照, 申请公积金贷款).
_ASKING_FOR = re.compile(r"(?:办|开|申请|注册|补办|换)(?:个|张|一个|一张)?$")
#: An out-of-scope word followed by one of these is where the resident works (在超市上班, 餐馆老板拖工资,
#: 快递公司打工, 快递站老板, 快递员), or the job held there (在物业当保安, 在酒店做保洁): the situation, not
#: the topic (see ``_workplace``) ...
_WORKS_AT = re.compile(r"(?:公司|店|馆|厂|站|点|里|头|上)?(?:老板|上班|打工|干活|做事|做工|务工|帮工|的活)|员|小哥"
                       r"|(?:公司|店|馆|厂|站|点|里|头|上)?(?:当|做|干)(?:个|了)?(?:保安|保洁|门卫|清洁工|服务员|收银员|"
                       r"厨师|司机|小工|杂工|临时工|护工|会计|搬运工|装卸工|学徒)")
#: An out-of-scope word followed by one of these is who told the resident something (民警说, 医生讲, 老师让我):
#: the source of the need, not its topic (see ``OutOfScope._topics``).
_SPEAKER = re.compile(r"(?:跟我|给我|和我)?(?:说|讲|告诉|叫我|让我|喊我)")
#: ... and so is one opened as a trade (开个火锅店, 开了家超市): the business the resident runs or plans.
_OPENS = re.compile(r"开(?:个|了|家|一家|间|了个|了家)?$")
_TRADE = re.compile(r"(?:店|馆|铺|厂|摊)")

#: Around an out-of-scope word, what frames it as a place, a channel or a paper (see ``_framed_aside``).
_PLACE_BEFORE = re.compile(r"(?:在|到|从)$")
_PLACE_AFTER = re.compile(r"(?:上(?!班|门|户|牌|的)|里(?!的)|门口|柜台|窗口|那边|那里)")
_MATERIAL_BEFORE = re.compile(r"(?:带|准备|提供)$")
#: A paper taken along to do the need (see ``_brought``): 拿/带 before it, 去/到 after it.
_BRINGING_BEFORE = re.compile(r"(?:拿|带)(?:上|着)?$")
_TAKEN_TO = re.compile(r"(?:去|到)")


def _workplace(compact: str, start: int, end: int) -> bool:
    """True when the out-of-scope word at ``compact[start:end]`` is where the resident works or trades:
    followed by 老板, 上班, 打工 … ("在超市上班", "餐馆老板拖工资", "快递站老板"), by 员/小哥 (the
    worker: "几个快递员的工资"), by the job held there ("在物业当保安"), or opened as a trade ("开个火锅店").

    Why: a long question tells who the resident is before the need, often in the same clause
    ("我一个人在超市上班一个月两千多…能申请…不", "餐馆老板拖工资"); the place is the situation of the
    need (the wage, the income, the business loan), not a matter of that place (超市几点关门)."""
    if _WORKS_AT.match(compact, end):
        return True
    return bool(_OPENS.search(compact, 0, start) and _TRADE.match(compact, end))


def _framed_aside(compact: str, start: int, end: int) -> bool:
    """True when the out-of-scope word at ``compact[start:end]`` is framed as a place, a channel or a
    paper to bring: after 在/到/从 ("身份证掉在菜市场了", "钱打到农商行存折上"), before 上/里/门口/柜台
    ("存折上就几百块钱", "超市门口跳广场舞", "农商行柜台交得不"), or after 带/准备/提供 ("要带户口本吗").

    Why: such a word tells where something happens, through what it is paid, or what to bring for
    the need; the need itself is named elsewhere. The caller still asks that something else name the
    top item — though not that the question ask something: "身份证落在公交车上了" and "慢病卡…可能掉在
    班车上了" tell a lost card, and writers read them as its replacement, not a lost-property matter
    (round 14: readable sets +3 −1, unread +1 −0) — and a word the clause asks for (在哪里办营业执照) or
    a matter of the place itself (``matter_asked``: 卫生院几点开门) still counts."""
    # 搬到哪 + 里 is 哪里, no place after a word
    after = _PLACE_AFTER.match(compact, end) and compact[end - 1] not in "哪那这"
    return bool(_PLACE_BEFORE.search(compact, max(0, start - 2), start) or after
                or _MATERIAL_BEFORE.search(compact, max(0, start - 3), start) or _brought(compact, start, end))


def _brought(compact: str, start: int, end: int) -> bool:
    """True when the out-of-scope word at ``compact[start:end]`` is a paper taken somewhere to do the need:
    after 带/拿 and before 去/到 ("要拿死亡证明去哪里办", "带户口本到哪里申请").

    Why: the 去哪里办 after it asks where the need is done with the paper in hand, not how to get the
    paper itself (unlike "死亡证明去哪里办"), so the word is neither what is asked for (``_topics``) nor
    more than a material of the need named elsewhere (火化费 … 有补贴)."""
    return bool(_BRINGING_BEFORE.search(compact, max(0, start - 2), start) and _TAKEN_TO.match(compact, end))
