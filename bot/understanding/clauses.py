"""Clauses of a question: where a second need may start, and what each clause does.

A long question tells its situation before its need ("结婚证领好了，婚假有几天"), or asks for two
things ("我想办低保，还要开个证明"). The decision rules read it clause by clause: which clauses ask,
which add a matter to another, which only tell who someone is, what they have, what was done or who
asks (said in passing). Pure functions of the normalised text and the regular expressions they use;
nothing here knows the items.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

#: Where a second need starts: punctuation (a space once normalised) and the words that add one — also a
#: bare 还 or 再 before a verb ("老板还欠着工资", "再去学个技术"), but not 还 meaning "still" (还能, 还有没得,
#: "还发本本不": a 还 … 不 question).
_CLAUSE_BREAK = re.compile(r"( |还要|还想|还有|顺便|另外|以及|而且|同时|再问|和|跟|与|或者|还是|"
                           r"还(?![能有没是可剩差不在得会行好要想]|[^ ]*(?:不|吗|没|没有|嘛|呢)(?: |$))|"
                           r"再(?=去|来|办|申请|学|把)|"
                       # after a marriage or divorce that is done, what the rest tells is another matter
                       # ("离婚了对方不给抚养费"): the registration was the event itself
                       r"(?<=离婚了|结婚了|离了婚|结了婚)(?=[^ ]))")
#: Verbs of what to bring or prepare: what follows is a list of materials ("要带户口本和身份证吗").
_BRINGING = re.compile(r"带|准备|提供|复印|拿")
#: A clause that adds a need to another ("工资也不给", "再去学个技术").
_ADDING = re.compile(r"也|又|再|顺便|另外|还(?![能有没是可剩差不在得会行好])")
#: A loss: what a clause adding a matter with 也 may report ("出生证也找不到了", "钱包也不见了").
_LOST = re.compile(r"找不到|找不着|不见|没了|掉了|偷")
#: A closing question without an object of its own ("咋办", "怎么弄", "找哪个", "两样咋个弄"): it asks about
#: all the clauses before it (unlike "咋个认定", "要带啥子", which ask about one need's next step).
_CLOSING = re.compile(r"(?:那|这|该|要|我)?(?:这?(?:两样|两个|两件事?)|都)?(?:怎么|咋个?|如何|咋)(?:办|弄|搞|整)(?:呢|嘛|哦|啊|喃)?|找(?:谁|哪个|哪里)")
#: Separators that join two things asked about alike ("身份证和居住证咋个办").
_JOINING = ("和", "跟", "与", "或者", "还是")
#: Separators that open a clause asking for one more thing ("还要开个证明", "顺便问下", "再去学个技术").
_ASKING = ("还要", "还想", "再问", "顺便", "还", "再")
#: A clause that asks or complains about something, as opposed to one that only states context.
_REQUEST = re.compile(r"办|申请|领|补|换|交|开|报|转|迁|续|登记|认定|怎么|哪里|哪个|多少|多久|能不能|可以|有没有|要|想|吗|"
                      r"不给|不发|不管|没结|没发|欠|丢|坏|过期|到期|激活|不会|弄不来|用不来|不$|没有$")
#: Verbs of getting a service done or paid (办好了, 领了, 交了的, 批下来了, 已经转好了).
_DONE_VERBS = "办|领|换|开|交|缴|补|上|拿|弄|搞|做|打|批|扯|评|转|迁|认证|认定|登记|备案|注册|参保|鉴定"
#: A clause that reports something already done or going on ("出生证明办好了", "结婚证已经领了", "医保交了的",
#: "社保卡也换成四川的了", "他已经在领养老金", "一直在村里交的", "交了15年的农村养老保险", "前几天在派出所办
#: 身份证"): context, unless the clause still
#: wants, lacks, adds or asks it ("想把证领了", "还没办", "把低保也办了", "交了社保能领多少") or reports a loss
#: ("身份证搞丢了"). One definition for every reader: ``split_clauses`` (a done clause is no second need) and
#: through it ``Matcher._after_context`` (the item done is not the one asked about), ``Matcher._asked``
#: (nor evidence between siblings) and ``Lists._listed`` (nor a list of needs).
#: A day or time gone by, opening a clause ("前几天在派出所办身份证", "上个月去社区交了材料"): with a verb of the
#: service and nothing asked, wanted or lost, what was done then — the story before the need, not a need.
#: (Numbers are digits by then: 前两天 reads 前2天.)
_PAST = r"(?:前几天|前两天|前\d+天|前段时间|前些天|上个月|上\d+个月|上周|上个星期|上礼拜|昨天|前天|去年|前年)"
_NOT_DONE = (r"^(?!.*(?:想|要|准备|打算|没|不|把|还|再|顺便|一起|丢|坏|错|掉|落在|落到|忘在|搞忘|过期|到期"
             r"|吗|怎么|什么|哪|多少|多久|(?<!前)几|能不能|可以|能否|是否|有没有))")
DONE = re.compile(_NOT_DONE + rf"(?:.*(?:{_DONE_VERBS})(?:好|完|过|到|下来|成[^ ]{{0,4}})?了$"
                  rf"|.*(?:{_DONE_VERBS})(?:好|完|过|到|下来)了|.*(?:已经|刚刚?|早就).*(?:{_DONE_VERBS})了"
                  rf"|.*(?:已经|一直|早就)在[^ ]{{0,3}}?(?:{_DONE_VERBS})|^{_PAST}[^ ]*?(?:{_DONE_VERBS})|.*(?:{_DONE_VERBS})了?(?:\d+年|好几年|几年|多年|\d+个月)?的$)")
#: What someone got and holds ("我妈领了高龄补贴", "单位给她交了职工医保", "领了独生子女证"): a verb of the
#: service with 了 and its object — weaker than a done clause, like what someone has (see :func:`stated`):
#: the thing held is often what the question is about ("领了独生子女证，到年龄了有补贴不").
_GOT = re.compile(_NOT_DONE + rf".*(?:{_DONE_VERBS})了[^ ]+$")
#: A clause that only states who the resident is or what they did before ("我是低保户", "交了社保的"):
#: context for the other clause, not a need of its own. (A done clause, "他一直在领养老金", is said in
#: passing and so context already: see ``aside`` in :func:`split_clauses`.)
_CONTEXT = re.compile(r"^(?:我|我们|他|她|我妈|我爸|老人|家里)?(?:是|属于)|"
                      r"(?:交|缴|领|办|买|吃)了?的|的$|"
                      r"^(?:已经)?(?:离婚了|结婚了|离了婚|结了婚)$|"  # a marriage or divorce done (see _CLAUSE_BREAK)
                      # someone's age alone ("我妈80多了", "他都78岁了"): who the need is for — a closing 怎么办
                      # asks about the need, not about the age
                      r"^[^ ]{0,4}?(?:都|已经|快|满|今年|才)?\d+(?:多|几)?(?:周岁|岁)?(?:了|啦)?$|"
                      # someone described by a service they had, and what befell them ("领养老金的人去世了",
                      # "吃低保的老人走了"): who the person is, not a need — unless the clause goes on to ask
                      r"^[^ ]{0,3}?(?:交|缴|领|办|买|吃)了?[^ ]{1,6}?的(?:人|老人)"
                      r"(?![^ ]*(?:办|申请|领|补|换|交|开|报|转|要|想|能|可以|怎么|哪|多少|多久|吗|不$))|"
                      # a business planned, as the reason of the need ("准备开个奶茶店"; not 想开店贷款: it asks)
                      r"^(?:我|我们|他|她)?(?:准备|打算)[^ ]{0,4}?开(?:个|1个|家|间)?[^ ]{0,5}(?:店|馆|厂|超市|小卖部|农家乐|公司)$")
#: A clause that reports a service refused or not yet got, asking nothing ("申请低保没过", "还没办残疾证"):
#: why the resident asks for something else, not a need of its own — unless it adds (也, 又: "医保费也还没交"),
#: wants or asks ("还没办 想办一个").
_NOT_ASKING = r"^(?!.*(?:也|又|想|要|吗|怎么|什么|哪|多少|多久|能不能|可以|有没有|咋))"
_REFUSED_END = r".*(?:没|未)(?:有)?(?:通过|批准?|批下来|评上|审过|过)了?$"
_LACKING = re.compile(_NOT_ASKING + rf"(?:{_REFUSED_END}|.*还没(?:有)?(?:{_DONE_VERBS})(?!不)[^ ]{{0,6}}$)")
#: The refused half of that ("申请低保没批下来", "低保审核没过"): like a done clause, no evidence for the item
#: it names between siblings (see ``Matcher._contrasted``) — unlike "还没办残疾证", which is the need itself.
REFUSED = re.compile(_NOT_ASKING + _REFUSED_END)
#: A clause about the past that asks nothing ("当时没有办异地备案", "以前在广东打工"; not "之前没备案的钱能不能
#: 报": a question): what happened before the need, said in passing. Not 一直没 (一直没办过社保卡: never had
#: it, and what one never had is often the very need).
_BEFORE = re.compile(r"^(?!.*(?:吗|怎么|什么|哪|多少|多久|能不能|可以|有没有)).*(?:以前|原来|之前|一直(?!没|未|新办)|当时|那时)")
#: A clause saying that something had stopped coming ("这个月没有了", "今年停了", "突然不发了"): see
#: ``aside`` in :func:`split_clauses`.
STOPPED = re.compile(r"^[^ ]{0,6}?(?:没有了|没了|停了|停发了?|断了|不发了|不打了|没发了?|没打了?|没到了?|取消了"
                      r"|没收到|没领到|没到账|没打过来|没发下来)$")
#: Who someone is, after a short subject ("我老公是残疾人", "也是五保户", "他生前是低保户") — but not 是 in a
#: conjunction (但是, 要是, 说是 …), which the character before it shows.
_BEING = re.compile(r"^([^ ]{0,4}?)(?:也|都|还)?(?:是|属于)(?!不是)")
CONJUNCTION_BEFORE_BEING = frozenset("但可要于只就不老总硬倒真算像还说")
#: What someone has: a card, a status, a person ("家里老人有残疾证", "也有医保", "村里有个退伍军人"), or a
#: paper still at hand ("出生证明也在", "身份证社保卡都在"; not "社保卡也在里面", "里头有身份证和残疾证": what
#: was in a lost wallet). Not 只有一个儿子, 有效期, 有台阶: the situation itself, often what the need is about.
_HAVING = re.compile(r"(?<![没只所里头面边])有了?(?:个|1个)?[^ ]{0,6}?(?:证|卡|本|簿|保|户|人)(?:了|的|\d级的?)?$"
                     r"|[^ ]{2}(?:也|都|还)?(?<![现正实存好])在(?:的|了|呢)?$")
#: A benefit someone receives, said of them ("也在吃低保", "一直在领高龄补贴", "领高龄补贴的"): who they are,
#: like 是低保户 — not a need (that has a verb of asking: 想领, 咋个领, 领不领得到).
_RECEIVING = re.compile(r"(?<![想要能])在(?:吃|领)[^ ]{1,8}$|^[^ ]{0,2}(?:吃|领)[^ ]{1,8}的$")
#: The second of two papers someone has ("已经有社保卡和身份证了": 身份证了 after 和): had as well.
_HAD_TOO = re.compile(r"^[^ ]{0,4}?(?:证|卡|本|簿)(?:了|的|都有了?|也有了?)?$")
#: A paper (identity card, household book, a certificate, photo) closing a clause that asks about it.
_PAPER = r"(?:证|本|簿|证明|卡|照片|原件|复印件)"
#: Verbs that make "要…证" a need of its own ("要办残疾证不", "要给娃娃上户口不"), not a paper to bring.
_PAPER_NEED_VERBS = "办|申请|领|开|补|换|交|缴|转|上|续|注销"
#: A clause asking whether to bring a paper ("要带残疾证原件不", "要出生证明原件吗", "需要带户口本"): the
#: paper is a material of the need named elsewhere, not a need (not "办残疾证要带身份证吗": a need verb
#: comes first there). A paper must be named after the verb: "准备结婚了" prepares a wedding, not a paper.
MATERIAL = re.compile(r"^(?:要|需要|得|还要|是不是要)?(?:带|准备|提供)(?!什么|哪些|些|好多|多少)"
                      r"(?=.*(?:证|本|簿|卡|照|件|单|票|书|明|材料|资料|户口))|原件|复印件"
                      # whether a paper is needed or enough, without a verb of bringing: "要父母身份证不",
                      # "户口本身份证够不够" (a paper, not a need: no verb of getting a service done)
                      rf"|^(?![^ ]*(?:{_PAPER_NEED_VERBS}))(?:要|需要|得|还要|是不是要)[^ ]{{0,6}}?{_PAPER}(?:不|吗|没|嘛)?$"
                      rf"|^(?![^ ]*(?:{_PAPER_NEED_VERBS}))[^ ]{{0,10}}?{_PAPER}(?:这些|这几样|两样)?"
                      r"(?:就)?(?:够不够|够了没|够了吗|够吗|够不|够没|行不行|行吗|行不)$"
                      # whether a paper someone issues is needed: "要医院开证明不", "需要社区开居住证明吗"
                      r"|^(?:要|需要|得|是不是要)[^ ]{1,4}?开(?:个|张|份)?[^ ]{0,4}?证明(?:不|吗|没|嘛)$")
_NEED_VERB = re.compile(r"办|申请|领|开|补|换|交|缴|转|上")
#: A clause that is a paper alone, asked about ("火化证吗"): listed after another paper, a material too.
_PAPER_ASKED = re.compile(rf"^[^ ]{{0,6}}?{_PAPER}(?:不|吗|没|嘛)?$")
#: Who asks for whom ("网格员帮1个老人问", "辖区居民问", "我替我姐姐问一下" once 问一下 is cut): no need of its
#: own — unless something is done for them there ("帮家里老人做养老金年审").
_ASKER = re.compile(r"^[^ ]{0,5}?(?:帮|替|代)|问$")
_DOING = re.compile(_DONE_VERBS)
#: 帮 someone do a chore ("在重庆帮儿子带娃娃"): the resident's situation, not who asks for whom (帮我妈问下).
_HELPING = re.compile(r"(?:帮|替)[^ ]{1,4}?(?:带|照顾|看娃|看孩子|看店|做饭|煮饭|种|守|接送|打工|干活|做事)")
#: Words that make a clause a question (as opposed to one that tells the situation: "娃娃上小学了"). 几 asks
#: (要几天, 几点上班), but not in 好几 or next to a numeral (好几户, 十几年, 几十万: amounts told). 还是 between
#: two things asks which ("要带户口本还是出生证": the question mark is gone by now), not 还是不行, 还是没到 (still).
QUESTION = re.compile(r"怎么|什么|哪|吗|多少|多久|(?<![好十])几(?![十百千万])|"
                      r"(?<=[^ ])还是(?!不|没|很|一样|老样子|那样|这样|要|得)|"
                      r"能不能|可不可以|可以|要不要|需不需要|有没有|能否|是否|找谁|[不没]$")


def stated(clause: str) -> bool:
    """True when the clause only states who someone is, what they have or got, who asks, or asks about a
    material to bring — context for the need another clause asks, never a need of its own.

    Why: long questions tell the situation first ("他78岁，是低保户，有残疾证，……") and each such clause
    names an item (低保, 残疾证) that the resident is not asking about; scored with the rest, those
    names win or make a second need out of nothing."""
    if MATERIAL.search(clause):
        return not _NEED_VERB.search(MATERIAL.split(clause, 1)[0])
    if _GOT.search(clause):
        return True
    if _RECEIVING.search(clause) and not QUESTION.search(clause):
        return True  # "我父亲在领高龄补贴": 领 is no request here
    if QUESTION.search(clause) or _REQUEST.search(clause):
        return False  # "我是第一次办": it asks, in passing or not
    being = _BEING.match(clause)
    if being and not (being.group(1) and being.group(1)[-1] in CONJUNCTION_BEFORE_BEING):
        return True
    return bool(_HAVING.search(clause)) or bool(_ASKER.search(clause) and not _DOING.search(clause)
                                                 and not _HELPING.search(clause))


class Clause(NamedTuple):
    """One clause of a question (see :func:`split_clauses`)."""

    text: str
    asks: bool      # asks or complains about something (办, 领, 咋个, 不发 …)
    adds: bool      # adds a matter to another clause (也, 还, 再, 顺便: "工资也不给")
    context: bool   # only tells who the resident is or what was done before (我是低保户, 办好了)
    aside: bool     # said in passing, as the situation of the need: done, who someone is, has or got,
                    # who asks, a paper to bring, the past (not …的, 交了的 alone: 领低保的 may still be
                    # the subject; see stated, DONE, _BEFORE)
    follows: bool = False  # starts after a bare pause or 还是, with no word that adds (还, 也, 顺便, 另外) or
                           # lists (和): it may only ask further about the need before it (要每年审核不,
                           # 还是后面来报)


@lru_cache(maxsize=512)
def split_clauses(normalized: str) -> tuple[Clause, ...]:
    """The question cut where a second need may start.

    A clause joined to the next by 和/跟/或者/还是 shares the next one's request ("身份证和居住证咋个办":
    both are asked about); so do the clauses before a closing question without an object of its own
    ("受了伤 老板工资也不结 咋办": the 咋办 is about both). A clause that adds a matter (也, 还, 再) asks;
    a clause that only gives context never does. Clauses said in passing (``aside``) are the situation
    a long question tells before its need: what was done, who someone is, has or got, who asks for
    whom, a paper to bring, the past. Cached: the matcher reads the clauses of a question several times."""
    parts = _CLAUSE_BREAK.split(normalized)
    clauses: list[Clause] = []
    asks_next = False
    closing = False
    for index in range(len(parts) - 1, -1, -2):  # clauses at even positions, separators between
        clause = parts[index]
        if not clause:
            continue
        separator = parts[index + 1] if index + 1 < len(parts) else ""
        inherited = asks_next and separator in _JOINING
        leading = parts[index - 1] if index else ""
        # "要带户口本和身份证吗": the second of two things to bring is a material, not a need
        # and so is the second of two papers asked about ("要死亡证明和火化证吗")
        listed = leading in _JOINING and index >= 2 and (bool(_BRINGING.search(parts[index - 2])) or (
            bool(MATERIAL.search(parts[index - 2])) and _bare_paper(clause, leading)))
        # "医保是转过去还是办个备案": a clause before 还是/或者 is half of the question, never context — unless
        # both halves are papers to bring ("需要出生证明还是户口本")
        # what was had before is the subject when the next clause says it stopped ("以前每个月有几十块残疾人
        # 生活补贴 这个月没有了"): the trouble is about that very thing
        stopped = bool(clauses) and separator not in _JOINING and bool(STOPPED.match(clauses[-1].text))
        # "他已经有社保卡和身份证了": two papers had, the second one said alone after 和 — both are context
        had_too = (separator in ("和", "跟", "与") and bool(clauses) and bool(_HAVING.search(clause))
                   and not QUESTION.search(clause) and not _REQUEST.search(clause)
                   and bool(_HAD_TOO.match(clauses[-1].text)))
        if had_too:
            clauses[-1] = clauses[-1]._replace(asks=False, adds=False, context=True, aside=True)
        aside = listed or had_too or bool(DONE.search(clause)) or (
            separator not in _JOINING and (stated(clause) or (bool(_BEFORE.search(clause)) and not stopped))) or (
            separator in _JOINING and bool(MATERIAL.search(clause)) and index + 2 < len(parts)
            and _bare_paper(parts[index + 2], separator))
        # what is lacking is the situation of another need, unless a closing question asks about both
        # ("还没办残疾证 两样咋个弄")
        context = aside or bool(_CONTEXT.search(clause)) or (not closing and bool(_LACKING.search(clause)))
        # 也/又 add a need only with something asked, done or lost in the clause ("工资也不给", "把医保也上了",
        # "出生证也找不到了"); with a state alone they add a circumstance to the story ("又没收入", "家里也困难")
        adds = not context and (any(word in _ASKING for word in _leading_run(parts, index)) or bool(
            _ADDING.search(clause) and (_REQUEST.search(clause) or _DOING.search(clause) or _LOST.search(clause))))
        asks = not context and (bool(_REQUEST.search(clause)) or inherited or closing or adds)
        asks_next = asks or inherited
        if not clauses and _CLOSING.fullmatch(clause):
            closing = True  # "…… 咋办": a bare question at the end asks about all before it
        # the other half of an either-or ("是直接在殡仪馆扣还是后面来报") asks further about the same need
        follows = leading in (" ", "还是") and not adds
        clauses.append(Clause(clause, asks, adds, context, aside, follows))
    return tuple(clauses[::-1])


def _bare_paper(clause: str, separator: str) -> bool:
    """True when ``clause``, joined to a paper asked about by ``separator``, is a paper too ("火化证吗" of
    "要死亡证明和火化证吗", "户口本" of "需要出生证明还是户口本"): a material, not a need. After 还是/或者 it must
    name no verb of a need ("要居住证还是社区开的居住证明": the other half is a paper to be issued, a need).

    Why: only papers after a verb of bringing were read as a list of materials; without one, the second
    paper named its item as a second need."""
    if not _PAPER_ASKED.search(clause):
        return False
    return separator in ("和", "跟", "与") or not _NEED_VERB.search(clause)


def _leading_run(parts: list[str], index: int) -> list[str]:
    """The separators before the clause at ``index`` of a split question, back to the previous clause:
    several may follow one another with nothing between ("想当志愿者 还想跟几个朋友成立个协会": a space,
    还想, then 跟 — here a preposition, "with a few friends").

    Why: only the separator next to the clause was read, so 跟 hid the 还想 that makes the clause a
    second need."""
    run: list[str] = []
    position = index - 1
    while position >= 0:
        run.append(parts[position])
        if position >= 2 and not parts[position - 1]:
            position -= 2
            continue
        break
    return run


def piece_spans(normalized: str) -> list[tuple[int, int, bool]]:
    """The question's pieces (what the resident wrote between spaces and punctuation) as (start, end) in
    the question without spaces, each with whether it asks something. Pieces, not clauses: a piece is
    cut at every space, while :func:`split_clauses` groups pieces into the needs and situations of the
    question (its ``aside`` flag and all); the out-of-scope checks read where a word stands, pieces
    are enough for that."""
    spans: list[tuple[int, int, bool]] = []
    position = 0
    for part in normalized.split(" "):
        if part:
            spans.append((position, position + len(part), bool(QUESTION.search(part))))
            position += len(part)
    return spans


#: Offices (not items): a question about one of them alone is about its hours or whereabouts.
OFFICE = re.compile(r"(?:社保|医保|人社|劳动|民政|卫健|司法|公安|税务|退役军人事务|残疾人联合会|政府)局|残联|派出所|"
                    r"政务(?:服务)?中心|(?:便民)?服务(?:中心|大厅|站)|办事大厅|大厅|社区|街道办?|(?:镇|乡)政府|"
                    r"居委会|村委会|村委|办事处|办公室")
