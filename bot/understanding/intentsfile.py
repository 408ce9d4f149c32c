"""Language data in ``intents/*.toml``: fillers, stop words, rewrites, small-talk intents, aspects.

Why data and not code: the words residents use (Sichuan phrasing, what the voice input mishears, what
staff call a thing) are discovered by reading conversation logs, and the people who read them are not
programmers. Any file may hold any section; sections from all files are merged, and a key defined
twice with different values is an error so two files cannot silently fight.

Sections (all optional in any one file):

``[fillers] phrases``      politeness removed everywhere (你好, 请问, 麻烦问下)
``[stopwords] phrases``    function words ignored when matching items (怎么, 有没有, 我想)
``[dialect]``              ``"咋个" = "怎么"``: rewrites applied before anything else
``[homophones]``           ``"失叶" = "失业"``: voice-input and pinyin-typing slips
``[synonyms]``             ``"社会保障卡" = "社保卡"``: other words for the same thing
``[intent.<name>]``        ``phrases`` and ``match = "whole" | "contains"``; names: greeting,
                           thanks, help, handoff
``[aspect.<name>]``        ``phrases``; names: materials, steps, where, time, fee, conditions, proxy
``[out_of_scope] phrases`` topics the community does not handle (天气, 驾照, 公积金): a question
                           about them falls back unless it also names an item outright
``[ambiguous]``            ``"优待证" = ["civil.senior-card", "veterans.preferential-card"]``: a word
                           that names several items; asked on its own, the bot offers the choice
                           instead of guessing (the ids are checked against faq/ by ``faq check``)
``[cues]``                 ``"civil.dibao" = ["兜底", "没收入"]``: item-specific words and situations
                           besides the item's name and aliases; the matcher answers only when the
                           question holds such an anchor for the item it would answer
``[contrast.<family>]``    ``"medins.transfer" = ["医保"]``, two or more items per family: the words
                           that tell close sibling items apart; when the question holds the words
                           of some members and none of the others', the others are not considered;
                           a member ``"out_of_scope"`` lists lookalikes we do not handle (驾驶证)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from bot.understanding.faqfile import Field, check_table
from bot.understanding.model import ASPECTS, Problem
from bot.understanding.tomlfile import TomlDocument, read_toml

SMALLTALK_INTENTS: tuple[str, ...] = ("greeting", "thanks", "help", "handoff", "wrong", "more")
REWRITE_SECTIONS: tuple[str, ...] = ("dialect", "homophones", "synonyms")
PHRASE_SECTIONS: tuple[str, ...] = ("fillers", "stopwords", "out_of_scope")

_PHRASES = {"phrases": Field("strlist", True)}
_INTENT = {"phrases": Field("strlist", True), "match": Field("str", False)}


@dataclass(frozen=True)
class IntentSpec:
    """Phrases of one small-talk intent; ``whole`` means the message must be only that phrase."""

    phrases: tuple[str, ...]
    whole: bool


@dataclass(frozen=True)
class IntentData:
    """All language data, merged from every file. Immutable, like the knowledge snapshot."""

    fillers: tuple[str, ...] = ()
    stopwords: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    rewrites: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    intents: Mapping[str, IntentSpec] = field(default_factory=lambda: MappingProxyType({}))
    aspects: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    ambiguous: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    cues: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    contrast: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class IntentFragment:
    """What one valid file contributes, with the document for locating conflicts."""

    doc: TomlDocument
    phrases: Mapping[str, tuple[str, ...]]          # fillers / stopwords
    rewrites: Mapping[str, Mapping[str, str]]        # section -> {from: to}
    intents: Mapping[str, IntentSpec]
    aspects: Mapping[str, tuple[str, ...]]
    ambiguous: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cues: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    contrast: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)


def validate_fragment(doc: TomlDocument) -> tuple[IntentFragment | None, list[Problem]]:
    """Check one parsed intents file; the fragment only when there is no problem."""
    data = doc.data
    known = (*PHRASE_SECTIONS, *REWRITE_SECTIONS, "intent", "aspect", "ambiguous", "cues", "contrast")
    problems: list[Problem] = []
    for key, value in data.items():
        if key not in known:
            problems.append(doc.problem((key,), f"未知小节 “{key}”（可用：{'、'.join(known)}）"))
        elif not isinstance(value, dict):
            problems.append(doc.problem((key,), f"“{key}” 应为一个小节 [{key}]"))
    if problems:
        return None, problems
    for section in PHRASE_SECTIONS:
        if section in data:
            problems += check_table(doc, data[section], _PHRASES, (section,))
    for section in REWRITE_SECTIONS:
        problems += _check_rewrites(doc, section, data.get(section, {}))
    problems += _check_ambiguous(doc, data.get("ambiguous", {}))
    problems += _check_cues(doc, data.get("cues", {}))
    problems += _check_contrast(doc, data.get("contrast", {}))
    problems += _check_named(doc, "intent", data.get("intent", {}), SMALLTALK_INTENTS, _INTENT)
    problems += _check_named(doc, "aspect", data.get("aspect", {}), ASPECTS, _PHRASES)
    if problems:
        return None, problems
    return _build_fragment(doc), []


def _check_rewrites(doc: TomlDocument, section: str, table: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for source, target in table.items():
        path = (section, source)
        if not isinstance(target, str):
            problems.append(doc.problem(path, f"“{source}” 的值应为字符串"))
        elif not source.strip():
            problems.append(doc.problem(path, "被替换的词不能为空"))
        elif source == target:
            problems.append(doc.problem(path, f"“{source}” 替换成它自己，没有意义"))
    return problems


def _check_ambiguous(doc: TomlDocument, table: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for term, ids in table.items():
        path = ("ambiguous", term)
        if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            problems.append(doc.problem(path, f"“{term}” 的值应为事项 id 列表，如 [\"a.b\", \"c.d\"]"))
        elif len(set(ids)) < 2:
            problems.append(doc.problem(path, f"“{term}” 至少要对应两个不同的事项"))
    return problems


def _check_cues(doc: TomlDocument, table: Mapping[str, Any]) -> list[Problem]:
    """``"item.id" = ["word", ...]``: a non-empty list of non-empty strings per item id."""
    problems: list[Problem] = []
    for ident, words in table.items():
        path = ("cues", ident)
        if not (isinstance(words, list) and words and all(isinstance(w, str) and w.strip() for w in words)):
            problems.append(doc.problem(path, f"“{ident}” 的值应为非空的词语列表，如 [\"兜底\", \"没收入\"]"))
    return problems


def _check_contrast(doc: TomlDocument, table: Mapping[str, Any]) -> list[Problem]:
    """``[contrast.<family>]``: at least two item ids, each with a non-empty list of words."""
    problems: list[Problem] = []
    for family, members in table.items():
        path = ("contrast", family)
        if not isinstance(members, dict):
            problems.append(doc.problem(path, f"应为小节 [contrast.{family}]"))
            continue
        if len(members) < 2:
            problems.append(doc.problem(path, f"[contrast.{family}] 至少要有两个事项"))
        for ident, words in members.items():
            if not (isinstance(words, list) and words and all(isinstance(w, str) and w.strip() for w in words)):
                problems.append(doc.problem((*path, ident), f"“{ident}” 的值应为非空的词语列表，如 [\"医保\"]"))
    return problems


def _check_named(doc: TomlDocument, section: str, table: Mapping[str, Any], names: tuple[str, ...],
                 schema: Mapping[str, Field]) -> list[Problem]:
    problems: list[Problem] = []
    for name, body in table.items():
        path = (section, name)
        if name not in names:
            problems.append(doc.problem(path, f"未知的 {section} “{name}”（可用：{'、'.join(names)}）"))
        elif not isinstance(body, dict):
            problems.append(doc.problem(path, f"应为小节 [{section}.{name}]"))
        else:
            problems += check_table(doc, body, schema, path)
            match = body.get("match", "whole")
            if isinstance(match, str) and match not in ("whole", "contains"):
                problems.append(doc.problem((*path, "match"), f"match 只能是 \"whole\" 或 \"contains\"，实际是 “{match}”"))
    return problems


def _build_fragment(doc: TomlDocument) -> IntentFragment:
    data = doc.data
    return IntentFragment(
        doc=doc,
        phrases={s: tuple(p.strip() for p in data[s]["phrases"] if p.strip()) for s in PHRASE_SECTIONS if s in data},
        rewrites={s: dict(data[s]) for s in REWRITE_SECTIONS if s in data},
        intents={n: IntentSpec(tuple(b["phrases"]), b.get("match", "whole") == "whole")
                 for n, b in data.get("intent", {}).items()},
        aspects={n: tuple(b["phrases"]) for n, b in data.get("aspect", {}).items()},
        ambiguous={t: tuple(dict.fromkeys(ids)) for t, ids in data.get("ambiguous", {}).items()},
        cues={i: tuple(dict.fromkeys(w.strip() for w in words)) for i, words in data.get("cues", {}).items()},
        contrast={f: {i: tuple(dict.fromkeys(w.strip() for w in words)) for i, words in members.items()}
                  for f, members in data.get("contrast", {}).items()},
    )


def load_fragment_file(path: Path, display: str | None = None) -> tuple[IntentFragment | None, list[Problem]]:
    doc = read_toml(path, display)
    if isinstance(doc, Problem):
        return None, [doc]
    return validate_fragment(doc)


def conflicts(candidate: IntentFragment, others: Iterable[IntentFragment]) -> list[Problem]:
    """A rewrite key mapped to different targets in two files, or the same intent/aspect split
    between files with different ``match`` settings."""
    problems: list[Problem] = []
    for other in others:
        if other.doc.name == candidate.doc.name:
            continue
        for section, table in candidate.rewrites.items():
            theirs = _all_rewrites(other)
            for source, target in table.items():
                if source in theirs and theirs[source] != target:
                    line = other.doc.locator.line_of((_section_of(other, source), source))
                    problems.append(candidate.doc.problem(
                        (section, source),
                        f"“{source}” 在这里替换为 “{target}”，但 {other.doc.name}:{line} 替换为 “{theirs[source]}”"))
        for name, spec in candidate.intents.items():
            if name in other.intents and other.intents[name].whole != spec.whole:
                problems.append(candidate.doc.problem(("intent", name, "match"),
                                                      f"intent.{name} 的 match 与 {other.doc.name} 不一致"))
    return problems


def _all_rewrites(fragment: IntentFragment) -> dict[str, str]:
    merged: dict[str, str] = {}
    for table in fragment.rewrites.values():
        merged.update(table)
    return merged


def _section_of(fragment: IntentFragment, source: str) -> str:
    for section, table in fragment.rewrites.items():
        if source in table:
            return section
    return ""


def merge(fragments: Iterable[IntentFragment]) -> IntentData:
    """Combine valid, non-conflicting fragments (in file-name order) into one :class:`IntentData`."""
    ordered = sorted(fragments, key=lambda f: f.doc.name)
    phrases: dict[str, list[str]] = {s: [] for s in PHRASE_SECTIONS}
    rewrites: dict[str, str] = {}
    intents: dict[str, tuple[list[str], bool]] = {}
    aspects: dict[str, list[str]] = {}
    ambiguous: dict[str, list[str]] = {}
    cues: dict[str, list[str]] = {}
    contrast: dict[str, dict[str, list[str]]] = {}
    for fragment in ordered:
        for family, members in fragment.contrast.items():
            for ident, words in members.items():
                contrast.setdefault(family, {}).setdefault(ident, []).extend(words)
        for ident, words in fragment.cues.items():
            cues.setdefault(ident, []).extend(words)
        for term, ids in fragment.ambiguous.items():
            ambiguous.setdefault(term, []).extend(ids)
        for section, values in fragment.phrases.items():
            phrases[section].extend(values)
        rewrites.update(_all_rewrites(fragment))
        for name, spec in fragment.intents.items():
            intents.setdefault(name, ([], spec.whole))[0].extend(spec.phrases)
        for name, values in fragment.aspects.items():
            aspects.setdefault(name, []).extend(values)
    return IntentData(
        fillers=tuple(dict.fromkeys(phrases["fillers"])),
        stopwords=tuple(dict.fromkeys(phrases["stopwords"])),
        out_of_scope=tuple(dict.fromkeys(phrases["out_of_scope"])),
        rewrites=MappingProxyType(rewrites),
        intents=MappingProxyType({n: IntentSpec(tuple(dict.fromkeys(p)), w) for n, (p, w) in intents.items()}),
        aspects=MappingProxyType({n: tuple(dict.fromkeys(v)) for n, v in aspects.items()}),
        ambiguous=MappingProxyType({t: tuple(dict.fromkeys(v)) for t, v in ambiguous.items()}),
        cues=MappingProxyType({i: tuple(dict.fromkeys(v)) for i, v in cues.items()}),
        contrast=MappingProxyType({f: MappingProxyType({i: tuple(dict.fromkeys(v)) for i, v in m.items()})
                                   for f, m in contrast.items()}),
    )


def unknown_ambiguous_ids(fragment: IntentFragment, known: set[str]) -> list[Problem]:
    """``[ambiguous]`` entries naming ids that no valid FAQ file has (usually a typo)."""
    return [fragment.doc.problem(("ambiguous", term), f"事项 id “{ident}” 没有对应的 faq 文件", needle=ident)
            for term, ids in fragment.ambiguous.items() for ident in ids if ident not in known] + \
        [fragment.doc.problem(("cues", ident), f"事项 id “{ident}” 没有对应的 faq 文件", needle=ident)
         for ident in fragment.cues if ident not in known] + \
        [fragment.doc.problem(("contrast", family, ident), f"事项 id “{ident}” 没有对应的 faq 文件", needle=ident)
         for family, members in fragment.contrast.items() for ident in members
         if ident not in known and ident != "out_of_scope"]


#: What the matcher says of a cue word: ``None`` when it anchors its item, else (how many items share
#: its least shared piece, its core segments); see :meth:`~bot.understanding.names.ItemNames.cue_sharing`.
CueSharing = Callable[[str, str], "tuple[int, tuple[str, ...]] | None"]


def unanchoring_cues(fragment: IntentFragment, sharing: CueSharing, limit: int) -> list[Problem]:
    """Warnings for ``[cues]`` words that anchor nothing, located where they are written.

    Why a warning and not an error: the file is valid and the word harms nothing, but an admin who
    adds it sees no effect and cannot tell why (a piece like 申领 is in a dozen items' names)."""
    warnings: list[Problem] = []
    for ident, words in fragment.cues.items():
        for word in words:
            found = sharing(ident, word)
            if found is None:
                continue
            shared, pieces = found
            if shared:
                why = (f"太笼统，认不出是哪个事项：它最少见的两字片段也有 {shared} 个事项共用（超过 {limit} 个就不算数）；"
                       f"请换成这个事项特有的说法")
            elif len(word) == 1:
                why = "只有一个字，单字认不出事项；请写成至少两个字的说法"
            elif pieces:
                dropped = "".join(ch for ch in word if ch not in "".join(pieces))
                why = (f"匹配时去掉 “{dropped}”（停用词或数字）后只剩单字（{'、'.join(pieces)}），单字认不出事项；"
                       f"请写成至少两个字、不含停用词的说法")
            else:
                why = "全是停用词，认不出事项"
            message = f"提示词 “{word}” {why}。问句里有它，也不会因此认到这个事项"
            warnings.append(fragment.doc.problem(("cues", ident), message, needle=f'"{word}"'))
    return warnings
