"""Frozen value types shared by the loader, the matcher and the conversation handler.

Why frozen dataclasses: a :class:`~bot.understanding.knowledge.Knowledge` snapshot is swapped
atomically on reload while handlers may still be reading the previous one; nothing in it may change
under their feet, and values are safe to share between tasks without locks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["answer", "clarify", "fallback"]

#: Aspects of an item a resident can ask about. ``materials`` is the default (what to bring is by far
#: the most common question at the 便民服务站).
ASPECTS: tuple[str, ...] = ("materials", "steps", "where", "time", "fee", "conditions", "proxy")
DEFAULT_ASPECT = "materials"

#: Intents the understanding can return.
#: ``faq`` a question about an item (see ``match``); ``aspect`` only an aspect without an item
#: ("要带啥子材料" as a follow-up); ``pick`` a bare choice ("2", "第二个"); ``greeting``, ``thanks``,
#: ``help`` (menu), ``handoff`` (转人工); ``unknown`` nothing applies.
INTENTS: tuple[str, ...] = ("faq", "aspect", "pick", "greeting", "thanks", "help", "handoff", "wrong", "more", "unknown")

#: Accepted values of ``[[materials]].form``.
MATERIAL_FORMS: tuple[str, ...] = ("原件", "复印件", "原件及复印件", "电子版")

#: Accepted values of ``department``.
DEPARTMENTS: tuple[str, ...] = ("民政", "残联", "人社", "医保", "卫健", "退役军人", "住建", "司法", "公安")


@dataclass(frozen=True, slots=True)
class Where:
    """办理地点: where and when to go."""

    place: str
    hours: str
    address: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Material:
    """One entry of the checklist (材料清单)."""

    name: str
    form: str
    count: int | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceItem:
    """One service item (办事事项), exactly as an admin wrote it in ``faq/<id>.toml``."""

    id: str
    name: str
    department: str
    aliases: tuple[str, ...]
    questions: tuple[str, ...]
    conditions: tuple[str, ...]
    steps: tuple[str, ...]
    time_limit: str
    fee: str
    online: str | None
    proxy: bool
    phone: str
    basis: tuple[str, ...]
    where: Where
    materials: tuple[Material, ...]


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Outcome of matching one question against the items.

    ``item`` is set only for ``answer``; ``candidates`` are ids best first (at most 5): for
    ``clarify`` the options to offer, for ``answer`` the answered id first, for ``fallback`` whatever
    came closest (useful for logs, never to be shown as an answer). ``score`` is 0–100, the top
    item's confidence. On an answer only, what the reply offers next, best first: ``also``, other items
    the question asks for in clauses of their own ("我想办低保，还要开个证明"); ``related``, items scoring
    close behind that the question also anchors, or siblings of the item (one generic word may mean
    either) that its own words told apart from it — the answer is then likely but not certain
    ("外公去世了，有啥子钱可以领", "看病钱不够屋头困难能救助不"). On a clarify, ``also`` set (to the
    candidates) says the message asked for each of them outright ("想办老年证，高龄补贴也想一起弄"): the
    options are needs to take one after the other, not guesses to choose between.
    """

    action: Action
    item: str | None
    candidates: tuple[str, ...]
    score: float
    also: tuple[str, ...] = ()
    related: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Understanding:
    """Everything the conversation handler needs from one message.

    ``aspect`` is always set (``materials`` when the resident did not say); ``aspect_explicit`` tells
    whether they did, so a follow-up like "要好久" can be applied to the item under discussion.
    ``pick`` is the 1-based choice when the message is a bare pick ("2", "第二个"), else ``None``.
    ``normalized`` is the text after normalisation (for logs and debugging).
    """

    intent: str
    aspect: str
    match: MatchResult
    pick: int | None
    normalized: str
    aspect_explicit: bool = False


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One validation problem, located as precisely as the file allows."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" [{self.field}]" if self.field else ""
        return f"{where}:{field} {self.message}"
