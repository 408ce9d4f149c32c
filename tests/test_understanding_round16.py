"""Round 16 (session 12), on the real data: which of two, and a child's disability card.

* "是居住证还是居住证明" asks which of the two: the list is the question, not who someone is. Until this
  round 是 before a list always read as a status ("我是低保户和残疾人"), so the alternative was answered
  with one side. 但是, 还是, 就是 … are other words and open no alternative.
* A bigram that holds the joining word (金和, an anchor because one item's question says 丧葬补助金和抚恤金)
  is the joint itself, not a word the joint cuts: "养老金和老年证" lists two things.
* 还有没有 asks whether there is more; 都 after a list says the rest of each side; 队想 is no typo of 对象
  (a two-character ``[contrast]`` word heard by sound must keep one of its characters); 帮儿子带娃娃 is
  a chore, not who asks for whom.
* 家里困难 names three items: an item outside them leading by up to 12 points on everyday words
  (``outside_top_window``, 8 before) is no answer. 住这边的证 is the permit or the proof.
* 机器人 and 纪念日 are no item's matter.
* A child whose development is slow (发育迟缓, 自闭症) is the rehabilitation item's story; asking to have
  the child assessed (评残, 办残疾证, 鉴定) without a word of rehabilitation (康复, 训练) asks for the
  card (``[contrast.child-disability]``).

The questions are written for this test (not taken from ``tests/data``). The cases marked as guards
pass on the code before the round too: they keep the rules from reaching further.
"""

from __future__ import annotations

import pytest

from bot.understanding.clauses import QUESTION, split_clauses, stated
from bot.understanding.contrast import Contrast
from bot.understanding.knowledge import Knowledge
from tests.test_understanding_helpers import assert_decided

#: (question, the items a clarify must offer): 是 X 还是 Y.
WHICH_OF_TWO = [
    ("娃娃读书学校要材料 我也不晓得是居住证还是居住证明", {"police.residence-permit", "civil.residence-proof"}),
    ("到底是办居住证还是开居住证明哦 娃娃要上幼儿园", {"police.residence-permit", "civil.residence-proof"}),
    ("我妈每个月那个钱 搞不清是低保还是特困供养", {"civil.dibao", "civil.extreme-poverty"}),
    ("残疾证上的钱不知道是护理补贴还是生活补贴", {"disability.nursing-subsidy", "disability.living-subsidy"}),
    # 金和 is an anchor bigram of the death benefit (丧葬补助金和抚恤金): it held the joint, so the list
    # read as a word cut in two
    ("刚满六十岁 养老金和老年证能一起办不", {"hrss.resident-pension-claim", "civil.senior-card"}),
    # 都 right after the list says the rest of each side: 转过来 is not said of one of them
    ("搬到这边来了 低保跟残疾人补贴都要转过来不", {"civil.dibao", "disability.living-subsidy"}),
    # 住这边的证: the permit or the proof (a generic word since this round)
    ("就要个住这边的证 咋个弄", {"police.residence-permit", "civil.residence-proof"}),
    # 家里困难 names dibao, low income and temporary help; an item outside it scoring up to
    # outside_top_window (12 since this round) higher, with no anchor of its own in the rest, is no answer
    ("屋头困难 有啥补助", {"civil.dibao", "civil.low-income-family", "civil.temporary-assistance"}),
]

#: (question, the item to answer): no alternative, whatever 是 and 还是 are there.
NOT_WHICH_OF = [
    # guards: 但是 … 还是 is "but … still"; 是 before 和 tells who the resident is
    ("我们家以前吃低保 但是现在还是困难 有没得边缘户可以评", "civil.low-income-family"),
    ("我是低保户和残疾人 能领啥", "disability.living-subsidy"),
    ("老人走了 丧葬费和抚恤金都找哪个", "hrss.death-benefit"),  # both the insured's death benefits
    # 还有没有 asks whether there is more: no list joined by 还有
    ("收入比低保高一点点 吃不上低保 还有没得别的认定可以申请", "civil.low-income-family"),
    # a volunteer team's filing is the community organisation's ([contrast.volunteer-group])
    ("我们几个人的志愿服务队想去备个案 咋个弄", "civil.community-org-filing"),
    # whether the insurance from home works where they live now is the filing's (cues: 那边拿药, 能用医保)
    ("我去深圳带孙子了 在那边拿药能用医保不", "medins.offsite-filing"),
    # 要去哪里报 asks where to claim: 要去 is no plan to go for treatment (the filing's word before)
    ("去年在成都住院没办异地备案 钱都是自己垫的 发票都在 回来要去哪里报", "medins.manual-reimbursement"),
    # the story's 超市 does not count when what is asked points back (这个证) at the card said in passing
    ("我是残疾人 在县城一家超市找到了工作 老板说如果我有就业创业证 单位可以享受政策 这个证在社区能帮我办不",
     "hrss.employment-card"),
    # 一直没办过 is what was never had, not the past said in passing
    ("我一直没得社保卡，快60了领养老金要用卡，在哪里办", "hrss.social-security-card"),
]

#: Questions no item is about, though an item's texts share a word (机器 of the work injury's 手被机器绞伤).
NONE = [
    "你是不是机器人哦",
    "结婚纪念日在哪里订饭",
    # the benefit someone receives is who they are; the bank's hours are asked
    "我老汉儿在领高龄补贴 他想把存折换成银行卡 银行周末上班不",
    # guard: the asking clause is about something else (no 这个证): the story's words still count
    "我是网格员 辖区有个残疾人 家里是低保户 他家电表坏了停电了 供电所电话多少",
    # everyday matters after a status told first (AH's long questions): a TV, buying things, a canteen
    "屋头是低保户 电视机没得信号了找哪个修",
    "县城哪里有卖拐杖的",
    "娃娃学校食堂一顿好多钱",
    # probe_none_16a's everyday matters: a road to be paved, after who the resident is
    "低保户 村上那条路好久硬化",
]

#: (question, the item to answer): a child's condition told, then what is asked for.
CHILD_DISABILITY = [
    ("娃娃四岁了说话不清楚 医院诊断发育迟缓 想给他评个残 找哪个", "disability.card-new"),
    # guards: rehabilitation asked for, with or without the card mentioned
    ("娃娃自闭症 想做康复训练 有补助不", "disability.child-rehab"),
    ("还没办残疾证 娃娃发育迟缓 康复训练能申请不", "disability.child-rehab"),
    ("娃娃脑瘫 办了残疾证了 康复的钱咋个报", "disability.child-rehab"),
]


@pytest.mark.parametrize(("question", "items"), WHICH_OF_TWO, ids=[q for q, _ in WHICH_OF_TWO])
def test_which_of_two_is_asked_back_with_both(knowledge: Knowledge, question: str, items: set[str]) -> None:
    result = knowledge.match(question)
    assert result.action == "clarify" and items <= set(result.candidates), result


@pytest.mark.parametrize(("question", "item"), NOT_WHICH_OF + CHILD_DISABILITY,
                         ids=[q for q, _ in NOT_WHICH_OF + CHILD_DISABILITY])
def test_the_item_asked_for_is_answered(knowledge: Knowledge, question: str, item: str) -> None:
    assert_decided(knowledge.match(question), item)


@pytest.mark.parametrize("question", NONE)
def test_what_no_item_is_about_falls_back(knowledge: Knowledge, question: str) -> None:
    assert_decided(knowledge.match(question), None)


def test_a_two_character_contrast_word_is_not_heard_in_other_characters() -> None:
    """队想 sounds like 对象 (a marriage word) but shares no character with it: no one types it for
    对象. A typo by ear keeps a character (低宝 for 低保), and longer words may be heard whole."""
    contrast = Contrast({"f": {"civil.marriage-registration": ["对象"], "civil.dibao": ["低保"],
                               "civil.volunteer-registration": ["志愿者注册"]}},
                        {"civil.marriage-registration", "civil.dibao", "civil.volunteer-registration"},
                        lambda text: text)
    assert contrast.marked("我们的服务队想备个案") == set()
    assert contrast.marked("我和对象想去登记") == {"civil.marriage-registration"}
    assert contrast.marked("低宝咋个申请") == {"civil.dibao"}
    assert contrast.marked("智愿者住册在哪") == {"civil.volunteer-registration"}


def test_helping_someone_with_a_chore_is_no_one_asking_for_them() -> None:
    """帮儿子带娃娃 is the resident's situation; 帮我妈问下 says who the question is for (aside)."""
    assert not split_clauses("长期在重庆帮儿子带娃娃 医保咋个用")[0].aside
    assert split_clauses("帮我妈问一下 医保咋个交")[0].aside


def test_amounts_told_with_ji_ask_nothing() -> None:
    """好几, 十几, 几十 tell an amount; 几 alone asks (round 16: "做了好几次防诈骗宣传" read as a question)."""
    assert not split_clauses("我们组上好几户是五保户 这个找哪个")[0].asks
    assert not QUESTION.search("做了好几次宣传") and not QUESTION.search("花了几十万") and not QUESTION.search("十几年")
    assert QUESTION.search("补办要几天") and QUESTION.search("几点上班")


def test_a_benefit_someone_receives_is_who_they_are() -> None:
    """也在吃低保, 在领高龄补贴, 领高龄补贴的: status, like 是低保户 (round 16); wanting or asking is a need."""
    assert stated("也在吃低保") and stated("我父亲在领高龄补贴") and stated("领高龄补贴的")
    assert not stated("想领高龄补贴") and not stated("在哪里领高龄补贴")


def test_either_or_asks() -> None:
    """还是 between two things asks which, with the question mark gone (round 16: a long question whose
    only asking piece was "第一次办要带户口本还是出生证" asked nothing, so its story's words fell back)."""
    assert QUESTION.search("第一次办要带户口本还是出生证")
    assert not QUESTION.search("等了三个月还是没到") and not QUESTION.search("还是老样子")
