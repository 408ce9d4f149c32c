"""The knowledge snapshot: items + language data + the index built from them, and ``understand``.

Why a snapshot: reloads build a complete new :class:`Knowledge` and swap one reference, so a message
is always understood against one consistent version of the files, never half old and half new.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

from bot.understanding.index import item_fields
from bot.understanding.intentsfile import IntentData
from bot.understanding.matcher import Matcher, MatcherSettings
from bot.understanding.model import ASPECTS, DEFAULT_ASPECT, MatchResult, ServiceItem, Understanding
from bot.understanding.normalize import Normalizer, Replacer, basic, digits_for_matching
from bot.understanding.typed_pinyin import PinyinDecoder

NormFn = Callable[[str], str]
#: Verbs and particles that remain around an aspect phrase in a bare follow-up ("那要办好久嘛", "申请条件").
_LEFTOVER = ("申请", "那", "这", "它", "办", "去", "弄", "交", "领", "还", "就", "要", "不", "又", "得", "到")
_FALLBACK = MatchResult("fallback", None, (), 0.0)
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
#: A bare choice: optional 选/要/就, optional 第, a number, optional 个/项/号, optional 吧/嘛/哈.
_PICK = re.compile(r"^(?:我?(?:选|要|就|是))?(?:第)?(\d{1,2}|[一二两三四五六七八九十])(?:个|项|条|号|种)?(?:吧|嘛|哈|的|那个)?$")
_LAST = re.compile(r"^(?:我?(?:选|要|就|是))?最后(?:一|1)?(?:个|项|条|种)?(?:吧|嘛|哈)?$")


def parse_pick(normalized: str, count: int | None = None) -> int | None:
    """1-based choice from a bare pick ("2", "第二个", "选3", "最后一个"); ``None`` otherwise."""
    text = normalized.replace(" ", "")
    if count and _LAST.match(text):
        return count
    found = _PICK.match(text)
    if not found:
        return None
    token = found.group(1)
    value = int(token) if token.isdigit() else _CN_DIGITS[token]
    return value if value >= 1 else None


@dataclass(frozen=True)
class _Phrases:
    """Compiled phrase sets derived from :class:`IntentData`, in normalised form."""

    stop: Replacer                                 # stop words only (for small-talk checks)
    strip: Replacer                                # stop words and aspect phrases, in one pass
    aspects: Mapping[str, tuple[tuple[str, str], ...]]  # first character -> (phrase, aspect), longest first
    whole: Mapping[str, Replacer]                  # intent -> remover of its phrases
    contains: Mapping[str, tuple[str, ...]]
    handoff_strip: Replacer
    shields: tuple[str, ...] = ()                  # knowledge words holding a ``contains`` phrase (人工耳蜗)

    def unshielded(self, compact: str) -> str:
        """The text with the knowledge's own words that hold a ``contains`` phrase blanked out: 人工 in
        人工耳蜗 is a cochlear implant, not a request for a person."""
        for word in self.shields:
            if word in compact:
                compact = compact.replace(word, "|")
        return compact


@dataclass(frozen=True)
class Knowledge:
    """An immutable snapshot. Build with :meth:`build`; share freely between tasks."""

    items: Mapping[str, ServiceItem]
    intents: IntentData
    normalizer: Normalizer = field(repr=False)
    matcher: Matcher = field(repr=False)
    _phrases: _Phrases = field(repr=False)
    version: str = ""

    @classmethod
    def build(cls, items: Sequence[ServiceItem], intents: IntentData,
              settings: MatcherSettings | None = None, version: str = "") -> "Knowledge":
        """Compile the normaliser and the index. Pure; costs a few tens of ms for ~60 items."""
        protected = protected_words(items, intents)
        typed_pinyin = PinyinDecoder(basic(text) for text in knowledge_texts(items, intents))
        normalizer = Normalizer(intents.rewrites, intents.fillers, protected, typed_pinyin.decode)
        norm = normalizer.normalize
        phrases = _compile_phrases(intents, norm, protected)
        ordered = sorted(items, key=lambda i: i.id)

        def core(text: str) -> tuple[str, ...]:
            stripped = phrases.strip(digits_for_matching(norm(text)))
            return tuple(part for part in stripped.split(" ") if part)

        matcher = Matcher(ordered, core, settings, intents.ambiguous, [norm(t) for t in intents.out_of_scope],
                          cues=intents.cues, norm=norm, contrast=intents.contrast)
        return cls(MappingProxyType({i.id: i for i in ordered}), intents, normalizer, matcher, phrases, version)

    def normalize(self, text: str) -> str:
        return self.normalizer.normalize(text)

    def match(self, text: str) -> MatchResult:
        """Match raw text (normalised here) to items."""
        return self.matcher.match(self.normalize(text))

    def aspect(self, normalized: str) -> tuple[str, bool]:
        """The aspect asked about, and whether it was explicit.

        Generic materials phrases (要什么) also occur inside other questions (要什么条件), so any other
        aspect wins over materials; among the others the earliest in the message wins.
        """
        found: dict[str, int] = {}
        by_first = self._phrases.aspects
        # only phrases whose first character is there can be found (a few dozen of the hundred and more);
        # the earliest position per aspect is kept, so the order they are tried in does not matter
        for first in by_first.keys() & set(normalized):
            for phrase, aspect in by_first[first]:
                position = normalized.find(phrase)
                if position >= 0 and position < found.get(aspect, len(normalized) + 1):
                    found[aspect] = position
        others = {a: p for a, p in found.items() if a != DEFAULT_ASPECT}
        if others:
            return min(others, key=lambda a: (others[a], a)), True
        return (DEFAULT_ASPECT, True) if found else (DEFAULT_ASPECT, False)

    def smalltalk(self, normalized: str, raw: str) -> str | None:
        """greeting / thanks / help / handoff, or ``None`` when the message is about something else.

        ``contains`` intents (转人工) win wherever the phrase appears; ``whole`` intents only when the
        message is nothing but their phrases plus stop words ("谢谢你哈" is thanks, "谢谢，低保要啥"
        is a question). A message that was only fillers (你好, 在吗) is a greeting.
        """
        compact = normalized.replace(" ", "")
        bare = self._phrases.unshielded(compact)
        for intent, phrases in self._phrases.contains.items():
            if any(p in bare for p in phrases):
                return intent
        if not compact:
            return "greeting" if basic(raw).strip() else None
        for intent, remover in self._phrases.whole.items():
            removed = remover(normalized)
            if removed != normalized and not self._phrases.stop(removed).replace(" ", ""):
                return intent
        return None

    def understand(self, text: str) -> Understanding:
        """Intent + aspect + match for one message, each computed independently of the others."""
        normalized = self.normalize(text)
        aspect, explicit = self.aspect(normalized)
        pick = parse_pick(normalized)
        if pick is not None:
            return Understanding("pick", aspect, _FALLBACK, pick, normalized, explicit)
        talk = self.smalltalk(normalized, text)
        if talk is None:
            match = self.matcher.match(normalized)
        elif talk == "handoff":  # still say what it is about ("转人工问低保"), without the 转人工 part
            match = self.matcher.match(self._phrases.handoff_strip(normalized))
        else:
            match = _FALLBACK
        if talk:
            return Understanding(talk, aspect, match, None, normalized, explicit)
        if match.action != "fallback":
            intent = "faq"
        else:
            intent = "aspect" if explicit and self.only_aspect(normalized) else "unknown"
        return Understanding(intent, aspect, match, None, normalized, explicit)

    def only_aspect(self, normalized: str) -> bool:
        """True when the message is an aspect and nothing else ("要好久", "在哪里办"), so it can apply
        to the item under discussion; "电费在哪里交" has more in it and is not a follow-up."""
        rest = self._phrases.strip(normalized).replace(" ", "")
        for leftover in _LEFTOVER:
            rest = rest.replace(leftover, "")
        return len(rest) <= 1

    def pick(self, text: str, candidates: Sequence[str]) -> str | None:
        """Resolve a reply to a clarify list: "2", "第二个", or a name/alias of one candidate."""
        if not candidates:
            return None
        normalized = self.normalize(text)
        number = parse_pick(normalized, len(candidates))
        if number is not None:
            return candidates[number - 1] if number <= len(candidates) else None
        scored = self.matcher.scores(normalized, only=candidates)
        if not scored:
            return None
        top, best = scored[0]
        runner_up = scored[1][0] if len(scored) > 1 else 0.0
        settings = self.matcher.settings
        if top >= settings.clarify_min and top - runner_up >= settings.answer_margin / 2:
            return best
        return None


#: Verbs an aspect phrase keeps in the core (怎么领 → 领): paying in or drawing out money.
_KEPT_VERBS = ("领", "交", "缴")


def _kept_verb(phrase: str, stop_words: Mapping[str, str]) -> str:
    """What an aspect phrase leaves in the question's core: nothing, except a money verb after a
    question word (怎么领 → 领, 怎么交 → 交).

    Why: that verb is what tells sibling items apart — 养老金怎么领 is the claim, not enrolment;
    医保怎么交 is the payment, not the e-voucher — while the phrase as a whole still marks the aspect
    asked (steps). Other verbs (弄, 办, 报) say nothing an item's own words do not."""
    for cut in range(len(phrase) - 1, 0, -1):
        if phrase[:cut] in stop_words and phrase[cut:] in _KEPT_VERBS:
            return f" {phrase[cut:]} "
    return " "


def knowledge_texts(items: Sequence[ServiceItem], intents: IntentData) -> list[str]:
    """Every text of the knowledge in the words residents read or write, raw: its own words (see
    :func:`protected_words`), the items' questions, conditions and steps, and the intents' phrases,
    rewrite targets and out-of-scope topics. What typed pinyin is read back into (see
    :mod:`bot.understanding.typed_pinyin`): the characters, and which follows which, of the texts the
    questions are matched against — out-of-scope topics too, so "jia zhao dao qi" reads as 驾照到期
    and is told apart as such."""
    texts = protected_words(items, intents)
    texts += [text for item in items for field in ("question", "body") for text in item_fields(item)[field]]
    texts += list(intents.rewrites.values())
    texts += [p for phrases in intents.aspects.values() for p in phrases]
    texts += [p for spec in intents.intents.values() for p in spec.phrases]
    texts += [*intents.fillers, *intents.stopwords, *intents.out_of_scope]
    return texts


def protected_words(items: Sequence[ServiceItem], intents: IntentData) -> list[str]:
    """The knowledge's own words, raw: items' names and aliases, ``[cues]``, ``[contrast]`` words and
    ``[ambiguous]`` terms. Fillers never cut into them (see :class:`~bot.understanding.normalize.Replacer`).

    Why: a filler list holds short words that are also pieces of real words (喂 of 喂饭); the words an
    admin wrote for the items say which pieces are words here."""
    words = [w for item in items for w in (item.name, *item.aliases)]
    words += [w for ws in intents.cues.values() for w in ws]
    words += [w for members in intents.contrast.values() for ws in members.values() for w in ws]
    words += list(intents.ambiguous)
    return list(dict.fromkeys(words))


def _compile_phrases(intents: IntentData, norm: NormFn, protected: Sequence[str] = ()) -> _Phrases:
    """Normalise every phrase once, so matching compares like with like. ``protected``: the knowledge's
    own words (see :func:`protected_words`); those holding a ``contains`` phrase shield it."""
    def clean(values: Sequence[str]) -> list[str]:
        return [n.replace(" ", "") for n in (norm(v) for v in values) if n.strip()]

    aspect_pairs = sorted(((p, a) for a in ASPECTS for p in clean(intents.aspects.get(a, ()))),
                          key=lambda pair: -len(pair[0]))
    stop_words = {p: " " for p in clean(intents.stopwords)}
    stop = Replacer(stop_words)
    # One pass, longest phrase first, so 能不能 (stop word) is not cut by 能享受 (aspect) or vice versa.
    strip = Replacer({**stop_words, **{p: _kept_verb(p, stop_words) for p, _ in aspect_pairs}})
    whole = {name: Replacer({p: " " for p in clean(spec.phrases)})
             for name, spec in intents.intents.items() if spec.whole}
    contains = {name: tuple(clean(spec.phrases)) for name, spec in intents.intents.items() if not spec.whole}
    every = {p for ps in contains.values() for p in ps}
    shields = sorted({w for w in clean(protected) if w not in every and any(p in w for p in every)},
                     key=lambda w: (-len(w), w))
    # The same shields keep 人工耳蜗 whole when 转人工 is cut from a hand-off message.
    handoff_strip = Replacer({p: " " for p in contains.get("handoff", ())}, shields)
    by_first: dict[str, list[tuple[str, str]]] = {}
    for phrase, aspect in aspect_pairs:
        by_first.setdefault(phrase[0], []).append((phrase, aspect))
    aspects = MappingProxyType({first: tuple(pairs) for first, pairs in by_first.items()})
    return _Phrases(stop, strip, aspects, MappingProxyType(whole), MappingProxyType(contains), handoff_strip,
                    tuple(shields))

