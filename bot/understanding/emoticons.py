"""WeChat's built-in emoticons as they arrive in a text message: ``[微笑]``, ``[捂脸]`` (their names in
brackets) or, for the classic set, codes like ``/::)`` and ``/:strong`` (what WeChat sends an official
account for the faces picked from its panel).

Why: they carry no request, yet they are text: a code's letters survived the normaliser as words
("/:share" would read as the pinyin sha re) and a name as a word of the question (抱拳 低保怎么申请).
They are cut before anything else reads the message. A message of nothing but emoticons is read as
their names, so that the intents can answer it: ``[强]``, ``[抱拳]`` or 👍 alone says thanks or OK, and
``intents/smalltalk.toml`` lists those names among its thanks (a few everyday emoji, 👍 🙏 🌹, are read
as the face that says the same).

The codes and names are WeChat's own, fixed by the platform (not knowledge an admin edits).
"""

from __future__ import annotations

import re

#: The classic faces: the code WeChat sends, and the face's name (the same face, in the same order).
FACES: tuple[tuple[str, str], ...] = (
    ('/::)', '微笑'), ('/::~', '撇嘴'), ('/::B', '色'), ('/::|', '发呆'), ('/:8-)', '得意'), ('/::<', '流泪'),
    ('/::$', '害羞'), ('/::X', '闭嘴'), ('/::Z', '睡'), ("/::'(", '大哭'), ('/::-|', '尴尬'), ('/::@', '发怒'),
    ('/::P', '调皮'), ('/::D', '呲牙'), ('/::O', '惊讶'), ('/::(', '难过'), ('/::+', '酷'), ('/:--b', '冷汗'),
    ('/::Q', '抓狂'), ('/::T', '吐'), ('/:,@P', '偷笑'), ('/:,@-D', '愉快'), ('/::d', '白眼'), ('/:,@o', '傲慢'),
    ('/::g', '饥饿'), ('/:|-)', '困'), ('/::!', '惊恐'), ('/::L', '流汗'), ('/::>', '憨笑'), ('/::,@', '悠闲'),
    ('/:,@f', '奋斗'), ('/::-S', '咒骂'), ('/:?', '疑问'), ('/:,@x', '嘘'), ('/:,@@', '晕'), ('/::8', '疯了'),
    ('/:,@!', '衰'), ('/:!!!', '骷髅'), ('/:xx', '敲打'), ('/:bye', '再见'), ('/:wipe', '擦汗'), ('/:dig', '抠鼻'),
    ('/:handclap', '鼓掌'), ('/:&-(', '糗大了'), ('/:B-)', '坏笑'), ('/:<@', '左哼哼'), ('/:@>', '右哼哼'), ('/::-O', '哈欠'),
    ('/:>-|', '鄙视'), ('/:P-(', '委屈'), ("/::'|", '快哭了'), ('/:X-)', '阴险'), ('/::*', '亲亲'), ('/:@x', '吓'),
    ('/:8*', '可怜'), ('/:pd', '菜刀'), ('/:<W>', '西瓜'), ('/:beer', '啤酒'), ('/:basketb', '篮球'), ('/:oo', '乒乓'),
    ('/:coffee', '咖啡'), ('/:eat', '饭'), ('/:pig', '猪头'), ('/:rose', '玫瑰'), ('/:fade', '凋谢'),
    ('/:showlove', '嘴唇'), ('/:heart', '爱心'), ('/:break', '心碎'), ('/:cake', '蛋糕'), ('/:li', '闪电'),
    ('/:bome', '炸弹'), ('/:kn', '刀'), ('/:footb', '足球'), ('/:ladybug', '瓢虫'), ('/:shit', '便便'),
    ('/:moon', '月亮'), ('/:sun', '太阳'), ('/:gift', '礼物'), ('/:hug', '拥抱'), ('/:strong', '强'), ('/:weak', '弱'),
    ('/:share', '握手'), ('/:v', '胜利'), ('/:@)', '抱拳'), ('/:jj', '勾引'), ('/:@@', '拳头'), ('/:bad', '差劲'),
    ('/:lvu', '爱你'), ('/:no', 'NO'), ('/:ok', 'OK'), ('/:love', '爱情'), ('/:<L>', '飞吻'), ('/:jump', '跳跳'),
    ('/:shake', '发抖'), ('/:<O>', '怄火'), ('/:circle', '转圈'), ('/:kotow', '磕头'), ('/:turn', '回头'),
    ('/:skip', '跳绳'), ('/:oY', '投降'), ('/:#-0', '激动'), ('/:hiphot', '乱舞'), ('/:kiss', '献吻'), ('/:<&', '左太极'),
    ('/:&>', '右太极'),
)
#: Names of the faces added since (sent only as ``[name]``), Chinese and English clients.
NEWER_NAMES: tuple[str, ...] = (
    '捂脸', '奸笑', '机智', '皱眉', '耶', '吃瓜', '加油', '汗', '天啊', 'Emm', '社会社会', '旺柴', '好的', '打脸', '哇', '翻白眼', '666', '让我看看', '叹气', '苦涩', '裂开', '嘿哈', '合十', '囧', '破涕为笑', '红包', '發', '福', '烟花', '爆竹', '鞭炮', '庆祝', '礼物', '强壮', '生病', '笑脸', '失望', '恐惧', '脸红', '无语', 'Whimper', 'Hey', 'Facepalm', 'Smirk', 'Smart', 'Concerned', 'Yeah!', 'Onlooker', 'GoForIt', 'Sweats', 'OMG', 'Respect', 'Doge', 'NoProb', 'MyBad', 'Wow', 'Boring', 'Awesome', 'LetMeSee', 'Sigh', 'Hurt', 'Broken',
)

#: The everyday emoji that say what a face of the panel says, by that face's name: alone in a message
#: they are an answer too (👍 is OK); anywhere else they are cut like any symbol.
EMOJI_NAMES: dict[str, str] = {
    "👍": "强", "👌": "OK", "🙏": "抱拳", "🤝": "握手", "👏": "鼓掌", "✌": "胜利", "🌹": "玫瑰", "❤": "爱心",
    "😊": "微笑", "🙂": "微笑", "😄": "愉快", "😭": "大哭", "😢": "流泪", "👋": "再见",
}

_NAME_OF_CODE = {**dict(FACES), **EMOJI_NAMES}
_NAMES = frozenset(name for _, name in FACES) | frozenset(NEWER_NAMES)
# codes longest first, so /::-O is not read as /::- and O
_EMOTICON = re.compile("|".join(
    [re.escape(code) for code in sorted(_NAME_OF_CODE, key=len, reverse=True)]
    + [re.escape(emoji) for emoji in EMOJI_NAMES]
    + [r"\[(?:" + "|".join(re.escape(name) for name in sorted(_NAMES, key=len, reverse=True)) + r")\]"]))
_EMOJI = re.compile("|".join(map(re.escape, EMOJI_NAMES)))
_NOTHING_ELSE = re.compile(r"[\W_]*")  # (emoji and variation selectors are \W too)


def read_emoticons(text: str) -> str:
    """``text`` with every emoticon cut (a space in its place); a text of nothing but emoticons (and
    spaces, punctuation or other symbols) becomes their names, space-separated."""
    if "[" not in text and "/:" not in text and not _EMOJI.search(text):  # the usual case: C-level scans
        return text
    names: list[str] = []

    def cut(match: re.Match[str]) -> str:
        found = match.group(0)
        names.append(_NAME_OF_CODE.get(found) or found[1:-1])
        return " "

    rest = _EMOTICON.sub(cut, text)
    if names and _NOTHING_ELSE.fullmatch(rest):
        return " ".join(names)
    return rest
