"""WeChat's size limits on replies, and clean cutting of long text.

Why bytes: WeChat counts a text reply's length in UTF-8 bytes (2048), so 700 Chinese characters are
already at the limit. A long answer is cut at a line or sentence boundary, never inside a character,
and the resident is told how to get the rest ("回复「更多」").
"""

from __future__ import annotations

TEXT_LIMIT_BYTES = 2048
NEWS_TITLE_CHARS = 64
NEWS_DESCRIPTION_CHARS = 120
MORE_HINT = "\n……内容较长，回复「更多」查看后面部分"
MORE_WORDS = frozenset({"更多", "继续", "下一页", "后面", "余下", "more"})
_BREAKS = ("\n", "。", "；", "！", "？", "，", "、", " ")


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _prefix_within(text: str, budget: int) -> int:
    """The number of characters of ``text`` whose UTF-8 encoding fits in ``budget`` bytes."""
    used = 0
    for i, ch in enumerate(text):
        used += utf8_len(ch)
        if used > budget:
            return i
    return len(text)


def split_text(text: str, limit: int = TEXT_LIMIT_BYTES) -> tuple[str, str]:
    """``(head, rest)``: head fits in ``limit`` bytes including the "更多" hint when there is a rest."""
    if utf8_len(text) <= limit:
        return text, ""
    cut = _prefix_within(text, limit - utf8_len(MORE_HINT))
    window = text[:cut]
    for mark in _BREAKS:
        pos = window.rfind(mark)
        if pos >= cut // 2:
            cut = pos + 1
            break
    head = text[:cut].rstrip()
    rest = text[cut:].lstrip("\n ")
    return head + MORE_HINT, rest


def clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def is_more_request(text: str) -> bool:
    return text.strip().lower().strip("。.!！?？ ") in MORE_WORDS
