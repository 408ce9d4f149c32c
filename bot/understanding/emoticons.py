"""Emoticons in a resident's message: faces by name in brackets (``[微笑]``, ``[捂脸]``: how WeChat sends
the faces picked from its panel — its codes for the classic ones, ``/::)``, are turned into names at the
edge, see :mod:`bot.wechat.faces`) and a few everyday emoji.

Why: they carry no request, yet they are text: a name stood in the question as a word (抱拳 低保怎么申请).
They are cut before anything else reads the message. A message of nothing but emoticons is read as
their names, so that the intents can answer it: ``[强]``, ``[抱拳]`` or 👍 alone says thanks or OK, and
``intents/smalltalk.toml`` lists those names among its thanks (a few everyday emoji, 👍 🙏 🌹, are read
as the face that says the same).

The names are WeChat's own, fixed by the platform (not knowledge an admin edits).
"""

from __future__ import annotations

import re

#: The classic faces' names (WeChat sends these faces as codes; the codec names them).
CLASSIC_NAMES: tuple[str, ...] = (
    '微笑', '撇嘴', '色', '发呆', '得意', '流泪', '害羞', '闭嘴', '睡', '大哭', '尴尬', '发怒', '调皮', '呲牙', '惊讶', '难过', '酷', '冷汗',
    '抓狂', '吐', '偷笑', '愉快', '白眼', '傲慢', '饥饿', '困', '惊恐', '流汗', '憨笑', '悠闲', '奋斗', '咒骂', '疑问', '嘘', '晕', '疯了',
    '衰', '骷髅', '敲打', '再见', '擦汗', '抠鼻', '鼓掌', '糗大了', '坏笑', '左哼哼', '右哼哼', '哈欠', '鄙视', '委屈', '快哭了', '阴险', '亲亲',
    '吓', '可怜', '菜刀', '西瓜', '啤酒', '篮球', '乒乓', '咖啡', '饭', '猪头', '玫瑰', '凋谢', '嘴唇', '爱心', '心碎', '蛋糕', '闪电', '炸弹',
    '刀', '足球', '瓢虫', '便便', '月亮', '太阳', '礼物', '拥抱', '强', '弱', '握手', '胜利', '抱拳', '勾引', '拳头', '差劲', '爱你', 'NO',
    'OK', '爱情', '飞吻', '跳跳', '发抖', '怄火', '转圈', '磕头', '回头', '跳绳', '投降', '激动', '乱舞', '献吻', '左太极', '右太极',
)

#: Names of the faces added since (sent only as ``[name]``), Chinese and English clients.
NEWER_NAMES: tuple[str, ...] = (
    '捂脸', '奸笑', '机智', '皱眉', '耶', '吃瓜', '加油', '汗', '天啊', 'Emm', '社会社会', '旺柴', '好的', '打脸', '哇', '翻白眼', '666',
    '让我看看', '叹气', '苦涩', '裂开', '嘿哈', '合十', '囧', '破涕为笑', '红包', '發', '福', '烟花', '爆竹', '鞭炮', '庆祝', '礼物', '强壮',
    '生病', '笑脸', '失望', '恐惧', '脸红', '无语', 'Whimper', 'Hey', 'Facepalm', 'Smirk', 'Smart', 'Concerned', 'Yeah!',
    'Onlooker', 'GoForIt', 'Sweats', 'OMG', 'Respect', 'Doge', 'NoProb', 'MyBad', 'Wow', 'Boring', 'Awesome',
    'LetMeSee', 'Sigh', 'Hurt', 'Broken',
)

#: The everyday emoji that say what a face of the panel says, by that face's name: alone in a message
#: they are an answer too (👍 is OK); anywhere else they are cut like any symbol.
EMOJI_NAMES: dict[str, str] = {
    "👍": "强", "👌": "OK", "🙏": "抱拳", "🤝": "握手", "👏": "鼓掌", "✌": "胜利", "🌹": "玫瑰", "❤": "爱心",
    "😊": "微笑", "🙂": "微笑", "😄": "愉快", "😭": "大哭", "😢": "流泪", "👋": "再见",
}

_NAMES = frozenset(CLASSIC_NAMES) | frozenset(NEWER_NAMES)
_EMOJI = re.compile("|".join(map(re.escape, EMOJI_NAMES)))
# the emoji, or a face's name in brackets (longest first)
_EMOTICON = re.compile(_EMOJI.pattern + r"|\[(?:"
                       + "|".join(re.escape(name) for name in sorted(_NAMES, key=len, reverse=True)) + r")\]")
_NOTHING_ELSE = re.compile(r"[\W_]*")  # (emoji and variation selectors are \W too)


def read_emoticons(text: str) -> str:
    """``text`` with every emoticon cut (a space in its place); a text of nothing but emoticons (and
    spaces, punctuation or other symbols) becomes their names, space-separated."""
    if "[" not in text and not _EMOJI.search(text):  # the usual case: C-level scans
        return text
    names: list[str] = []

    def cut(match: re.Match[str]) -> str:
        found = match.group(0)
        names.append(EMOJI_NAMES.get(found) or found[1:-1])
        return " "

    rest = _EMOTICON.sub(cut, text)
    if names and _NOTHING_ELSE.fullmatch(rest):
        return " ".join(names)
    return rest
