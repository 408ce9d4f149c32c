"""Turn what a resident typed (or what voice input heard) into a canonical form for matching.

Why each step, in order:

0. Emoticons (``[捂脸]``; WeChat's codes for the classic faces are named so at the edge) are cut; a
   message of nothing else becomes their names (``[强]`` → 强, which the intents read as thanks): see
   :mod:`bot.understanding.emoticons`.
1. Traditional → simplified (OpenCC ``t2s``): relatives abroad and some phone keyboards send 繁體.
   OpenCC is slow-ish in pure Python, so it runs only when a traditional character is present.
2. NFKC + lower case: full-width letters/digits (ＡＢＣ１２３) and compatibility forms become plain.
3. Punctuation → a boundary: it never carries meaning here, but it separates phrases, so it becomes a
   space that n-grams do not cross.
4. Rewrites from ``intents/`` (dialect 咋个→怎么, homophones 失叶→失业, synonyms 社会保障卡→社保卡), one
   pass, longest key first, so "得行不" wins over "得行".
   Then pinyin typed without choosing characters ("jie hun zheng", "gao ling bu tie") is read back
   into the knowledge's own characters (:mod:`bot.understanding.typed_pinyin`), after the rewrites so
   that a pinyin word an admin listed there ("dibao" = "低保") is taken as written; what was read is
   rewritten in turn (you sha bu tie → 有啥补贴 → 有什么补贴).
5. Self-corrections in dictated text ("社保卡丢了 不对 是身份证丢了", "低保不是是五保"): only what
   follows the last correction is kept, because what came before is what the resident took back.
6. Chinese numerals → digits (八十岁 → 80岁), so "80岁补贴" in a FAQ matches "八十岁" in a question;
   approximate amounts (几十万, 十几年) stay words, since no single number is meant.
7. Fillers (你好, 请问, 麻烦问下) removed: they say nothing about what is asked. Never inside a word of
   the knowledge (``protected``: item names, aliases, cues), and a one-character filler (喂) only at
   a clause edge, since inside a clause it is part of a word (要人喂饭, 喂药).

Matching then masks digit strings that identify or count rather than describe
(:func:`mask_digit_strings`: phone and ID numbers, dates, amounts, house numbers) and reads an exact
age past 80 as its decade (:func:`band_ages`: 82岁 → 80多岁); the normalised text handlers see keeps
both as typed.

The same normaliser is applied to the FAQ side when the index is built, so both sides always agree
even when the rules change.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Mapping

from bot.understanding.emoticons import read_emoticons

_NUMERAL_CHARS = "零〇一二两三四五六七八九十百千万"
_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
#: Characters after which a single numeral is a quantity (一个, 三年, 二组) and not part of a word (五保).
_MEASURE = set("岁年月天日元块个级次号周人份张寸万组")
#: A run of at least this many digit characters (no 十/百) is a number read out digit by digit.
_SPOKEN_DIGITS = 4
_NUMERAL_RUN = re.compile(f"[{_NUMERAL_CHARS}]+")
#: A space a keyboard put between a number and its measure word (82 岁, 2 级, 3 个月).
_SPACED_MEASURE = re.compile(f"(?<=\\d) (?=[{''.join(sorted(_MEASURE))}])")
#: 几 next to a numeral makes it approximate (几十万, 十几年, 三十几岁): no digits can say that.
_APPROXIMATE = "几"
#: A correction in dictated text: after one of these, the resident says again what they meant. The
#: plain negations (不是, 不对, 错了) count only when 是 follows at once ("低保不是是五保", "不对 是身份证"),
#: so "不是低保户能申请不" and "是不是要带户口本" stay whole, and a question word after 是 asks about the
#: trouble ("身份信息不对，是咋个回事"); 写错了/搞错了 describe a problem asked
#: about ("名字写错了咋个改"), not a correction, so only 说错/讲错/口误 count on their own.
_CORRECTION = re.compile(
    r"(?:我?(?:说|讲)错了?|口误)\s*(?:不对\s*)?(?:应该\s*)?(?:是\s*)?"
    r"|(?<![是对])(?:不是|不对|错了)\s*(?:不是\s*|不对\s*)*(?:应该\s*)?是(?!不是|咋|怎|什么|啥|哪|多少|为什么|为啥)"
)
_HAN = re.compile(r"[\u3400-\u9fff]")


@lru_cache(maxsize=1)
def _opencc() -> tuple[object, frozenset[str]]:
    """The converter and the set of characters that need it (loaded once, lazily)."""
    import opencc

    converter = opencc.OpenCC("t2s")
    table = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
    chars: set[str] = set()
    for line in table.read_text(encoding="utf-8").splitlines():
        source, _, targets = line.partition("\t")
        if source and targets.split(" ")[0] != source:
            chars.add(source)
    return converter, frozenset(chars)


def to_simplified(text: str) -> str:
    """Traditional → simplified, skipping OpenCC entirely for text that is already simplified."""
    converter, traditional = _opencc()
    if traditional.isdisjoint(text):  # one C-level pass over the text
        return text
    return converter.convert(text)  # type: ignore[attr-defined,no-any-return]


def _is_boundary(ch: str) -> bool:
    """Punctuation, symbols and spaces separate phrases; letters, digits and CJK do not."""
    if ch.isspace():
        return True
    category = unicodedata.category(ch)
    return category[0] in "PSZC"


#: Characters no resident means, typed for the one they look like: handwriting input offers 囗 (the
#: enclosure radical, U+56D7) for 口, and 户囗本 then shared no gram with 户口本.
_LOOKALIKES = {"囗": "口"}


class _Boundaries(dict[int, str]):
    """A ``str.translate`` table: a space for every boundary character (see :func:`_is_boundary`), a
    look-alike's intended character (:data:`_LOOKALIKES`), the character itself otherwise, filled in
    as characters are first seen (up to ``limit`` of them, so text made of ever new characters cannot
    grow it without bound; past that, looked up each time).

    Why: :func:`basic` runs on every text the matcher cuts (several clauses per question), and one
    ``translate`` over a filled table costs a third of a Python-level test per character."""

    limit = 50_000

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        value = " " if _is_boundary(ch) else _LOOKALIKES.get(ch, ch)
        if len(self) < self.limit:
            self[code] = value
        return value


_BOUNDARIES = _Boundaries()


def basic(text: str) -> str:
    """Steps 0–3: emoticons, script, width, case and punctuation, but no data-driven rewrites."""
    text = unicodedata.normalize("NFKC", to_simplified(read_emoticons(text))).lower()
    return text.translate(_BOUNDARIES)


def chinese_number(run: str) -> int | None:
    """Value of a numeral run like 八十, 一百二十, 两万三千; ``None`` when it is not a number."""
    total, section, digit = 0, 0, None
    for ch in run:
        if ch in _DIGITS:
            if digit is not None:
                return None  # 一二: a list of digits, not a number
            digit = _DIGITS[ch]
        elif ch in _UNITS:
            section += (1 if digit is None else digit) * _UNITS[ch]
            digit = None
        elif ch == "万":
            total = (total + section + (digit or 0)) * 10000
            section, digit = 0, None
    return total + section + (digit or 0)


def convert_numbers(text: str) -> str:
    """八十岁 → 80岁, 第二个 → 第2个; 五保 and 一二级 stay (a word, not a quantity), and so do
    approximate amounts (几十万, 十几年: "几100000" would be neither a number nor the resident's word).
    A space between a number and its measure word goes (82 岁 → 82岁): some keyboards put one between
    digits and characters by themselves, and the age or level is read only whole."""

    def replace(match: re.Match[str]) -> str:
        run = match.group(0)
        following = text[match.end(): match.end() + 1]
        if _APPROXIMATE in (following, text[match.start() - 1: match.start()]):
            return run
        positional = any(ch in "十百千万" for ch in run)
        if len(run) == 1 and run != "十" and following not in _MEASURE:
            return run
        if len(run) > 1 and not positional:
            # 一二级 → 12级 (a list of digits before a measure word), but 一二 alone stays; a long run is a
            # number read out digit by digit (电话一三九…, 身份证五一零…), masked like typed digits later
            digits = all(ch in _DIGITS for ch in run)
            if digits and (following in _MEASURE or len(run) >= _SPOKEN_DIGITS):
                return "".join(str(_DIGITS[ch]) for ch in run)
            return run
        value = chinese_number(run)
        return run if value is None else str(value)

    return _SPACED_MEASURE.sub("", _NUMERAL_RUN.sub(replace, text))


#: Digit strings that say who, when, how much or where — never what is asked. Order matters: the
#: longer shapes first. Cut from the text the matcher sees (both questions and FAQ texts), because
#: their digits otherwise form bigrams that meet an item's (a phone number 138 1234 5678 shares
#: 12 23 34 with the legal-aid hotline 12348). What stays: ages (80岁, 81了), levels (2级), durations
#: (15年, 3个月) and the 5-digit government hotlines 12xxx, which are what residents call some items.
_DIGIT_STRINGS = re.compile(
    # a number with its label is data the resident gives (我电话138…, 身份证号5108…), not a question
    r"(?:(?:身份证|社保卡|银行卡|卡|手机|电话|联系电话|联系方式|账|证件)?号码?|身份证|社保卡|银行卡|手机|电话"
    r"|联系电话|联系方式)?(?:是|为|:)?\s*"
    r"(?:\d{15,17}[\dx]"                          # 身份证号 (18 characters, may end in x)
    r"|\d{6,})"                                    # phone, account, card, postcode, verification code
    r"|(?<![\d])0\d{2,3}(?=\s*\d{7,8})"             # landline area code before its number (0839 7204567)
    r"|\d{4}年(?:\d{1,2}月(?:\d{1,2}[日号])?)?"      # 2024年, 2024年3月5号
    r"|\d{4}\s\d{1,2}\s\d{1,2}(?!\d)"               # 2024-03-05 (the dashes are spaces by now)
    r"|\d{1,2}月\d{1,2}[日号]?|\d{1,2}月份?(?!\d)"   # 3月5号, 11月份
    r"|\d{1,2}[日号](?![码])"                       # 5号, 12日 (dates), 3号 (house numbers); not 号码
    r"|\d{1,2}[点:](?:\d{1,2}分?)?(?=\D|$)"          # 9点, 9点30
    r"|\d+(?:万|千|百)?(?:元|块钱|块|角|毛)"          # 300块, 2万元
    r"|\d+(?:栋|幢|单元|楼|层|室|户|组|社|巷|弄)(?:\d+(?:栋|幢|单元|楼|层|室|户|号)?)*"  # 5栋2单元301, 3组
    r"|(?<!\d)(?!12\d{3}(?!\d))\d{4,5}(?!\d)"        # any other 4–5 digit run, except hotlines 12xxx
)


def mask_digit_strings(text: str) -> str:
    """Normalised text with identifying and counting digit strings cut out (see ``_DIGIT_STRINGS``);
    each becomes a space, so the words either side of it do not join into a new bigram."""
    if not any(map(str.isdigit, text)):
        return text
    return _compact(_DIGIT_STRINGS.sub(" ", text))


#: An exact age in the eighties or nineties (82岁, 91了, 八十七周岁 once numerals are digits): read as its
#: decade. Younger ages stay: 16, 18, 60 and 65 are thresholds of their own, and banding 67 or 75 into
#: 60多, 70多 pulled questions towards the pension and senior-card items on the readable sets.
_EXACT_AGE = re.compile(r"(?<![\d.])([89])[1-9](?=周?岁|了)")


def band_ages(text: str) -> str:
    """Exact ages in the eighties and nineties as their decade: 82岁 → 80多岁, 91了 → 90多了.

    Why: the FAQ files speak of ages by decade (满80周岁, 八十多岁的老人, 90岁以上) and residents by the
    age itself (我婆婆八十二了); 82 shares no character pair with 80, so "我婆婆八十二了有啥补贴" matched
    nothing. The decade is what the rules turn on (高龄津贴 from 80, more from 90)."""
    return _EXACT_AGE.sub(lambda m: m.group(1) + "0多", text) if any(map(str.isdigit, text)) else text


def digits_for_matching(text: str) -> str:
    """What the matcher reads of a text's digits: identifying and counting strings cut
    (:func:`mask_digit_strings`), exact ages read as their decade (:func:`band_ages`)."""
    return band_ages(mask_digit_strings(text))


class Replacer:
    """Longest-first, single-pass phrase replacement (one compiled alternation).

    ``protected`` words are never cut: a match that would take part of one of them (喂 of 喂饭) is left
    in place; a match that covers a whole protected word is still replaced.
    Why: removal lists hold short words, and short words are also pieces of real words; the
    knowledge's own words (item names, aliases, cues) say which pieces are words here."""

    def __init__(self, mapping: Mapping[str, str], protected: Iterable[str] = ()) -> None:
        self._mapping = {k: v for k, v in mapping.items() if k}
        keys = sorted(self._mapping, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, keys))) if keys else None
        by_first: dict[str, list[str]] = {}
        for word in {w for w in protected if len(w) >= 2 and w not in self._mapping}:
            by_first.setdefault(word[0], []).append(word)
        self._protected = {ch: tuple(sorted(ws, key=len, reverse=True)) for ch, ws in by_first.items()}
        self._reach = max((len(w) for ws in self._protected.values() for w in ws), default=0)

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        if self._protected:  # (the normaliser caches whole texts; no second cache here)
            return self._pattern.sub(
                lambda m: m.group(0) if self.cuts_word(text, m.start(), m.end()) else self._mapping[m.group(0)], text)
        return self._pattern.sub(lambda m: self._mapping[m.group(0)], text)

    def cuts_word(self, text: str, start: int, end: int) -> bool:
        """True when ``text[start:end]`` lies inside a protected word there and is not all of it.

        A match that only crosses a word's edge (去哪 after 要去) is not a cut: the phrase is at a word
        boundary, and the shared character belongs to the phrase as much as to the word."""
        for first in range(max(0, end - self._reach), start + 1):
            for word in self._protected.get(text[first], ()):
                last = first + len(word)
                if last >= end and last - first > end - start and text.startswith(word, first):
                    return True
        return False


def _compact(text: str) -> str:
    """Collapse runs of whitespace into one space and trim the ends."""
    return " ".join(text.split())  # str.split() and ``\s`` agree on what whitespace is


class Normalizer:
    """The configured pipeline. Build once per knowledge snapshot; calls are pure and cached.

    ``protected``: the knowledge's own words (item names, aliases, cues…), raw; fillers never cut
    into them (see :class:`Replacer`)."""

    def __init__(self, rewrites: Mapping[str, str], fillers: Iterable[str], protected: Iterable[str] = (),
                 typed_pinyin: Callable[[str], str] | None = None) -> None:
        """``typed_pinyin``: reads runs of typed pinyin into characters (see step 4); none: left as typed."""
        self._typed_pinyin = typed_pinyin or _unchanged
        cleaned = {self._key(k): self._key(v) for k, v in rewrites.items()}
        self._rewrite = Replacer(_resolve_chains({k: v for k, v in cleaned.items() if k and k != v}))
        filler_keys = [k for k in (self._key(f) for f in fillers) if k]
        words = {w for w in (self._before_fillers(p).replace(" ", "") for p in protected) if w}
        self._fillers = Replacer({k: " " for k in filler_keys if len(k) > 1}, words)
        # one character (喂, 呃) is a filler only at a clause edge: inside a clause it is a piece of a word
        single = "".join(sorted({k for k in filler_keys if len(k) == 1}))
        self._edge_fillers = (re.compile(f"(?:^|(?<=\\s))[{re.escape(single)}]+|[{re.escape(single)}]+(?=\\s|$)")
                              if single else None)
        self.normalize = lru_cache(maxsize=4096)(self._normalize)

    @staticmethod
    def _key(text: str) -> str:
        """Rule keys pass through the same fixed steps as text, so 麻煩問下 in a rule still works."""
        return basic(text).strip()

    def _before_fillers(self, text: str) -> str:
        """Steps 1–6: what a text looks like when fillers are removed (protected words take this form)."""
        rewritten = self._rewrite(basic(text))
        read = self._typed_pinyin(rewritten)
        if read != rewritten:  # typed pinyin read as characters: they may be dialect too (you sha → 有啥)
            read = self._rewrite(read)
        return convert_numbers(drop_corrected(read))

    def _normalize(self, text: str) -> str:
        text = self._fillers(self._before_fillers(text))
        if self._edge_fillers is not None:
            text = _compact(text)
            text = self._edge_fillers.sub(
                lambda m: m.group(0) if self._fillers.cuts_word(text, m.start(), m.end()) else " ", text)
        return _compact(text)


def _unchanged(text: str) -> str:
    return text


def drop_corrected(text: str) -> str:
    """What follows the last self-correction ("社保卡丢了不对是身份证丢了" → "身份证丢了"); the text
    unchanged when there is none, or when nothing follows it."""
    last = None
    for last in _CORRECTION.finditer(text):
        pass
    if last is None or not text[last.end():].strip():
        return text
    return text[last.end():]


def _resolve_chains(mapping: dict[str, str], rounds: int = 3) -> dict[str, str]:
    """Apply the rewrites to their own targets, so 社保咔 → 社会保障卡 → 社保卡 ends at 社保卡."""
    replacer = Replacer(mapping)
    resolved = dict(mapping)
    for _ in range(rounds):
        changed = False
        for key, value in resolved.items():
            again = replacer(value)
            if again != value and key not in again:
                resolved[key] = again
                changed = True
        if not changed:
            break
    return resolved


def has_han(text: str) -> bool:
    return bool(_HAN.search(text))
