"""Residents' questions about service items (办事指南): answer, clarify, fall back, hand off.

The understanding (``bot.understanding``) says what a message is about; this module decides what to
do with it in the light of the conversation so far and words the reply for a phone screen:

* **Context, per resident, with expiry.** After an answer, "要多久" or "在哪里办" is about the last item;
  after a clarify list, "2", "第二个" or an item's name picks one. The context lives in the shared
  conversation state under ``state["faq"]`` (``item`` = last answered item id, read by the tickets
  feature for "代办"), stamped with the time so it expires after :data:`CONTEXT_TTL` seconds even when
  another feature saves the state later.
* **Replies fit a phone.** A title line, a short numbered list, one line of where/when, then one next
  step; well under WeChat's 2048-byte cut (budget :data:`MAX_REPLY_CHARS`).
* **Honest fallback.** When nothing fits we say so, offer 菜单 and 转人工, and record the question for
  admins (``resident-bot faq unmatched``). 转人工 itself is not answered here: it opens a ticket
  (``bot.handlers.tickets``, whose router runs before this one).

Router order: the tickets feature must be placed *before* this router so that a bare "代办" reaches it;
when it is absent, "代办" is answered here with the item's proxy information.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Awaitable, Iterable, Protocol, Sequence, TypeVar

from bot.dispatch import Context, Router
from bot.dispatch.events import MenuClickEvent, Response, ResidentEvent, TextMessage, VoiceMessage
from bot.services.unmatched import ReviewQueue
from bot.understanding.knowledge import Knowledge
from bot.understanding.model import DEFAULT_ASPECT, Material, ServiceItem, Understanding

log = logging.getLogger(__name__)

# --- user-facing texts (Chinese, short, one obvious next step) -----------------------------------

WORKING_HOURS = "工作日 上午9:00-12:00，下午14:00-17:30"
GREETING = (
    "您好！我是普子岭社区小助手。想办什么事，直接打字或发语音问我，"
    "比如“办低保要带啥材料”。回复「菜单」看看我能做什么。"
)
THANKS = "不客气！还有事随时问我。"
# 好的/谢谢 right after an answer that offered 代办: many residents mean "yes, please" by it, so the
# one next step is said again (once) instead of a goodbye
THANKS_PROXY = "不客气！要请网格员上门收取「{name}」的材料，回复「代办」就行。"
# 不是这个 after an answer: say sorry, offer what else it may have been, or ask for other words
WRONG_OFFER = "抱歉，没答对。您问的是不是：\n{options}\n回复数字选择；都不是请换个说法，或回复「转人工」。"
# 还有呢 after an answer: that was all of it; what else can be asked, and what the answer had offered
MORE_DONE = "「{name}」就是上面这些了。还想了解别的，直接问我就行，比如“在哪里办”“要多久”“要钱不”。"
WRONG_AGAIN = "抱歉，没答对。请换个说法说说您要办什么事，比如“办低保要带啥材料”；也可以回复「转人工」请工作人员联系您。"
HELP = (
    "我可以帮您：\n"
    "1. 查办事材料：直接问“办低保要带啥材料”\n"
    "2. 问地点、时限、费用：“在哪里办”“要多久”“要钱吗”\n"
    "3. 请网格员代办：问完事项后回复「代办」\n"
    "4. 找工作人员：回复「转人工」\n"
    "有事直接打字或发语音就行。"
)
FALLBACK = (
    "抱歉，这个问题我暂时没看懂。\n"
    "您可以换个说法，比如“办低保要带啥材料”；\n"
    "回复「菜单」看我能办什么；\n"
    "回复「转人工」请工作人员联系您。"
)
NO_LIST = "请直接告诉我您想办什么事，比如“办低保要带啥材料”。"
CLARIFY_HEAD = "您问的是哪一项？"
NEEDS_HEAD = "您问到了几件事，先看哪一件？"
#: A reply to a list of needs that takes them all ("都要", "两个都看"): the first is answered, the rest offered.
ALL_OF_THEM = re.compile(r"^(?:都|全部|全都|(?:两|2|几|每)(?:个|样)都)(?:要|看|问|办|想办|想问|想看)?(?:吧|嘛|哈|的)?$")
CLARIFY_TAIL = "回复数字选择"
ALSO_HEAD = "您还问到："
RELATED_HEAD = "您可能还想问："
OFFER_TAIL = "回复数字查看"
PICK_OUT_OF_RANGE = "请回复 1 到 {count} 之间的数字："
ASK_ITEM = "请问是哪件事？比如“低保{example}”。"
GUIDE_HEAD = "【办事指南】"
GUIDE_DEPARTMENTS = "可以问这些部门的事：{departments}"
GUIDE_EXAMPLES = "您可以这样问："
#: Example questions on the 办事指南 menu; a test checks each one is answered from the current faq/.
GUIDE_QUESTIONS = ("办低保要带啥材料", "老年证在哪里办", "社保卡丢了怎么补办", "医保每年交多少钱")
GUIDE_TAIL = "直接打字或发语音问我就行。"

NEXT_PROXY = "回复「代办」请网格员上门收取材料"
NEXT_MORE = "回复「{a}」「{b}」了解更多"
#: What to offer next, per aspect just answered (two short phrases the understanding knows).
MORE_PHRASES = {
    "materials": ("在哪办", "要多久"),
    "where": ("要带啥", "要多久"),
    "time": ("要带啥", "在哪办"),
}
MORE_DEFAULT = ("要带啥", "在哪办")
PROXY_YES = "可以代办：网格员上门收取材料，帮您递交。"
PROXY_NO = "这个事项需要本人到场办理，暂不能由网格员代办。"

ASPECT_EXAMPLES = {
    "materials": "要带啥材料", "steps": "怎么办", "where": "在哪里办", "time": "要多久",
    "fee": "要钱吗", "conditions": "要什么条件", "proxy": "能代办吗",
}

# --- behaviour -------------------------------------------------------------------------------------

STATE_KEY = "faq"
MEMO_SIZE = 20_000            # understood messages remembered per knowledge snapshot
CONTEXT_TTL = 1800          # seconds a resident's FAQ context (last item, clarify list) stays valid
MAX_REPLY_CHARS = 600       # well under WeChat's 2048-byte cut and readable on a phone
MAX_OPTIONS = 4             # clarify lists longer than this are hard to read and to pick from
GUIDE_KEY = "GUIDE"
GENERIC_SHARE = 0.2         # a name piece used by more than this share of items names none of them
GENERIC_MIN = 3
WRITE_WAIT = 1.0            # seconds a reply waits for its database writes before they go on in the background

T = TypeVar("T")


class KnowledgeSource(Protocol):
    """Anything with the current knowledge snapshot (``bot.understanding.loader.KnowledgeHolder``)."""

    @property
    def current(self) -> Knowledge: ...


# --- conversation context ------------------------------------------------------------------------


@dataclass
class FaqContext:
    """The FAQ part of a resident's conversation state."""

    item: str | None = None           # last answered item id (the tickets feature reads it for 代办)
    aspect: str = DEFAULT_ASPECT      # aspect of that answer, or of the pending clarify list
    options: list[str] = field(default_factory=list)  # pending clarify list, best first
    asked: str | None = None          # an aspect asked before saying which item ("要多久" → "低保")
    offered: list[str] = field(default_factory=list)  # items offered after the answer (您还问到, 您可能还想问)
    proxy_offered: bool = False       # the answer ended with 回复「代办」…, not yet taken up or repeated
    question: str | None = None       # what the resident asked to get that answer (kept for 不是这个)
    needs: bool = False               # the pending list is of needs all asked for (the rest is offered after a pick)

    def to_state(self, now: datetime) -> dict[str, Any]:
        return {"item": self.item, "aspect": self.aspect, "options": list(self.options), "asked": self.asked,
                "offered": list(self.offered), "proxy_offered": self.proxy_offered, "question": self.question,
                "needs": self.needs, "at": now.isoformat()}


def read_context(state: dict[str, Any], now: datetime, ttl: int = CONTEXT_TTL) -> FaqContext:
    """The live FAQ context in ``state``; empty when missing, malformed or older than ``ttl``."""
    raw = state.get(STATE_KEY)
    if not isinstance(raw, dict):
        return FaqContext()
    try:
        at = datetime.fromisoformat(str(raw.get("at")))
    except ValueError:
        return FaqContext()
    if at.tzinfo is None or now - at > timedelta(seconds=ttl) or at > now + timedelta(minutes=5):
        return FaqContext()
    item = raw.get("item") if isinstance(raw.get("item"), str) else None
    options = [o for o in raw.get("options") or [] if isinstance(o, str)]
    aspect = raw.get("aspect") if isinstance(raw.get("aspect"), str) else DEFAULT_ASPECT
    asked = raw.get("asked") if isinstance(raw.get("asked"), str) else None
    offered = [o for o in raw.get("offered") or [] if isinstance(o, str)]
    question = raw.get("question") if isinstance(raw.get("question"), str) else None
    return FaqContext(item, aspect, options, asked, offered, raw.get("proxy_offered") is True, question,
                      raw.get("needs") is True)


def last_item(state: dict[str, Any], now: datetime, ttl: int = CONTEXT_TTL) -> str | None:
    """The item the resident was last answered about, if still fresh (for the tickets feature)."""
    return read_context(state, now, ttl).item


def proxy_taken(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the FAQ answer's 代办 offer marked as taken up (the tickets feature calls this
    when it starts a 代办 form for the last item), so a later 谢谢 does not offer it again."""
    raw = state.get(STATE_KEY)
    if not isinstance(raw, dict) or not raw.get("proxy_offered"):
        return state
    return {**state, STATE_KEY: {**raw, "proxy_offered": False}}


# --- reply formatting (pure) -----------------------------------------------------------------------


def _material_line(index: int, material: Material, with_note: bool) -> str:
    """"1. 一寸白底照片 3张（原件）": the name, how many, and in which form."""
    unit = "张" if "照片" in material.name or "相片" in material.name else "份"
    count = f" {material.count}{unit}" if material.count else ""
    detail = material.form + (f"，{material.note}" if with_note and material.note else "")
    return f"{index}. {material.name}{count}（{detail}）"


def _numbered(lines: Iterable[str]) -> list[str]:
    return [f"{i}. {line}" for i, line in enumerate(lines, 1)]


def where_line(item: ServiceItem) -> str:
    return f"办理地点：{item.where.place}（{item.where.hours}）"


def next_step(item: ServiceItem, aspect: str) -> str:
    if item.proxy:
        return NEXT_PROXY
    a, b = MORE_PHRASES.get(aspect, MORE_DEFAULT)
    return NEXT_MORE.format(a=a, b=b)


def _body(item: ServiceItem, aspect: str, detailed: bool) -> list[str]:
    """The lines between the title and the next step, for one aspect."""
    if aspect == "steps":
        lines = ["办理流程：", *_numbered(item.steps)]
        if item.online and detailed:
            lines.append(f"网上办理：{item.online}")
        return lines + [where_line(item)]
    if aspect == "where":
        lines = [f"办理地点：{item.where.place}", f"办理时间：{item.where.hours}"]
        if item.where.address:
            lines.append(f"地址：{item.where.address}")
        if item.where.note and detailed:
            lines.append(item.where.note)
        return lines + [f"咨询电话：{item.phone}"]
    if aspect == "time":
        return [f"办理时限：{item.time_limit}", where_line(item)]
    if aspect == "fee":
        return [f"收费：{item.fee}", where_line(item)]
    if aspect == "conditions":
        return ["申请条件：", *_numbered(item.conditions)]
    if aspect == "proxy":
        return [PROXY_YES if item.proxy else PROXY_NO, where_line(item)]
    materials = [_material_line(i, m, detailed) for i, m in enumerate(item.materials, 1)]
    return ["需要准备：", *materials, where_line(item)]


def format_answer(item: ServiceItem, aspect: str = DEFAULT_ASPECT, limit: int = MAX_REPLY_CHARS) -> str:
    """【事项名称】, the aspect asked about, one next step; shortened to fit ``limit`` characters."""
    tail = next_step(item, aspect)
    for detailed in (True, False):
        text = "\n".join([f"【{item.name}】", *_body(item, aspect, detailed), tail])
        if len(text) <= limit:
            return text
    head, body = f"【{item.name}】", _body(item, aspect, False)
    while body and len("\n".join([head, *body, tail])) > limit:  # last resort: drop lines from the end
        body.pop()
    return "\n".join([head, *body, "……", tail])


def format_clarify(items: Sequence[ServiceItem], needs: bool = False) -> str:
    """The numbered list to pick from: which item was meant, or (``needs``) which of the needs the
    message asked for to take first."""
    head = NEEDS_HEAD if needs else CLARIFY_HEAD
    return "\n".join([head, *_numbered(i.name for i in items[:MAX_OPTIONS]), CLARIFY_TAIL])


def format_offer(also: Sequence[ServiceItem], related: Sequence[ServiceItem]) -> str:
    """What an answer offers next, numbered in one run so "1" or "第一个" opens one: the message's other
    needs (您还问到), then the answered item's close siblings (您可能还想问)."""
    lines: list[str] = []
    numbered = _numbered(i.name for i in [*also, *related])
    if also:
        lines += [ALSO_HEAD, *numbered[: len(also)]]
    if related:
        lines += [RELATED_HEAD, *numbered[len(also):]]
    return "\n".join([*lines, OFFER_TAIL])


def format_guide(knowledge: Knowledge) -> str:
    """Departments (with how many items each) and a few example questions."""
    counts = Counter(item.department for item in knowledge.items.values())
    departments = "、".join(f"{name}{n}项" for name, n in sorted(counts.items(), key=lambda p: (-p[1], p[0])))
    return "\n".join([GUIDE_HEAD, GUIDE_DEPARTMENTS.format(departments=departments), GUIDE_EXAMPLES,
                      *_numbered(GUIDE_QUESTIONS), GUIDE_TAIL])


# --- deciding what to do -------------------------------------------------------------------------


def _bigrams(text: str) -> set[str]:
    compact = text.replace(" ", "")
    return {compact[i:i + 2] for i in range(len(compact) - 1)}


def name_vocabulary(knowledge: Knowledge) -> dict[str, frozenset[str]]:
    """Per item, the two-character pieces of its name and aliases that are specific to few items.

    Pieces shared by many items (申请, 补贴, 申领) name no item in particular: "申请条件" asks the
    conditions of the item under discussion, while "养老保险在哪里办" names another one.
    """
    pieces = {ident: frozenset().union(*(_bigrams(knowledge.normalize(p)) for p in (item.name, *item.aliases)))
              for ident, item in knowledge.items.items()}
    frequency = Counter(piece for found in pieces.values() for piece in found)
    generic = max(GENERIC_MIN, GENERIC_SHARE * len(pieces))
    return {ident: frozenset(p for p in found if frequency[p] <= generic) for ident, found in pieces.items()}


def names_an_item(vocabulary: dict[str, frozenset[str]], normalized: str, ids: Iterable[str]) -> bool:
    """Whether the message shares a specific piece of one of these items' names or aliases.

    Used to tell a follow-up ("在哪里办", which the matcher may still loosely match to many items) from a
    new question about another item ("养老保险在哪里办").
    """
    grams = _bigrams(normalized)
    return any(grams & vocabulary.get(ident, frozenset()) for ident in ids)


#: Words left over from an aspect question that name nothing ("在哪里办" leaves 办, "办好要几天" 办好要).
LEFTOVER_WORDS = ("申请", "申领", "办好", "办完", "办", "要", "去", "交", "在", "能", "不", "是", "好", "弄", "做",
                  "搞", "到", "得", "有", "没", "给", "点", "个", "些", "多", "这", "那", "里", "儿")


@dataclass(frozen=True)
class Lexicon:
    """What the dialogue derives from one knowledge snapshot to read follow-ups."""

    vocabulary: dict[str, frozenset[str]]
    strip: tuple[str, ...]   # normalised aspect phrases, stop words and fillers, longest first

    @classmethod
    def build(cls, knowledge: Knowledge) -> "Lexicon":
        intents = knowledge.intents
        phrases = [*(p for ps in intents.aspects.values() for p in ps), *intents.stopwords, *intents.fillers,
                   *LEFTOVER_WORDS]
        normalised = {knowledge.normalize(p).replace(" ", "") for p in phrases} | set(LEFTOVER_WORDS)
        return cls(name_vocabulary(knowledge), tuple(sorted((p for p in normalised if p), key=len, reverse=True)))

    def only_aspect(self, normalized: str) -> bool:
        """True when the message is an aspect and nothing else ("要多久"), not "电费在哪里交".

        A stopgap until the understanding reports this itself: without it, an out-of-scope question
        with an aspect would get "which item?" instead of an honest fallback that admins can review.
        """
        rest = normalized.replace(" ", "")
        for phrase in self.strip:
            rest = rest.replace(phrase, "")
        return len([c for c in rest if c.isalnum()]) <= 1


def follow_up_item(knowledge: Knowledge, lexicon: Lexicon, u: Understanding, context: FaqContext) -> str | None:
    """The context item when this message asks an aspect of it rather than about something new.

    The matcher may loosely match a bare aspect ("申请条件", "在哪里办") to unrelated items; such a
    match counts as a new question only when the message names one of the matched items.
    """
    item = context.item
    if item is None or item not in knowledge.items or not u.aspect_explicit:
        return None
    if u.intent == "aspect":
        return item
    if u.intent != "faq":
        return None
    match = u.match
    if item in match.candidates:
        return item
    if names_an_item(lexicon.vocabulary, u.normalized, match.candidates):
        return None
    return item if match.action != "answer" or lexicon.only_aspect(u.normalized) else None


@dataclass
class FaqDialogue:
    """The conversation logic, separate from the router so it can be called with any text."""

    source: KnowledgeSource
    reviews: ReviewQueue
    ttl: int = CONTEXT_TTL
    _lexicon: tuple[Knowledge, Lexicon] | None = field(default=None, init=False, repr=False)
    _memo: tuple[Knowledge, OrderedDict[str, Understanding]] | None = field(default=None, init=False, repr=False)
    _writes: set[asyncio.Future[Any]] = field(default_factory=set, init=False, repr=False)

    async def _bounded(self, work: Awaitable[T], what: str) -> tuple[bool, T | None]:
        """Wait for a database write up to :data:`WRITE_WAIT`, then let it finish in the background.

        A busy database (SQLite locked by a long write, a slow PostgreSQL) must not cost the resident
        the answer: the gateway's reply deadline is a few seconds. Returns (finished, result); a write
        that failed outright is logged and reported as finished with ``None``.
        """
        task = asyncio.ensure_future(work)
        self._writes.add(task)
        task.add_done_callback(self._write_done)
        try:
            return True, await asyncio.wait_for(asyncio.shield(task), WRITE_WAIT)
        except asyncio.TimeoutError:
            log.warning("faq: %s is slow; it goes on in the background", what)
            return False, None
        except Exception:  # noqa: BLE001 - logged by _write_done
            return True, None

    def _write_done(self, task: asyncio.Future[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("faq: database write failed: %r", task.exception())

    def lexicon(self, knowledge: Knowledge) -> Lexicon:
        """:class:`Lexicon` of a snapshot, computed once per snapshot (reloads swap the snapshot)."""
        if self._lexicon is None or self._lexicon[0] is not knowledge:
            self._lexicon = (knowledge, Lexicon.build(knowledge))
        return self._lexicon[1]

    def understand(self, knowledge: Knowledge, text: str) -> Understanding:
        """``knowledge.understand(text)``, memoised per snapshot.

        Residents send the same few messages over and over ("你好", "低保", menu words, the examples
        on posters), and understanding is pure, so a repeat costs a dict lookup instead of a match
        (~1 ms). A reload swaps the snapshot and so starts a fresh memo.
        """
        if self._memo is None or self._memo[0] is not knowledge:
            self._memo = (knowledge, OrderedDict())
        memo = self._memo[1]
        found = memo.get(text)
        if found is None:
            found = memo[text] = knowledge.understand(text)
            if len(memo) > MEMO_SIZE:
                memo.popitem(last=False)
        else:
            memo.move_to_end(text)
        return found

    async def converse(self, text: str, ctx: Context) -> Response | None:
        """Answer one resident message; ``None`` when no knowledge is loaded (the fallback answers)."""
        knowledge = self.source.current
        if not knowledge.items:
            return None
        u = self.understand(knowledge, text)
        if u.intent == "handoff":  # 转人工 is a ticket: the tickets router (placed before this one) opens it
            return None
        state = await ctx.state()
        context = read_context(state, ctx.now, self.ttl)
        turn = _Turn(knowledge, text, u, ctx, state, context)
        return (await self._pending_pick(turn) or await self._thanks_after_offer(turn) or await self._wrong(turn)
                or self._more(turn) or self._smalltalk(u) or await self._about_items(turn)
                or await self._fallback(turn))

    async def _pending_pick(self, t: "_Turn") -> Response | None:
        """A reply to the clarify list: a number, or the name of one option; or a number picking one
        of the items offered after an answer (see :meth:`_offered_pick`)."""
        if not t.context.options and t.context.offered:
            return await self._offered_pick(t)
        options = t.context.options
        moved_on = t.u.match.action == "answer" and t.u.match.item not in options  # a new, clear question
        if not options or t.u.intent in ("greeting", "thanks", "help") or moved_on:
            return Response.text(NO_LIST, intent="pick", action="no_list") if t.u.intent == "pick" else None
        picked = t.knowledge.pick(t.text, options)
        if picked is None and t.context.needs and ALL_OF_THEM.match(t.u.normalized.replace(" ", "")):
            picked = options[0]  # "都要": one at a time, the first now, the others offered after it
        if picked is not None:
            aspect = t.u.aspect if t.u.aspect_explicit else t.context.aspect
            # a list of needs: the others were asked for too, so they are offered after this one
            others = [o for o in options if o != picked] if t.context.needs else []
            return await self._answer(t, picked, aspect, intent="pick", also=others)
        return self._repeat_options(t.knowledge, options) if t.u.intent == "pick" else None

    async def _offered_pick(self, t: "_Turn") -> Response | None:
        """"1" or "第一个" after an answer that offered other items ("您还问到：…", "您可能还想问：…").

        Why only a number: the resident was just answered about one item, so a follow-up ("要多久",
        "要带啥") is about that one; the fuzzy name pick of a clarify list would read it as the other."""
        offered = [o for o in t.context.offered if o in t.knowledge.items]
        if t.u.intent != "pick" or t.u.pick is None or not offered:
            return None
        if t.u.pick > len(offered):
            return self._repeat_options(t.knowledge, offered)
        return await self._answer(t, offered[t.u.pick - 1], t.context.aspect, intent="pick")

    async def _thanks_after_offer(self, t: "_Turn") -> Response | None:
        """好的 / 谢谢 / 👍 right after an answer that ended with the 代办 offer: the offer once more,
        by name. Why: elderly residents answer an offer with 好的 and then wait; a plain goodbye left
        them there. Said once: the context forgets the offer, and starting 代办 forgets it too."""
        item = t.knowledge.items.get(t.context.item or "")
        if t.u.intent != "thanks" or not t.context.proxy_offered or item is None or not item.proxy:
            return None
        await self._save(t, replace(t.context, proxy_offered=False))
        return Response.text(THANKS_PROXY.format(name=item.name), intent="thanks", item=item.id,
                             action="offer_proxy")

    async def _wrong(self, t: "_Turn") -> Response | None:
        """不是这个 / 答错了: sorry, then the other items the answer had offered as a numbered list (a
        number picks, as after a clarify), else a request for other words; the question that got the
        wrong answer goes to the review queue with the item answered, so admins see what was missed,
        not only what had no answer. Said to a clarify list (都不是), the list is dropped."""
        if t.u.intent != "wrong":
            return None
        context = t.context
        if context.item and context.question:
            self.reviews.record_unmatched(t.ctx.openid, context.question, t.knowledge.normalize(context.question),
                                          [context.item], 0.0, t.knowledge.version or None, t.ctx.now, "wrong")
            log.info("faq: an answer was reported wrong (version %s)", t.knowledge.version)
        others = [o for o in context.offered if o in t.knowledge.items and o != context.item][:MAX_OPTIONS]
        await self._save(t, FaqContext(aspect=context.aspect, options=others))
        if not others:
            return Response.text(WRONG_AGAIN, intent="wrong", action="ask_again")
        names = "\n".join(_numbered(t.knowledge.items[o].name for o in others))
        return Response.text(WRONG_OFFER.format(options=names), intent="wrong", action="clarify",
                             meta={"options": ",".join(others)})

    @staticmethod
    def _more(t: "_Turn") -> Response | None:
        """还有呢 / 还有吗 after an answer: the answer was all of it; say so, with what else may be asked and
        the items the answer offered (still picked by number: the context is unchanged). Without an
        answer to refer to, the usual "tell me what you want to do"."""
        if t.u.intent != "more":
            return None
        item = t.knowledge.items.get(t.context.item or "")
        if item is None:
            return Response.text(NO_LIST, intent="more", action="no_item")
        offered = [t.knowledge.items[o] for o in t.context.offered if o in t.knowledge.items]
        text = MORE_DONE.format(name=item.name)
        if offered:
            text += "\n" + format_offer([], offered)
        return Response.text(text, intent="more", item=item.id, action="more")

    @staticmethod
    def _smalltalk(u: Understanding) -> Response | None:
        replies = {"greeting": GREETING, "thanks": THANKS, "help": HELP}
        if u.intent in replies:
            return Response.text(replies[u.intent], intent=u.intent, action=u.intent)
        return None

    async def _about_items(self, t: "_Turn") -> Response | None:
        """Follow-up on the last item, a clear answer, a clarify list, or "which item?"."""
        lexicon = self.lexicon(t.knowledge)
        followed = follow_up_item(t.knowledge, lexicon, t.u, t.context)
        if followed is not None:
            return await self._answer(t, followed, t.u.aspect, intent="aspect")
        aspect = t.u.aspect if t.u.aspect_explicit else (t.context.asked or t.u.aspect)
        match = t.u.match
        if t.u.intent == "faq" and match.action == "answer" and match.item in t.knowledge.items:
            return await self._answer(t, match.item, aspect, intent="faq", also=match.also, related=match.related)
        only_aspect = t.u.aspect_explicit and lexicon.only_aspect(t.u.normalized)
        if t.u.intent == "faq" and match.action == "clarify" and not (
                only_aspect and not names_an_item(lexicon.vocabulary, t.u.normalized, match.candidates)):
            return await self._clarify(t, aspect)
        if t.u.intent in ("aspect", "faq") and only_aspect:
            await self._save(t, replace(t.context, options=[], asked=t.u.aspect))
            example = ASPECT_EXAMPLES.get(t.u.aspect, ASPECT_EXAMPLES[DEFAULT_ASPECT])
            return Response.text(ASK_ITEM.format(example=example), intent="aspect", action="ask_item",
                                 meta={"aspect": t.u.aspect})
        return None

    async def _save(self, t: "_Turn", context: FaqContext) -> None:
        """Read-modify-write of the shared state: only our key changes."""
        state = dict(t.state)
        state[STATE_KEY] = context.to_state(t.ctx.now)
        await self._bounded(t.ctx.save_state(state, ttl_seconds=self.ttl), "saving the conversation state")

    async def _answer(self, t: "_Turn", ident: str, aspect: str, intent: str,
                      also: Sequence[str] = (), related: Sequence[str] = ()) -> Response:
        """The answer about one item, then what it offers by number: ``also``, the message's other needs;
        ``related``, the item's close siblings (see ``MatchResult``)."""
        item = t.knowledge.items[ident]
        known = t.knowledge.items
        also = [o for o in dict.fromkeys(also) if o in known and o != ident][:MAX_OPTIONS]
        related = [o for o in dict.fromkeys(related) if o in known and o != ident and o not in also]
        related = related[: MAX_OPTIONS - len(also)]
        offered = also + related
        await self._save(t, FaqContext(item=ident, aspect=aspect, offered=offered, proxy_offered=item.proxy,
                                       question=t.text))
        if not offered:
            return Response.text(format_answer(item, aspect), intent=intent, item=ident, action="answer",
                                 meta={"aspect": aspect})
        tail = format_offer([known[o] for o in also], [known[o] for o in related])
        text = format_answer(item, aspect, MAX_REPLY_CHARS - len(tail) - 1) + "\n" + tail
        return Response.text(text, intent=intent, item=ident, action="answer",
                             meta={"aspect": aspect, "offered": ",".join(offered)})

    async def _clarify(self, t: "_Turn", aspect: str) -> Response | None:
        options = [c for c in t.u.match.candidates if c in t.knowledge.items][:MAX_OPTIONS]
        if not options:
            return None
        needs = bool(t.u.match.also)  # each option was asked for (see MatchResult)
        await self._save(t, FaqContext(item=t.context.item, aspect=aspect, options=options, needs=needs))
        items = [t.knowledge.items[o] for o in options]
        return Response.text(format_clarify(items, needs), intent="faq", action="clarify",
                             meta={"aspect": aspect, "options": ",".join(options)})

    @staticmethod
    def _repeat_options(knowledge: Knowledge, options: Sequence[str]) -> Response:
        """A number out of range: the list again, with the range to pick from."""
        items = [knowledge.items[o] for o in options if o in knowledge.items]
        text = PICK_OUT_OF_RANGE.format(count=len(items)) + "\n" + "\n".join(_numbered(i.name for i in items))
        return Response.text(text, intent="pick", action="clarify")

    async def _fallback(self, t: "_Turn") -> Response:
        """Say so honestly, and keep the question for admins to review."""
        self.reviews.record_unmatched(t.ctx.openid, t.text, t.u.normalized, t.u.match.candidates,
                                      t.u.match.score, t.knowledge.version or None, t.ctx.now)
        log.info("faq: unmatched question recorded (score %.0f, version %s)", t.u.match.score, t.knowledge.version)
        if t.context.options or t.context.asked:  # a pending list or question no longer applies
            await self._save(t, FaqContext(item=t.context.item, aspect=t.context.aspect))
        return Response.text(FALLBACK, intent="unknown", action="fallback")


@dataclass(frozen=True)
class _Turn:
    """Everything about the message being handled, passed between the steps of :meth:`converse`."""

    knowledge: Knowledge
    text: str
    u: Understanding
    ctx: Context
    state: dict[str, Any]
    context: FaqContext


def faq_router(source: KnowledgeSource, reviews: ReviewQueue, ttl: int = CONTEXT_TTL) -> Router:
    """Text, recognised voice and the 办事指南 menu click."""
    router = Router("faq")
    dialogue = FaqDialogue(source, reviews, ttl)

    @router.on(TextMessage, when=lambda e: bool(getattr(e, "content", "").strip()))
    async def on_text(event: ResidentEvent, ctx: Context) -> Response | None:
        assert isinstance(event, TextMessage)
        return await dialogue.converse(event.content, ctx)

    @router.on(VoiceMessage, when=lambda e: bool((getattr(e, "recognition", None) or "").strip()))
    async def on_voice(event: ResidentEvent, ctx: Context) -> Response | None:
        assert isinstance(event, VoiceMessage) and event.recognition
        return await dialogue.converse(event.recognition, ctx)

    @router.on(MenuClickEvent, when=lambda e: getattr(e, "key", "") == GUIDE_KEY)
    async def on_guide(event: ResidentEvent, ctx: Context) -> Response | None:
        knowledge = source.current
        if not knowledge.items:
            return None
        return Response.text(format_guide(knowledge), intent="menu:GUIDE", action="guide")

    return router
